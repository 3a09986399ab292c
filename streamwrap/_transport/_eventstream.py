"""A sans-I/O decoder for AWS event streams (``application/vnd.amazon.eventstream``).

Bytes go in as the network delivers them, cut anywhere; whole messages (their headers and
payload) come out. No I/O, no event loop, as the SSE and NDJSON decoders beside it. The
binary framing, as AWS documents it (and botocore reads it), big-endian throughout::

    total length   uint32   the whole message, these 4 bytes and the final CRC included
    headers length uint32
    prelude CRC    uint32   CRC32 of the 8 bytes above
    headers        headers length bytes: name length (uint8), name (UTF-8), value type
                   (uint8), value (bool types 0/1 carry none; 2/3/4/5 a signed int of
                   1/2/4/8 bytes; 6 bytes and 7 UTF-8 text with a uint16 length; 8 a
                   timestamp, int64 milliseconds; 9 a 16-byte UUID)
    payload        total length - headers length - 16 bytes
    message CRC    uint32   CRC32 of every byte of the message before it

Both checksums are verified (``zlib.crc32``); a mismatch, an impossible length, a header
that runs past its section, or a final message cut short at the end of the body is a
:class:`StreamProtocolError` saying which, never silently skipped: after a broken prelude
nothing later in the stream can be trusted to start where the lengths say.

Why streamwrap's own decoder rather than ``botocore.eventstream.EventStreamBuffer``
(measured with ``python benchmarks/bench_eventstream.py``, per message of a real
ConverseStream body, 5,749 bytes in 25 messages; medians, process CPU, this machine):
fed in one read, botocore's costs about 8 µs a message and this one about 3 µs; fed in
7-byte reads, 25 µs against 7 µs (botocore's copies its whole buffer on every read,
``self._data += data``; this one appends to a ``bytearray``, looks at it only once the
bytes it waits for are there, and parses each distinct header section once). A network
read usually carries one message, and the whole per-chunk budget of a wrapper is about
15 µs (DESIGN.md §2), so the difference matters.
Beside the cost, botocore's is not shaped as the mappers' decoders are (an iterator over
an internal buffer that raises its own exception types) and would make the decoder, and
its fuzz tests, depend on the ``bedrock`` extra. The format is small and fixed; botocore
remains the reference the tests hold this decoder to (``tests/transport/
test_eventstream.py`` and the emulator's fidelity test read the same bytes with both).
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from .._errors import StreamProtocolError

__all__ = ["EventStreamDecoder", "EventStreamMessage", "HeaderValue"]

HeaderValue = bool | int | bytes | str
"""A header's value: ``bool`` (types 0 and 1), ``int`` (2 to 5, and 8: a timestamp in
milliseconds), ``bytes`` (6, and 9: a UUID's 16 bytes) or ``str`` (7)."""

_PRELUDE = 12  # total length, headers length, prelude CRC
_MINIMUM = 16  # a prelude and a message CRC, with no headers and no payload
# botocore's limits (botocore/eventstream.py): what AWS services promise never to exceed.
_MAX_HEADERS = 128 * 1024
_MAX_PAYLOAD = 16 * 1024 * 1024
_PRELUDE_STRUCT = struct.Struct(">III")
_SEEN_MAX = 64  # distinct header sections remembered (a stream has a handful)
_U16 = struct.Struct(">H")
# The integer types: (size in bytes, struct of it).
_INTS = {
    2: struct.Struct(">b"),
    3: struct.Struct(">h"),
    4: struct.Struct(">i"),
    5: struct.Struct(">q"),
    8: struct.Struct(">q"),
}


class EventStreamMessage(NamedTuple):
    """One decoded message: its headers by name (a dict shared by the messages whose
    header bytes are the same: read it, do not change it), and its payload bytes (JSON for
    the AWS services streamwrap reads; orjson parses bytes directly)."""

    headers: dict[str, HeaderValue]
    payload: bytes


class EventStreamDecoder:
    """Feed bytes with :meth:`feed`, call :meth:`close` at the end of the body.

    ``provider`` names the errors' provider. ``messages`` counts the messages returned.

    A read that completes good messages and then meets a broken one returns the good ones
    and *holds* the error in :attr:`error` (raised by the next ``feed`` or ``close``), so
    that what arrived before the break is delivered, however the body was cut into reads;
    a wire mapper raises a held error right after the read's deltas (see ``after_read``
    of the Bedrock mappers).
    """

    __slots__ = ("_buf", "_need", "_offset", "_seen", "error", "messages", "provider")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.messages = 0
        self._buf = bytearray()
        # Bytes the buffer must hold before there is anything to decode: a prelude, then,
        # once a prelude is read and checked, the whole message.
        self._need = _PRELUDE
        self._offset = 0  # bytes of the stream before the buffer, for the errors' positions
        #: An error held back to be raised after the messages of the read it broke.
        self.error: StreamProtocolError | None = None
        self._seen: dict[bytes, dict[str, HeaderValue]] = {}  # header sections parsed

    def feed(self, chunk: bytes) -> list[EventStreamMessage]:
        """Decode one network read; return the messages it completed (often one)."""
        if self.error is not None:
            raise self.error
        buf = self._buf
        buf += chunk
        if len(buf) < self._need:
            return []
        out: list[EventStreamMessage] = []
        try:
            self._decode(buf, out)
        except StreamProtocolError as exc:
            if not out:
                raise
            self.error = exc
        self.messages += len(out)
        return out

    def _decode(self, buf: bytearray, out: list[EventStreamMessage]) -> None:
        start = 0
        end = len(buf)
        while end - start >= _PRELUDE:
            total, headers_length, prelude_crc = _PRELUDE_STRUCT.unpack_from(buf, start)
            if self._need == _PRELUDE:
                # Checked once per message, on the read that completes its prelude.
                self._check_prelude(buf, start, total, headers_length, prelude_crc)
            if end - start < total:
                self._need = total
                break
            message_end = start + total
            (message_crc,) = struct.unpack_from(">I", buf, message_end - 4)
            view = memoryview(buf)
            try:
                computed = zlib.crc32(view[start + 8 : message_end - 4], prelude_crc)
            finally:
                view.release()  # (a live view would keep the bytearray from growing)
            if computed != message_crc:
                raise self._error(
                    f"message checksum mismatch (CRC32 {computed:#010x}, the message says "
                    f"{message_crc:#010x})",
                    start,
                )
            payload_start = start + _PRELUDE + headers_length
            # A stream repeats a few header sections (every text delta's are the same):
            # each is parsed once. The dicts are shared, so readers must not change them.
            raw = bytes(buf[start + _PRELUDE : payload_start])
            headers = self._seen.get(raw)
            if headers is None:
                headers = self._headers(buf, start + _PRELUDE, payload_start, start)
                if len(self._seen) < _SEEN_MAX:
                    self._seen[raw] = headers
            out.append(EventStreamMessage(headers, bytes(buf[payload_start : message_end - 4])))
            start = message_end
            self._need = _PRELUDE
            if start:
                # (Dropped as each message is read, so that an error's position is right.)
                del buf[:start]
                self._offset += start
                start, end = 0, len(buf)

    def close(self) -> list[EventStreamMessage]:
        """End of body: nothing is held back in this format (a message is complete or it is
        not), so bytes left over are a message cut short: a :class:`StreamProtocolError`."""
        if self.error is not None:
            raise self.error
        left = len(self._buf)
        if not left:
            return []
        if left < _PRELUDE:
            what = f"{left} bytes of a {_PRELUDE}-byte prelude"
        else:
            what = f"{left} of the {self._need} bytes its prelude announced"
        raise self._error(f"the body ended inside a message ({what})", 0)

    def _check_prelude(self, buf: bytearray, start: int, total: int, headers: int, crc: int) -> None:
        computed = zlib.crc32(bytes(buf[start : start + 8]))
        if computed != crc:
            raise self._error(
                f"prelude checksum mismatch (CRC32 {computed:#010x}, the prelude says {crc:#010x})", start
            )
        if total < _MINIMUM or headers > total - _MINIMUM:
            raise self._error(f"impossible lengths (message {total} bytes, headers {headers} bytes)", start)
        if headers > _MAX_HEADERS or total - headers - _MINIMUM > _MAX_PAYLOAD:
            raise self._error(
                f"a message larger than the format allows (headers {headers} bytes, payload "
                f"{total - headers - _MINIMUM} bytes; at most {_MAX_HEADERS} and {_MAX_PAYLOAD})",
                start,
            )

    def _headers(self, buf: bytearray, at: int, end: int, message: int) -> dict[str, HeaderValue]:
        headers: dict[str, HeaderValue] = {}
        try:
            while at < end:
                size = buf[at]
                name = buf[at + 1 : at + 1 + size].decode()
                at += 1 + size
                kind = buf[at]
                at += 1
                value: HeaderValue
                if kind == 7 or kind == 6:
                    (length,) = _U16.unpack_from(buf, at)
                    at += 2
                    raw = bytes(buf[at : at + length])
                    at += length
                    value = raw.decode() if kind == 7 else raw
                elif kind == 0 or kind == 1:
                    value = kind == 0
                elif kind == 9:
                    value = bytes(buf[at : at + 16])
                    at += 16
                else:
                    unpack = _INTS[kind]
                    (value,) = unpack.unpack_from(buf, at)
                    at += unpack.size
                if at > end:
                    raise IndexError("a header runs past the headers")
                headers[name] = value
        except (IndexError, KeyError, struct.error, UnicodeDecodeError) as exc:
            # (KeyError: an unknown value type; struct.error and IndexError: a value cut
            # off by the end of the headers.)
            reason = f"unknown header value type {exc}" if isinstance(exc, KeyError) else str(exc)
            raise self._error(f"malformed headers ({reason})", message) from None
        return headers

    def _error(self, what: str, at: int) -> StreamProtocolError:
        return StreamProtocolError(
            f"broken event stream (vnd.amazon.eventstream) at byte {self._offset + at}: {what}",
            provider=self.provider,
        )
