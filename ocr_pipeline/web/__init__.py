"""The HTTP front of ``ocr-pipeline serve``: API, web page, and the server that runs them."""
