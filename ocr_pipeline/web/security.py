"""Who may call the API, and how often: bearer tokens, the loopback rule, rate limits.

* Tokens come from ``serve.tokens`` and ``serve.token_file`` (one per line, ``#`` comments) and
  are compared with :func:`hmac.compare_digest` against every configured token, so the time an
  answer takes says nothing about how much of a guess was right.
* Without any token the server binds loopback addresses only (:func:`check_bind`): an open
  OCR endpoint on a network is a free compute service for anyone who finds it.
* Submissions are rate-limited per token (per client address without tokens) with the
  ``limits`` library's moving window; the answer to a caller over the limit is 429 with
  ``Retry-After`` from the window's reset time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import time
from pathlib import Path

from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ocr_pipeline.errors import ConfigError
from ocr_pipeline.settings import ServeSettings


def load_tokens(settings: ServeSettings) -> list[bytes]:
    """Every accepted token, UTF-8 bytes: ``serve.tokens`` and the lines of ``serve.token_file``.

    Raises:
        ConfigError: the token file cannot be read, or holds no token.

    """
    tokens = [secret.get_secret_value().encode("utf-8") for secret in settings.tokens]
    if settings.token_file is not None:
        tokens.extend(_read_token_file(settings.token_file))
    return [token for token in tokens if token]


def _read_token_file(path: Path) -> list[bytes]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"serve.token_file {path} cannot be read ({exc}); create it with one token per "
            "line, readable by the server's user"
        ) from exc
    tokens = [line.strip().encode("utf-8") for line in text.splitlines()]
    tokens = [token for token in tokens if token and not token.startswith(b"#")]
    if not tokens:
        raise ConfigError(
            f"serve.token_file {path} holds no token; add one per line (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return tokens


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: ServeSettings, tokens: list[bytes]) -> None:
    """Refuse to serve a non-loopback address without tokens.

    Raises:
        ConfigError: ``serve.host`` is not loopback and no token is configured.

    """
    if not tokens and not is_loopback(settings.host):
        raise ConfigError(
            f"serve.host {settings.host} is reachable from other machines but no API token is "
            "configured; set serve.tokens or serve.token_file (OCR_PIPELINE_SERVE__TOKENS), "
            "or bind 127.0.0.1"
        )


def token_key(presented: str | None, tokens: list[bytes]) -> str | None:
    """The rate-limit key of a valid token (a short hash, never the token), else ``None``.

    Every configured token is compared, in constant time each, whatever matched first.
    """
    if presented is None:
        return None
    candidate = presented.encode("utf-8")
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate, token)
    if not matched:
        return None
    return "token:" + hashlib.sha256(candidate).hexdigest()[:16]


class RateLimit:
    """A moving-window rate limit per key, from ``serve.rate_limit`` (``limits`` notation).

    Raises:
        ConfigError: the rate is not in the ``limits`` notation.

    """

    def __init__(self, rate: str) -> None:
        try:
            self.items = parse_many(rate)
        except ValueError as exc:
            raise ConfigError(
                f"serve.rate_limit {rate!r} is not a rate such as '120/minute' or "
                f"'10/second;1000/hour' ({exc})"
            ) from exc
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, key: str) -> int | None:
        """Count one request for ``key``; ``None`` when allowed, else seconds to wait (>= 1)."""
        for item in self.items:
            if not self.limiter.hit(item, key):
                reset = self.limiter.get_window_stats(item, key).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None
