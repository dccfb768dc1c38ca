r"""File names as the operating system gives them: undecodable bytes, display forms, length limits.

On Linux a file name is bytes. Python hands it over as ``str`` through :func:`os.fsdecode`: bytes
that are not valid UTF-8 (names written in GBK, Shift-JIS or Latin-1 by Windows shares, old zip
tools and scanners) become lone surrogates ``U+DC80..U+DCFF`` ("surrogate escapes"), one per
byte. Such a ``str`` opens the right file, but it cannot be encoded as UTF-8: JSON, the audit log,
the status file and the logs need another form of it. This module gives that form and the raw
bytes, and shortens names to fit the file system's limit.

* :func:`name_bytes` the name's bytes as the file system holds them;
* :func:`is_valid_utf8` whether the name is text (no surrogate escapes);
* :func:`display_name` a printable, valid-UTF-8 form: every byte that is not part of valid UTF-8
  is shown as ``\xNN`` (two lowercase hex digits), so ``b"bad\xff\xfe.jpg"`` displays as
  the 14 characters ``bad\xff\xfe.jpg``. A valid name is returned unchanged, so the display
  form alone is ambiguous (a name may really hold a backslash): wherever it matters the raw
  bytes are written beside it, base64 (:func:`bytes_field`);
* :func:`printable` the display form of every string in a nested value (audit records, status);
* :func:`fit_name` a name shortened to at most :data:`NAME_MAX` bytes, deterministically.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import PurePath
from typing import Any

NAME_MAX = 255
"""Longest file name (one path component) in bytes: ``NAME_MAX`` of Linux file systems."""

HASH_CHARS = 12
"""Hex digits of the sha256 of the full name added to a shortened name (48 bits)."""

HASH_MARK = "~"
"""Separates a shortened name's kept beginning from the hash: ``beginning~1a2b3c4d5e6f.jpg``."""

MAX_KEPT_SUFFIX = 16
"""Longest extension (``.jpg``, bytes with its dot) kept whole when a name is shortened."""


def name_bytes(name: str) -> bytes:
    """The bytes of ``name`` as the file system holds them (:func:`os.fsencode`).

    Surrogate escapes become the bytes they stand for. A lone surrogate that is not an escape
    (it cannot come from the file system) is encoded as UTF-8 would encode the code point
    (``surrogatepass``), so this never raises.
    """
    try:
        return os.fsencode(name)
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogatepass")


def byte_length(name: str) -> int:
    """Length of ``name`` in bytes as the file system counts it."""
    return len(name_bytes(name))


def is_valid_utf8(name: str) -> bool:
    """True when ``name`` is text: valid UTF-8 on disk, no surrogate escapes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display_name(name: str) -> str:
    r"""A printable, valid-UTF-8 form of ``name``.

    ``name`` itself when it is valid UTF-8; else every byte that is not part of valid UTF-8
    becomes the four characters ``\xNN`` (lowercase hex), the rest decoded as UTF-8.
    Never raises.
    """
    if is_valid_utf8(name):
        return name
    return name_bytes(name).decode("utf-8", "backslashreplace")


def encode_name_bytes(name: str) -> str:
    """The bytes of ``name`` as base64 text (standard alphabet, padded)."""
    return base64.b64encode(name_bytes(name)).decode("ascii")


def decode_name_bytes(text: str) -> str:
    """The name (a ``str`` with surrogate escapes, as :func:`os.fsdecode` gives) of base64 bytes.

    Raises:
        ValueError: ``text`` is not valid base64.

    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"not base64 name bytes: {text!r}") from exc
    return os.fsdecode(raw)


def bytes_field(name: str) -> str | None:
    """The base64 bytes of ``name`` when it is not valid UTF-8, else ``None``.

    Written beside a display form (``relative_path_bytes``, ``source_bytes``, ...) only when the
    display form differs from the name, so the original bytes can be recovered.
    """
    return None if is_valid_utf8(name) else encode_name_bytes(name)


def printable(value: Any) -> Any:
    """``value`` with every string (dict keys included) in display form, for JSON and logs.

    Dicts, lists and tuples are copied recursively (tuples become lists); paths become their
    display string; anything else is returned as it is.
    """
    if isinstance(value, str):
        return display_name(value)
    if isinstance(value, PurePath):
        return display_name(str(value))
    if isinstance(value, dict):
        return {printable(key): printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable(item) for item in value]
    return value


def _split_suffix(name: str) -> tuple[str, str]:
    """``(base, suffix)``: the extension kept whole when short, else the whole name as base."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    suffix = name[dot:]
    if byte_length(suffix) > MAX_KEPT_SUFFIX:
        return name, ""
    return name[:dot], suffix


def _truncate(text: str, budget: int) -> str:
    """The longest beginning of ``text`` of at most ``budget`` bytes, cut between characters.

    A surrogate escape is one character of one byte, so no multi-byte character and no escaped
    byte is ever split.
    """
    used = 0
    for index, char in enumerate(text):
        used += byte_length(char)
        if used > budget:
            return text[:index]
    return text


def name_hash(name: str) -> str:
    """First :data:`HASH_CHARS` hex digits of the sha256 of ``name``'s bytes."""
    return hashlib.sha256(name_bytes(name)).hexdigest()[:HASH_CHARS]


def fit_name(name: str, reserve: int = 0, limit: int = NAME_MAX) -> str:
    """``name`` shortened so that its bytes plus ``reserve`` bytes fit in ``limit`` bytes.

    A name that fits is returned unchanged. Else its base is cut on a character boundary and
    followed by ``~`` and the first 12 hex digits of the sha256 of the *full* name's bytes, then
    by its extension (kept when at most :data:`MAX_KEPT_SUFFIX` bytes):
    ``<beginning>~1a2b3c4d5e6f.jpg``. The result is deterministic, and distinct full names give
    distinct results (barring a 48-bit hash collision).

    Args:
        name: one path component (no ``/``), a ``str`` as :func:`os.fsdecode` gives.
        reserve: bytes that will be appended to the name later (``.error.json``: 11).
        limit: the file system's limit, bytes.

    Raises:
        ValueError: ``reserve`` leaves too little room for a hash and the extension.

    """
    budget = limit - reserve
    if byte_length(name) <= budget:
        return name
    base, suffix = _split_suffix(name)
    mark = HASH_MARK + name_hash(name)
    room = budget - byte_length(mark) - byte_length(suffix)
    if room < 0 and suffix:
        base, suffix = name, ""
        room = budget - byte_length(mark)
    if room < 0:
        raise ValueError(
            f"no room for a name in {limit} bytes with {reserve} bytes reserved: "
            f"{display_name(name)}"
        )
    return _truncate(base, room) + mark + suffix
