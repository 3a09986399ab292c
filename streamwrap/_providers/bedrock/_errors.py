"""Bedrock's errors, before and inside the stream.

Before the stream, Bedrock answers with a JSON body ``{"message": ...}`` and names the
error only in the ``x-amzn-ErrorType`` header (``ValidationException:http://internal...``;
the part before the colon is the type). Inside it, an eventstream message with
``:message-type: exception`` names it in ``:exception-type`` (``throttlingException``, the
same names with a lower-case first letter), its payload ``{"message": ...}``; a
``:message-type: error`` message carries ``:error-code`` and ``:error-message`` headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._errors import (
    AuthenticationError,
    NotFoundError,
    ProviderHTTPError,
    RateLimitError,
    ServerError,
    http_error_class,
)

__all__ = ["HTTP_ERRORS", "RETRIED_IN_STREAM", "error_type", "http_error_for"]

# An error type → the typed error and the status it stands for, whatever status came with
# it (a throttling reply is a 429 on Bedrock, but a proxy may relay it as a 400).
HTTP_ERRORS: Mapping[str, tuple[type[ProviderHTTPError], int]] = {
    "validationexception": (ProviderHTTPError, 400),
    "throttlingexception": (RateLimitError, 429),
    "servicequotaexceededexception": (RateLimitError, 429),
    "accessdeniedexception": (AuthenticationError, 403),
    "unrecognizedclientexception": (AuthenticationError, 403),
    "expiredtokenexception": (AuthenticationError, 403),
    "invalidsignatureexception": (AuthenticationError, 403),
    "incompletesignatureexception": (AuthenticationError, 403),
    "missingauthenticationtokenexception": (AuthenticationError, 403),
    "resourcenotfoundexception": (NotFoundError, 404),
    "modelnotreadyexception": (ServerError, 503),
    "serviceunavailableexception": (ServerError, 503),
    "internalserverexception": (ServerError, 500),
    "modeltimeoutexception": (ServerError, 504),
}

# In-stream exceptions that, arriving before any content, are answered as the same error
# before the stream would be: retried like a 429 or a 5xx (the request never ran).
RETRIED_IN_STREAM = frozenset(
    ("throttlingexception", "serviceunavailableexception", "internalserverexception")
)


def error_type(header: str | None) -> str | None:
    """The error type of an ``x-amzn-ErrorType`` header (the part before ``:``)."""
    if not header:
        return None
    return header.split(":", 1)[0].strip() or None


def http_error_for(
    kind: str | None,
    *,
    provider: str,
    status_code: int,
    message: str,
    body: Any,
    retry_after: float | None = None,
) -> ProviderHTTPError:
    """The typed error of a Bedrock error type (``kind``), else of the status code."""
    cls, status = HTTP_ERRORS.get((kind or "").lower(), (http_error_class(status_code), status_code))
    if kind:
        message = f"{kind}: {message}"
    return cls(
        message,
        provider=provider,
        status_code=status if status_code < 400 else status_code,
        body=body,
        retry_after=retry_after,
    )
