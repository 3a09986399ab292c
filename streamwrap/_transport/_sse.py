"""A sans-I/O decoder for Server-Sent Events (the WHATWG ``text/event-stream`` format).

Bytes go in as the network delivers them, complete events come out; no I/O, no event
loop, so every provider and every test can drive it the same way. Handles LF, CRLF and
bare CR line endings (also a CRLF split across two reads), comment lines (``: keep-alive``),
multi-line ``data``, a leading UTF-8 BOM, and ``event``/``id``/``retry`` fields. Event data
stays ``bytes``: orjson parses bytes directly, so nothing is decoded twice.
"""

from __future__ import annotations

from typing import NamedTuple

from ._line_buffer import LineBuffer

__all__ = ["SSEDecoder", "ServerSentEvent"]


class ServerSentEvent(NamedTuple):
    data: bytes
    event: str | None = None
    id: str | None = None
    retry: int | None = None


_new_event = tuple.__new__


class SSEDecoder(LineBuffer):
    """Feed bytes with :meth:`feed`, call :meth:`close` at the end of the body.

    ``comments`` counts comment lines seen (keep-alives); ``events`` counts events.
    """

    __slots__ = ("_data", "_event", "_id", "_retry", "comments", "events")

    def __init__(self) -> None:
        super().__init__()
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self.comments = 0
        self.events = 0

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode one network read; returns the events it completed (often none or one)."""
        buf = self._tail + chunk if self._tail else chunk
        if not self._started:
            buf = self._start(buf)
            if not buf:
                return []
        hold = b""
        # find(), not ``in``: ``b"\r" in buf`` first tries the operand as an integer and
        # raises and clears a TypeError, on every read (a tenth of the decoder's time).
        if buf.find(b"\r") != -1:
            # A trailing CR may be the first half of a CRLF whose LF is in the next read:
            # keep it back so that the pair is not taken for two line endings.
            if buf.endswith(b"\r"):
                hold = b"\r"
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._tail = lines.pop() + hold
        return self._lines(lines)

    def close(self) -> list[ServerSentEvent]:
        """End of body: completes a last event whose terminating blank line never came."""
        tail, self._tail = self._tail, b""
        lines = tail.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n") if tail else []
        lines.append(b"")
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[ServerSentEvent]:
        out: list[ServerSentEvent] = []
        # The three lines of a typical event (``event:``, ``data:``, blank) are handled
        # here, inline: a method call per line was a third of the decoder's time; the
        # other fields go through _line. (Slices compared, not startswith(): its argument
        # parsing cost more than the comparison. A one-byte slice is a cached object.)
        for line in lines:
            if line[:5] == b"data:":
                value = line[5:]
                self._data.append(value[1:] if value[:1] == b" " else value)
            elif not line:
                data = self._data
                if data:
                    self._data = []
                    self.events += 1
                    # tuple.__new__ directly: the NamedTuple's own __new__ is a Python
                    # function, one more frame per event.
                    out.append(
                        _new_event(
                            ServerSentEvent,
                            (
                                data[0] if len(data) == 1 else b"\n".join(data),
                                self._event,
                                self._id,
                                self._retry,
                            ),
                        )
                    )
                self._event = None
            elif line[:6] == b"event:":
                value = line[6:]
                if value[:1] == b" ":
                    value = value[1:]
                self._event = value.decode("utf-8", "replace")
            else:
                self._line(line)
        return out

    def _line(self, line: bytes) -> None:
        """A line that is not ``data:``, ``event:`` or blank: a comment, or another field."""
        if line[0] == 0x3A:  # ':' starts a comment
            self.comments += 1
            return
        field, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if field == b"event":  # ("event" with no colon: an empty name)
            self._event = value.decode("utf-8", "replace")
        elif field == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif field == b"retry":
            # Bounded: a 5000-digit "retry" would make int() itself raise.
            if value.isdigit() and len(value) < 16:
                self._retry = int(value)
        elif field == b"data":  # "data" with no colon: an empty data line
            self._data.append(value)
        # Other field names are ignored, as the specification requires.
