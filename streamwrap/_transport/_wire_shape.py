"""JSON of the wrong shape in a provider's stream, for every wire mapper.

Mappers read decoded JSON with plain ``obj["key"]`` / ``.get`` and let a chunk of the wrong
shape (a list where an object belongs, a number where text belongs, a missing key) raise one
of :data:`SHAPE_ERRORS`; they catch those once around a whole batch and raise
:func:`shape_error` instead, so callers see a :class:`StreamProtocolError`, never a bare
``KeyError``, and the per-chunk path carries no checks.

Also the readers every mapper uses on such JSON: a document (:func:`event_json`), text,
counts and labels, and a provider's error object (:func:`error_fields`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .._errors import StreamProtocolError

__all__ = [
    "SHAPE_ERRORS",
    "count",
    "error_fields",
    "event_json",
    "label",
    "optional_text",
    "shape_error",
    "text",
]

SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError)
"""What reading JSON of the wrong shape raises (a list where an object belongs, a missing
key, text where a number belongs): a wire mapper's ``map_event`` lets them rise."""


def event_json(data: bytes, provider: str, what: str = "data") -> Any:
    """The JSON document of one event (an SSE ``data`` field, an NDJSON line); malformed
    JSON is a :class:`StreamProtocolError` that quotes the start of ``data``."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StreamProtocolError(
            f"malformed JSON in the stream: {exc} ({what}: {data[:120]!r})", provider=provider
        ) from None


def shape_error(exc: Exception, provider: str, shape: str) -> StreamProtocolError:
    """The protocol error for ``exc``, raised while reading JSON that should have ``shape``."""
    return StreamProtocolError(
        f"the stream does not have {shape} ({type(exc).__name__}: {exc})", provider=provider
    )


def text(value: Any) -> str:
    """``value`` if it is text; a ``TypeError`` (a shape error) otherwise."""
    if type(value) is not str:
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def optional_text(value: Any) -> str | None:
    """``None`` for an absent or empty value, else ``value`` if it is text; a
    ``TypeError`` (a shape error) otherwise. For tool-call ids and names."""
    if not value:
        return None
    return text(value)


def label(value: Any) -> str | None:
    """``value`` if it is non-empty text, else ``None``: for a response's id and model,
    which only label it, so that an odd value there is dropped rather than failing the
    stream."""
    return value if type(value) is str and value else None


def count(value: Any) -> int | None:
    """A token count: ``value`` if it is an integer, else ``None`` (unknown, never a
    string or a float passed off as a count; ``True`` is not 1)."""
    return value if type(value) is int else None


def error_fields(err: Any, code_keys: tuple[str, ...] = ("code",)) -> tuple[str, str | None]:
    """The message and code of an error object a provider sent (``{"message", "code"}``).

    The message is ``message`` (or ``msg``), else the whole object as JSON; the code is the
    first of ``code_keys`` whose value is set (not empty), else the last one's value, as
    text (``None`` when absent). Anything but an object is its own message, without a code.
    """
    if isinstance(err, Mapping):
        message = err.get("message") or err.get("msg") or orjson.dumps(err, default=str).decode()
        code = None
        for key in code_keys:
            code = err.get(key)
            if code:
                break
        return str(message), None if code is None else str(code)
    return str(err), None
