"""A sans-I/O decoder for newline-delimited JSON (NDJSON, ``application/x-ndjson``).

Bytes go in as the network delivers them, complete lines come out, still as ``bytes``:
orjson parses bytes directly (and rejects invalid UTF-8 itself), so nothing is decoded
twice. Lines stay bytes until then, which is also why a read that ends inside a multi-byte
UTF-8 character needs no care: ``\\n`` (0x0A) never occurs inside one, so a split is only
ever made between whole characters. Handles LF and CRLF endings (also a CRLF cut across
two reads), blank lines (skipped: some servers send them as keep-alives) and a leading
UTF-8 BOM. No I/O, no event loop: every provider and every test drives it the same way.
"""

from __future__ import annotations

from ._line_buffer import LineBuffer

__all__ = ["NDJSONDecoder"]

_BLANK = b" \t\r\n"


class NDJSONDecoder(LineBuffer):
    """Feed bytes with :meth:`feed`, call :meth:`close` at the end of the body.

    ``lines`` counts the (non-blank) lines returned; ``blank_lines`` the skipped ones.
    """

    __slots__ = ("blank_lines", "lines")

    def __init__(self) -> None:
        super().__init__()
        self.lines = 0
        self.blank_lines = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """Decode one network read; return the lines it completed, without their line
        endings (often exactly one: servers usually write a line at a time)."""
        buf = self._tail + chunk if self._tail else chunk
        if not self._started:
            buf = self._start(buf)
            if not buf:
                return []
        parts = buf.split(b"\n")
        # Whatever follows the last newline is an unfinished line (empty when the read
        # ended exactly at a newline, the common case). A CR at its end stays with it and
        # is stripped once its LF arrives, so a CRLF cut in two is still one line ending.
        self._tail = parts.pop()
        out: list[bytes] = []
        for line in parts:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.strip(_BLANK):
                out.append(line)
            else:
                self.blank_lines += 1
        self.lines += len(out)
        return out

    def close(self) -> list[bytes]:
        """End of body: the last line if the body did not end with a newline (a server
        may omit it), else nothing. Whether that line is complete JSON or a line cut off
        mid-way is for the caller's parser to find out."""
        tail, self._tail = self._tail, b""
        # (A body of one or two bytes held back as a possible BOM start ends up here too:
        # not a whole BOM, so it is data.)
        if tail.endswith(b"\r"):
            tail = tail[:-1]
        if not tail.strip(_BLANK):
            return []
        self.lines += 1
        return [tail]

    @property
    def pending(self) -> int:
        """Bytes held back as the start of an unfinished line."""
        return len(self._tail)
