"""What the two line-based decoders (SSE, NDJSON) share: the bytes of an unfinished line,
held back until the next read, and the start of the body, where a UTF-8 BOM is dropped."""

from __future__ import annotations

__all__ = ["LineBuffer"]

_BOM = b"\xef\xbb\xbf"


class LineBuffer:
    """The base of a decoder whose ``feed`` starts::

        buf = self._tail + chunk if self._tail else chunk
        if not self._started:
            buf = self._start(buf)
            if not buf:
                return []

    and keeps the unfinished end of ``buf`` in ``_tail``. (The check of ``_started`` is in
    ``feed`` itself, so that a read after the first costs no call.) ``_start`` is called
    for every read until it sets ``_started``: a subclass that must see more of the body's
    start before decoding it (Gemini's, which tells SSE from a JSON document) extends it.
    """

    __slots__ = ("_started", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        self._started = False

    def _start(self, buf: bytes) -> bytes:
        """The first bytes of the body, ``buf``, without a leading UTF-8 BOM; nothing
        while they are fewer than three and could still be the start of one (then they
        are held back in ``_tail``)."""
        if len(buf) < 3 and _BOM.startswith(buf):
            self._tail = buf
            return b""
        self._started = True
        self._tail = b""
        return buf[3:] if buf.startswith(_BOM) else buf
