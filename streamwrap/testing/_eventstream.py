"""AWS event stream framing (``application/vnd.amazon.eventstream``), the writing side: the
emulator's Bedrock dialect frames its events with it, and tests and benchmarks build
frames with it.

The format (see AWS's "event stream encoding"): a 12-byte prelude (total length, headers
length, CRC32 of those 8 bytes), the headers, the payload, and a CRC32 of everything
before it. Written here, not imported from the package's decoder, because the emulator
imports nothing of streamwrap; botocore's parser reads what it writes in the tests.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

__all__ = ["EVENTSTREAM_CONTENT_TYPE", "eventstream_frames", "eventstream_message"]

_U16 = struct.Struct(">H")
EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"


def eventstream_message(headers: Mapping[str, str | bytes | bool | int], payload: bytes) -> bytes:
    """One message: ``str`` headers are type 7 (text), ``bytes`` type 6, ``bool`` types 0
    and 1, ``int`` type 4 (int32)."""
    parts: list[bytes] = []
    for name, value in headers.items():
        raw_name = name.encode()
        head = bytes([len(raw_name)]) + raw_name
        if isinstance(value, bool):
            parts.append(head + (b"\x00" if value else b"\x01"))
        elif isinstance(value, int):
            parts.append(head + b"\x04" + struct.pack(">i", value))
        else:
            raw = value.encode() if isinstance(value, str) else value
            kind = b"\x07" if isinstance(value, str) else b"\x06"
            parts.append(head + kind + _U16.pack(len(raw)) + raw)
    header_bytes = b"".join(parts)
    prelude = struct.pack(">II", 16 + len(header_bytes) + len(payload), len(header_bytes))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + header_bytes + payload
    return message + struct.pack(">I", zlib.crc32(message))


def eventstream_frames(body: bytes) -> list[bytes]:
    """``body`` cut at its messages' boundaries, as their total-length prefixes say (a
    replay's ``split="event"``); whatever is left after the last whole message (a frame
    cut short, or not an event stream at all) is one last piece."""
    pieces: list[bytes] = []
    at = 0
    while len(body) - at >= 12:
        (total,) = struct.unpack_from(">I", body, at)
        if total < 16 or at + total > len(body):
            break
        pieces.append(body[at : at + total])
        at += total
    if at < len(body):
        pieces.append(body[at:])
    return pieces
