"""The exception hierarchy. Every error streamwrap raises is a :class:`StreamwrapError`::

    StreamwrapError
    ├── ConfigError            bad config dict or wrapper argument (also a ValueError)
    ├── InputError             bad call input: empty prompt, malformed messages or tools (also a ValueError)
    ├── MissingDependencyError a provider extra is not installed (also an ImportError)
    ├── ModelFetchError        a local model file could not be fetched into the cache
    ├── ProviderError          the provider could not be reached or refused the request;
    │   │                      raised by ``await model(...)`` before any iteration
    │   ├── ProviderConnectionError   no HTTP response at all (refused, DNS, TLS, timeout)
    │   └── ProviderHTTPError         a non-2xx status, with ``status_code`` and ``body``
    │       ├── AuthenticationError   401, 403
    │       ├── ContentFilterError    400: the provider's content filter blocked the prompt
    │       ├── NotFoundError         404
    │       ├── RateLimitError        429
    │       └── ServerError           5xx
    └── StreamError            the stream broke after it started; carries what arrived
        ├── ProviderStreamError       the provider sent an error event or in-band error object
        ├── StreamProtocolError       bytes that do not parse (bad JSON, bad UTF-8)
        ├── StreamInterruptedError    the connection dropped, or the body ended without a finish
        └── StreamTimeoutError        no first token, or no new token, within the configured time

Errors carry fields; ``str(error)`` is composed from them. Secrets never reach these
objects: bodies are scrubbed of the API key before an error is built, and every message
has the credentials of the URLs it names masked when the error is made (see
``_url_redaction``), whoever built it.
"""

from __future__ import annotations

from typing import Any

from ._url_redaction import redact_urls

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ContentFilterError",
    "InputError",
    "MissingDependencyError",
    "ModelFetchError",
    "NotFoundError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderStreamError",
    "RateLimitError",
    "ServerError",
    "StreamError",
    "StreamInterruptedError",
    "StreamProtocolError",
    "StreamTimeoutError",
    "StreamwrapError",
]


class StreamwrapError(Exception):
    """Base class of every error raised by streamwrap."""

    def __init__(self, *args: Any) -> None:
        # The one place every message passes: a URL in it (the base_url that could not be
        # reached, or one quoted by the HTTP library) loses its credentials here.
        super().__init__(*(redact_urls(arg) if isinstance(arg, str) else arg for arg in args))


class ConfigError(StreamwrapError, ValueError):
    """A config dict or wrapper argument is invalid.

    ``key`` names the offending key (``None`` when the problem is the whole config),
    ``accepted`` lists what would have been valid, ``suggestion`` is the closest accepted
    value when the bad one looks like a typo.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        accepted: tuple[str, ...] = (),
        suggestion: str | None = None,
        config_name: str | None = None,
    ) -> None:
        self.message = redact_urls(message)
        self.key = key
        self.accepted = accepted
        self.suggestion = suggestion
        self.config_name = config_name
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = []
        if self.config_name:
            parts.append(f"model config {self.config_name!r}: ")
        parts.append(self.message)
        if self.suggestion:
            parts.append(f" Did you mean {self.suggestion!r}?")
        if self.accepted:
            parts.append(" Accepted: " + ", ".join(self.accepted) + ".")
        return "".join(parts)


class InputError(StreamwrapError, ValueError):
    """The prompt, messages or tools passed to a call are invalid."""


class MissingDependencyError(StreamwrapError, ImportError):
    """A provider SDK is not installed; the message says which extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f'{package!r} is not installed. Install it with: pip install "streamwrap[{extra}]"')


class ModelFetchError(StreamwrapError):
    """A local model file (``local_chat``'s GGUF) could not be fetched into the cache.

    ``model`` is the name asked for, ``cache_path`` where the file goes once fetched,
    ``reason`` what went wrong (no network, the index refused, hash mismatch, disk full),
    ``manual`` how to get the file by hand instead. Nothing is left half-written at
    ``cache_path``: a file there is always complete and verified.
    """

    # Positional too, so that the error pickles (args are passed back positionally).
    def __init__(self, model: str, cache_path: str, reason: str, manual: str) -> None:
        self.model = model
        self.cache_path = cache_path
        self.reason = redact_urls(reason)
        self.manual = manual
        super().__init__(model, cache_path, self.reason, manual)

    def __str__(self) -> str:
        return (
            f"cannot fetch the model {self.model!r}: {self.reason}\n"
            f"  cache path: {self.cache_path}\n"
            f"  instead: {self.manual}"
        )


class ProviderError(StreamwrapError):
    """The provider could not be reached or refused the request."""

    def __init__(self, message: str, *, provider: str) -> None:
        self.message = redact_urls(message)
        self.provider = provider
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.provider}: {self.message}"


class ProviderConnectionError(ProviderError):
    """No HTTP response was received (connection refused, DNS, TLS, connect timeout)."""


class ProviderHTTPError(ProviderError):
    """The provider answered with a non-2xx HTTP status.

    ``body`` is the parsed JSON body when it was JSON, else the text (secrets scrubbed);
    ``retry_after`` is the server's ``Retry-After`` in seconds when given.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status_code: int,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.provider}: HTTP {self.status_code}: {self.message}"


class AuthenticationError(ProviderHTTPError):
    """HTTP 401 or 403: the API key is missing, wrong or lacks permission."""


class ContentFilterError(ProviderHTTPError):
    """HTTP 400 because the provider's content filter blocked the prompt (Azure OpenAI's
    ``code: content_filter``). ``body`` holds the provider's filter results (Azure: under
    ``error.innererror.content_filter_result``). A reply the filter stops once it has
    started is not an error: it finishes with ``finish_reason == "content_filter"``."""

    def __str__(self) -> str:
        return f"{self.provider}: HTTP {self.status_code}: blocked by the content filter: {self.message}"


class NotFoundError(ProviderHTTPError):
    """HTTP 404: usually a wrong model name or ``base_url``."""


class RateLimitError(ProviderHTTPError):
    """HTTP 429: rate limit or quota exceeded."""


class ServerError(ProviderHTTPError):
    """HTTP 5xx: the provider failed."""


def http_error_class(status_code: int) -> type[ProviderHTTPError]:
    """The most specific :class:`ProviderHTTPError` subclass for a status code."""
    if status_code in (401, 403):
        return AuthenticationError
    if status_code == 404:
        return NotFoundError
    if status_code == 429:
        return RateLimitError
    if status_code >= 500:
        return ServerError
    return ProviderHTTPError


class StreamError(StreamwrapError):
    """The stream failed after it started.

    ``partial_text`` and ``partial_reasoning`` hold what arrived before the failure, and
    ``response_id`` names the response; the response itself keeps usage received so far.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        partial_text: str = "",
        partial_reasoning: str = "",
        response_id: str | None = None,
        code: str | None = None,
    ) -> None:
        self.message = redact_urls(message)
        self.provider = provider
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning
        self.response_id = response_id
        self.code = code
        super().__init__(self.message)

    def __str__(self) -> str:
        code = f" [{self.code}]" if self.code else ""
        return f"{self.provider}: {self.message}{code} (after {len(self.partial_text)} characters of text)"


class ProviderStreamError(StreamError):
    """The provider reported an error inside the stream (an error event or error object)."""


class StreamProtocolError(StreamError):
    """The stream's bytes could not be decoded (malformed JSON, invalid UTF-8)."""


class StreamInterruptedError(StreamError):
    """The connection dropped, or the body ended before the provider said it was finished."""


class StreamTimeoutError(StreamError):
    """No first token, or no new token, arrived within the configured time."""
