"""The base class of every wire mapper: one provider's stream format, body bytes → deltas.

A mapper is fed the body's bytes one network read at a time (by :class:`BodyUpstream`) and
returns the deltas each read completed. What every format shares lives here: the decoder
(SSE, NDJSON) that cuts the bytes into events, the check for JSON of the wrong shape, the
rule for an error that breaks a read after good events ("deliver the good deltas, then
raise"), and the end of the body (flush the decoder; a stream that never said it was done
was cut short). A provider's mapper writes only "one decoded event → deltas".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from .._delta import Delta
from .._errors import StreamError, StreamInterruptedError
from ._wire_shape import SHAPE_ERRORS, shape_error

__all__ = ["Decoder", "WireMapper"]

EventT = TypeVar("EventT")


class Decoder(Protocol[EventT]):
    """A sans-I/O decoder: bytes in as the network delivers them, complete events out
    (:class:`~streamwrap._transport._sse.SSEDecoder`,
    :class:`~streamwrap._transport._ndjson.NDJSONDecoder`)."""

    def feed(self, chunk: bytes) -> list[EventT]:
        """Decode one network read; return the events it completed."""
        ...

    def close(self) -> list[EventT]:
        """End of body: return the events still held back (a last event whose terminator
        never came)."""
        ...


class WireMapper(ABC, Generic[EventT]):
    """Maps one provider's stream, body bytes → deltas; subclass it for a new format.

    **What to write.** A subclass passes its decoder to ``__init__`` (an ``SSEDecoder()``,
    an ``NDJSONDecoder()``, or any object with the same ``feed``/``close``), sets the two
    class attributes :attr:`expected_shape` and :attr:`unfinished_message`, and implements

    - :meth:`map_event`: one decoded event → deltas appended to ``out``. It reads the JSON
      plainly (``obj["key"]``, ``.get``): JSON of the wrong shape raises one of
      ``SHAPE_ERRORS`` (``KeyError``, ``TypeError``, ...), which becomes a
      :class:`StreamProtocolError` that names :attr:`expected_shape`. An error the provider
      reports in the stream is raised as a :class:`StreamError` (usually
      :class:`ProviderStreamError`).
    - :meth:`ended`: whether the stream said it was done (a ``[DONE]``, a finish reason, a
      ``"done": true`` line). Events after that point are the subclass's to ignore.

    Optionally, :meth:`after_read` (say, one usage report per read rather than per event)
    and :meth:`map_last_event` (an event completed only by the end of the body).

    **What ``feed`` and ``end`` guarantee** (how :class:`BodyUpstream` drives a mapper):

    - ``feed(chunk)`` returns the deltas of the events that read completed, in order
      (often none: a read may end mid-event). A read with good events and then a broken
      one returns the good deltas and *holds* the error in :attr:`error`; the upstream
      delivers the deltas, then raises it, so that the error's ``partial_text`` includes
      everything that arrived before it. With no good delta the error is raised at once.
      A held error is raised again by every later ``feed`` or ``end``.
    - ``end()`` flushes the decoder and maps what it held back, then raises
      :class:`StreamInterruptedError` (:attr:`unfinished_message`) unless :meth:`ended`;
      it returns the last deltas. An error at the end is raised, not held.
    - JSON of the wrong shape leaves ``feed`` and ``end`` as a :class:`StreamProtocolError`,
      never as a bare ``KeyError``; a :meth:`map_event` that raises nothing but
      :class:`StreamError` and ``SHAPE_ERRORS`` makes every error a :class:`StreamError`.

    A subclass that declares ``__slots__`` (as the built-in ones do) keeps the per-read
    attribute reads cheap; one without works too.
    """

    __slots__ = ("decoder", "error", "provider")

    #: The JSON shape the stream should have, for the message of a shape error: "the
    #: stream does not have <expected_shape> (KeyError: 'choices')".
    expected_shape: ClassVar[str]
    #: The message of the :class:`StreamInterruptedError` raised when the body ends before
    #: the stream did (:meth:`ended` is false).
    unfinished_message: ClassVar[str]
    # Whether the class has an after_read of its own: most have none, and a call that does
    # nothing is worth sparing on every read.
    _after_read: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._after_read = cls.after_read is not WireMapper.after_read

    def __init__(self, provider: str, decoder: Decoder[EventT]) -> None:
        #: The provider name the errors carry.
        self.provider = provider
        self.decoder = decoder
        #: An error held back to be raised after the deltas of the read it broke.
        self.error: StreamError | None = None

    @abstractmethod
    def map_event(self, event: EventT, out: list[Delta]) -> None:
        """Append the deltas of one decoded event to ``out``."""

    @abstractmethod
    def ended(self) -> bool:
        """Whether the stream said it was done; checked at the end of the body."""

    def map_last_event(self, event: EventT, out: list[Delta]) -> None:
        """Map an event the decoder completed only because the body ended (an NDJSON line
        without its newline, an SSE event without its blank line); by default as any
        other. Called inside the same shape check as :meth:`map_event`."""
        self.map_event(event, out)

    def after_read(self, out: list[Delta]) -> None:
        """Called once a read's events are mapped (also when one of them failed, before
        the error is held), and at the end of the body: deltas appended here are
        delivered with the read's. Does nothing by default."""

    def feed(self, chunk: bytes) -> list[Delta]:
        """Decode one network read; return the deltas it completed (see the class)."""
        if self.error is not None:
            raise self.error
        events = self.decoder.feed(chunk)
        if not events:
            return []
        out: list[Delta] = []
        try:
            for event in events:
                self.map_event(event, out)
        except SHAPE_ERRORS as exc:
            error: StreamError = shape_error(exc, self.provider, self.expected_shape)
        except StreamError as exc:
            error = exc
        else:
            if self._after_read:
                self.after_read(out)
            return out
        self.after_read(out)
        if not out:
            # Raised here, outside the except clauses: the decoding exception behind a
            # shape error is summed up in its message, and its frames hold the raw bytes.
            raise error from None
        self.error = error
        return out

    def end(self) -> list[Delta]:
        """End of body: return the last deltas, or raise if the stream was cut short."""
        if self.error is not None:
            raise self.error
        out: list[Delta] = []
        try:
            for event in self.decoder.close():
                self.map_last_event(event, out)
        except SHAPE_ERRORS as exc:
            raise shape_error(exc, self.provider, self.expected_shape) from None
        self.after_read(out)
        if not self.ended():
            raise StreamInterruptedError(self.unfinished_message, provider=self.provider)
        return out
