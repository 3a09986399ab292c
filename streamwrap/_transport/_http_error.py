"""Turning a provider's non-2xx HTTP response into a typed error, for every provider."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from .._errors import ProviderHTTPError, http_error_class
from .._secret import Secret, scrub

__all__ = ["http_error", "parse_retry_after"]


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # HTTP dates are rare in Retry-After

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message_from(body: Any) -> str | None:
    # OpenAI and most compatibles: {"error": {"message": ...}}; Gemini the same with a code;
    # some servers: {"error": "text"}, {"message": ...} or FastAPI's {"detail": ...}.
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, Mapping):
        return None
    err = body.get("error", body)
    if isinstance(err, str):
        return err
    if isinstance(err, Mapping):
        for key in ("message", "msg", "detail"):
            if isinstance(err.get(key), str):
                return str(err[key])
    detail = body.get("detail")
    return detail if isinstance(detail, str) else None


def http_error(
    *,
    provider: str,
    status_code: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
    secret: Secret | None = None,
) -> ProviderHTTPError:
    """Build the most specific :class:`ProviderHTTPError` for a failed request.

    ``body`` may be raw bytes, text, or an already parsed object; the API key is scrubbed
    from it before it is stored or shown.
    """
    if isinstance(body, (bytes, bytearray)):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            body = bytes(body).decode("utf-8", "replace")
    body = scrub(body, secret)
    message = _message_from(body)
    if message is None:
        message = body[:500] if isinstance(body, str) and body.strip() else f"HTTP {status_code}"
    return http_error_class(status_code)(
        message,
        provider=provider,
        status_code=status_code,
        body=body,
        retry_after=parse_retry_after(headers),
    )
