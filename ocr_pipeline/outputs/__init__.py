"""Archival output formats, one result writer each: searchable PDF, hOCR 1.2 and ALTO 4.

Registered in :data:`ocr_pipeline.writers.WRITERS` beside JSON and TXT and chosen with the
``outputs`` setting (``--output pdf``). Each renders a :class:`~ocr_pipeline.results.DocumentResult`
(lines in reading order, word boxes where known) into the bytes of one file.
"""
