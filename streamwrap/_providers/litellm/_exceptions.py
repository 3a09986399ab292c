"""LiteLLM's exceptions → streamwrap's typed errors.

LiteLLM wraps the provider's error (and the HTTP library's) in exceptions of its own, which
also wrap plain bugs; what happened is told by the chain of causes: a transport error
means the network failed, a status with a real response an HTTP error, anything else
before the request a refusal of LiteLLM's own (a :class:`ConfigError`). Messages are
scrubbed of the key, since LiteLLM's may quote it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from ..._errors import (
    ConfigError,
    ProviderConnectionError,
    ProviderStreamError,
    StreamError,
    StreamInterruptedError,
    StreamProtocolError,
    StreamwrapError,
)
from ..._secret import Secret, scrub
from ..._transport._http_error import http_error

__all__ = ["UNFINISHED", "open_error", "stream_error"]

# How many causes to follow when classifying an exception LiteLLM raised.
_CHAIN_LIMIT = 12


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, outermost first (LiteLLM wraps the provider's error)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(out) < _CHAIN_LIMIT and current not in out:
        out.append(current)
        # Newer LiteLLM re-raises mid-stream failures as MidStreamFallbackError, which keeps
        # the error it replaces in `original_exception` rather than as the cause.
        original = getattr(current, "original_exception", None)
        current = (
            original if isinstance(original, BaseException) else current.__cause__ or current.__context__
        )
    return out


# LiteLLM (1.10x) reports a stream that ended without a finish reason by raising an
# httpx.RemoteProtocolError that it then drops from the chain: only its message is left.
_ENDED_UNFINISHED = "Stream ended before a finish_reason was received"


#: The message of a stream that ended without the provider's finish reason.
UNFINISHED = "the stream ended before the provider finished (no finish reason)"


def _ended_unfinished(chain: list[BaseException]) -> bool:
    return any(_ENDED_UNFINISHED in str(exc) for exc in chain)


def _transport_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "no (complete) HTTP response": the network failed.

    Looked up among the modules already imported (LiteLLM imported the ones it uses), so
    nothing is imported for this.
    """
    found: list[type[BaseException]] = [OSError]
    for module, name in (
        ("httpx", "TransportError"),
        ("aiohttp", "ClientConnectionError"),
        ("aiohttp", "ClientPayloadError"),
        ("openai", "APIConnectionError"),
    ):
        candidate = getattr(sys.modules.get(module), name, None)
        if isinstance(candidate, type) and issubclass(candidate, BaseException):
            found.append(candidate)
    return tuple(found)


def _is_litellm_wrapper(exc: BaseException) -> bool:
    # LiteLLM's own exception classes wrap anything (its APIConnectionError also wraps
    # plain bugs), so only the errors they wrap tell what happened.
    return type(exc).__module__.startswith("litellm")


def _transport_error(chain: list[BaseException]) -> BaseException | None:
    transport = _transport_types()
    for exc in chain:
        if isinstance(exc, transport) and not _is_litellm_wrapper(exc):
            return exc
    return None


def _root_message(chain: list[BaseException]) -> str:
    """The message of the innermost error that has one: LiteLLM's wrappers prefix theirs
    with class names, the provider's own (``message`` of the SDK's or LiteLLM's provider
    exception) says what happened."""
    for exc in reversed(chain):
        message = getattr(exc, "message", None)
        if isinstance(message, str) and message.strip():
            return message
    return str(chain[-1]) or type(chain[-1]).__name__


def _status_code(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    return status if isinstance(status, int) and not isinstance(status, bool) and status >= 400 else None


def _error_body(chain: list[BaseException], status: int) -> Any:
    """The body the provider sent with ``status``, as close to its bytes as LiteLLM kept."""
    for exc in chain:
        response = getattr(exc, "response", None)
        if getattr(response, "status_code", None) == status:
            try:
                content = response.content  # type: ignore[union-attr]
            except Exception:  # a streamed response whose body was never read
                content = None
            if isinstance(content, (bytes, bytearray)) and content:
                return bytes(content)
    for exc in chain:
        body = getattr(exc, "body", None)
        if body is not None and not callable(body):
            return body
    return _root_message(chain)


def _error_headers(chain: list[BaseException]) -> Mapping[str, str] | None:
    for exc in chain:
        for name in ("litellm_response_headers", "headers"):
            headers = getattr(exc, name, None)
            if isinstance(headers, Mapping):
                return headers
    return None


def _got_response(chain: list[BaseException], status: int) -> bool:
    """Whether the provider really answered ``status`` (LiteLLM also gives a status code,
    and a made-up response, to errors of its own, raised before anything was sent)."""
    for exc in chain:
        if getattr(exc, "litellm_response_headers", None) is not None:
            return True
        if (
            not _is_litellm_wrapper(exc)
            and getattr(getattr(exc, "response", None), "status_code", None) == status
        ):
            return True  # httpx's HTTPStatusError, the openai SDK's APIStatusError
    return False


def open_error(exc: Exception, provider: str, secret: Secret | None) -> StreamwrapError:
    """The typed error for an exception raised by ``acompletion`` (before any chunk)."""
    chain = _chain(exc)
    failed = _transport_error(chain)
    if failed is not None:
        # Checked before the status: LiteLLM reports a refused connection as HTTP 500.
        detail = str(scrub(f"{type(failed).__name__}: {failed}", secret))
        return ProviderConnectionError(f"no response from the provider ({detail})", provider=provider)
    status = _status_code(exc)
    if status is not None and _got_response(chain, status):
        return http_error(
            provider=provider,
            status_code=status,
            body=_error_body(chain, status),
            headers=_error_headers(chain),
            secret=secret,
        )
    # LiteLLM refused the call itself: a model string without a known route, no API key
    # for the provider, a parameter the provider does not take, a missing package.
    message = scrub(_root_message(chain), secret)
    return ConfigError(f"LiteLLM did not send the request: {message}")


def stream_error(exc: Exception, provider: str, secret: Secret | None) -> StreamError:
    """The typed error for an exception raised while iterating a LiteLLM stream."""
    import json

    chain = _chain(exc)
    bad = next((e for e in chain if isinstance(e, (json.JSONDecodeError, UnicodeDecodeError))), None)
    if bad is not None:
        message = scrub(f"the stream does not parse ({type(bad).__name__}: {bad})", secret)
        return StreamProtocolError(str(message), provider=provider)
    failed = _transport_error(chain)
    if failed is not None:
        message = scrub(f"connection lost mid-stream ({type(failed).__name__}: {failed})", secret)
        return StreamInterruptedError(str(message), provider=provider)
    if _ended_unfinished(chain):
        return StreamInterruptedError(UNFINISHED, provider=provider)
    # Anything else is an error the provider reported in the stream (an SSE error event,
    # an error object), which LiteLLM re-raises as one of its own.
    code = next((getattr(e, "code", None) for e in reversed(chain) if getattr(e, "code", None)), None)
    return ProviderStreamError(
        str(scrub(_root_message(chain), secret)),
        provider=provider,
        code=None if code is None else str(code),
    )
