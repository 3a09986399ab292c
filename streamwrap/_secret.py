"""API keys kept out of reprs, logs, error messages and the locals of tracebacks.

Where the key may surface:

- in what a server sends back: an HTTP error body, an error event, a malformed line that
  echoes it. Bodies are :func:`scrub`-bed before an error is built, and errors that come
  out of a response pass through :func:`redact_error` (their message, code and body
  scrubbed);
- in the locals of the frames an error passes through, which reporters such as Sentry or
  ``traceback.TracebackException(capture_locals=True)`` print. The decoders' frames hold
  the raw bytes they were decoding, so an error that leaves a response loses the frames
  below that point (:func:`redact_error`, and ``RedactingUpstream`` in the transport's
  ``_upstream``); and the key itself is revealed only inside the expression that hands it
  to an SDK or an HTTP client, never bound to a local variable or stored in a dict of our
  own.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ._url_redaction import MASK as _MASK
from ._url_redaction import redact_urls

__all__ = ["Secret", "redact_error", "scrub"]

_Error = TypeVar("_Error", bound=BaseException)


class Secret:
    """A string that never shows itself: ``repr`` and ``str`` print ``'**********'``.

    Call :meth:`reveal` at the one place the value is handed to an SDK.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        # Pickling would write the key to disk or a socket in clear: refuse.
        raise TypeError("streamwrap.Secret cannot be pickled")


def scrub(value: Any, secret: Secret | None) -> Any:
    """``value`` (str, or nested dict/list) with any occurrence of the secret replaced, and
    the credentials of any URL in it masked (a server's error body may quote the URL it
    was asked for, query string and all)."""
    if isinstance(value, str):
        value = redact_urls(value)
        if secret is None or len(secret.reveal()) < 4:
            return value
        return value.replace(secret.reveal(), _MASK) if secret.reveal() in value else value
    if isinstance(value, dict):
        return {k: scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secret) for v in value]
    return value


def redact_error(error: _Error, secret: Secret | None) -> _Error:
    """``error`` made safe to show, log and report, in place: the key scrubbed out of its
    ``message``, ``code``, ``body`` and ``args``; its traceback dropped (the frames below
    the caller hold the raw bytes the server sent in their locals, and those bytes may
    echo the key); a suppressed context dropped too (a decoder's exception, whose
    document is those bytes). An explicit ``__cause__`` is kept.

    Called where an error leaves a response; the error's own fields say what happened.
    """
    if secret is not None:
        for name in ("message", "code", "body"):
            value = getattr(error, name, None)
            if value is not None:
                setattr(error, name, scrub(value, secret))
        error.args = tuple(scrub(arg, secret) for arg in error.args)
    if error.__suppress_context__:
        error.__context__ = None
    return error.with_traceback(None)
