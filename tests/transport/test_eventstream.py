"""The AWS event stream decoder (``streamwrap/_transport/_eventstream.py``): messages out at
any cut, both checksums verified, and every broken input a :class:`StreamProtocolError`.

botocore's own parser (``botocore.eventstream.EventStreamBuffer``) is the reference: on the
real Bedrock recordings and on frames of every header type, both must read the same
headers and payloads. The hypothesis tests feed random bytes, cut frames and flipped bits:
only typed errors come out, never a hang, and never a message that differs from what was
framed (a CRC32 catches every flip of up to 32 bits in one place).
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamwrap import StreamProtocolError, StreamwrapError
from streamwrap._transport._eventstream import EventStreamDecoder, EventStreamMessage
from streamwrap.testing._eventstream import eventstream_message
from tests.support import recordings as _recordings

botocore_eventstream = pytest.importorskip("botocore.eventstream")

BEDROCK = _recordings.params(
    "recording",
    [r for r in _recordings.everything() if r.provider == "bedrock" and r.body_path.suffix == ".bin"],
    what="bedrock event stream",
)

_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def pieces(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(min(max(c, 0), len(body)) for c in cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


def decode(chunks: Sequence[bytes]) -> list[EventStreamMessage]:
    decoder = EventStreamDecoder("bedrock")
    out: list[EventStreamMessage] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.close())
    assert decoder.messages == len(out)
    return out


def botocore_decode(body: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = botocore_eventstream.EventStreamBuffer()
    buffer.add_data(body)
    return [(dict(m.headers), m.payload) for m in buffer]


def outcome(chunks: Sequence[bytes]) -> tuple[str | None, list[EventStreamMessage]]:
    """The messages, and the error that stopped the decoder (its message), if any. Anything
    but a StreamwrapError propagates and fails the test."""
    decoder = EventStreamDecoder("bedrock")
    out: list[EventStreamMessage] = []
    try:
        for chunk in chunks:
            out.extend(decoder.feed(chunk))
        out.extend(decoder.close())
    except StreamwrapError as exc:
        assert isinstance(exc, StreamProtocolError), exc
        return str(exc), out
    return None, out


EVENT = {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"}


def test_one_message() -> None:
    frame = eventstream_message(EVENT, b'{"delta":{"text":"Hi"}}')
    assert decode([frame]) == [EventStreamMessage(EVENT, b'{"delta":{"text":"Hi"}}')]


def test_every_header_type_reads_as_botocore_reads_it() -> None:
    uuid = bytes(range(16))
    headers = (
        b"\x01t\x00"  # true
        + b"\x01f\x01"  # false
        + b"\x01b\x02\xff"  # byte -1
        + b"\x01s\x03\x80\x00"  # short
        + b"\x01i\x04\x7f\xff\xff\xff"  # int
        + b"\x01l\x05"
        + struct.pack(">q", -(2**40))  # long
        + b"\x01y\x06\x00\x03abc"  # bytes
        + b"\x01z\x07\x00\x03\xc3\xa9!"  # text (UTF-8)
        + b"\x01d\x08"
        + struct.pack(">q", 1_700_000_000_000)  # timestamp
        + b"\x01u\x09"
        + uuid
    )
    payload = b"payload"
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    frame = message + struct.pack(">I", zlib.crc32(message))
    (decoded,) = decode([frame])
    assert decoded.headers == {
        "t": True,
        "f": False,
        "b": -1,
        "s": -32768,
        "i": 2**31 - 1,
        "l": -(2**40),
        "y": b"abc",
        "z": "é!",
        "d": 1_700_000_000_000,
        "u": uuid,
    }
    assert decoded.payload == payload
    ((boto_headers, boto_payload),) = botocore_decode(frame)
    assert boto_payload == payload
    assert boto_headers == decoded.headers


def test_empty_message_and_empty_body() -> None:
    assert decode([eventstream_message({}, b"")]) == [EventStreamMessage({}, b"")]
    assert decode([]) == []
    assert decode([b""]) == []


@pytest.mark.parametrize("recording", BEDROCK)
def test_recordings_read_as_botocore_reads_them(recording: _recordings.Recording) -> None:
    body = recording.body
    ours = [(m.headers, m.payload) for m in decode([body])]
    assert ours == botocore_decode(body)
    assert len(ours) == recording.expected["frames"]
    # 7-byte and 1-byte reads give the same messages.
    assert decode([body[i : i + 7] for i in range(0, len(body), 7)]) == decode([body])
    assert decode([body[i : i + 1] for i in range(len(body))]) == decode([body])


def test_prelude_checksum_mismatch() -> None:
    frame = bytearray(eventstream_message(EVENT, b"{}"))
    frame[9] ^= 0x01  # the prelude's CRC
    error, messages = outcome([bytes(frame)])
    assert messages == []
    assert error is not None and "byte 0: prelude checksum mismatch" in error


def test_message_checksum_mismatch_after_a_good_message() -> None:
    good = eventstream_message(EVENT, b'{"a":1}')
    bad = bytearray(eventstream_message(EVENT, b'{"a":2}'))
    bad[-6] ^= 0x40  # in the payload
    # The good message is returned with the read, the error held for the next call.
    decoder = EventStreamDecoder("bedrock")
    assert [m.payload for m in decoder.feed(good + bytes(bad))] == [b'{"a":1}']
    assert decoder.error is not None
    with pytest.raises(StreamProtocolError, match=f"byte {len(good)}: message checksum mismatch"):
        decoder.feed(b"")
    with pytest.raises(StreamProtocolError, match="message checksum mismatch"):
        decoder.close()
    # The same outcome whatever the cuts.
    for chunks in (
        [good + bytes(bad)],
        [good, bytes(bad)],
        [good[:3], good[3:] + bytes(bad)[:20], bytes(bad)[20:]],
    ):
        error, messages = outcome(chunks)
        assert [m.payload for m in messages] == [b'{"a":1}']
        assert error is not None and f"byte {len(good)}: message checksum mismatch" in error


def test_impossible_lengths() -> None:
    prelude = struct.pack(">II", 8, 0)
    error, _ = outcome([prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\0" * 8])
    assert error is not None and "impossible lengths (message 8 bytes, headers 0 bytes)" in error
    prelude = struct.pack(">II", 20, 10)
    error, _ = outcome([prelude + struct.pack(">I", zlib.crc32(prelude))])
    assert error is not None and "impossible lengths" in error
    prelude = struct.pack(">II", 0xFFFFFFF0, 0)
    error, _ = outcome([prelude + struct.pack(">I", zlib.crc32(prelude))])
    assert error is not None and "larger than the format allows" in error


def test_truncated_final_message() -> None:
    frame = eventstream_message(EVENT, b'{"delta":{"text":"Hi"}}')
    error, messages = outcome([frame + frame[:20]])
    assert len(messages) == 1
    assert error is not None and f"body ended inside a message (20 of the {len(frame)} bytes" in error
    error, _ = outcome([frame[:5]])
    assert error is not None and "5 bytes of a 12-byte prelude" in error


def test_malformed_headers() -> None:
    for headers in (b"\x05ab", b"\x01a\x0d", b"\x01a\x07\x00\x09ab", b"\x02\xff\xfe\x00", b"\x01a\x05\x00"):
        prelude = struct.pack(">II", 16 + len(headers), len(headers))
        message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers
        error, _ = outcome([message + struct.pack(">I", zlib.crc32(message))])
        assert error is not None and "malformed headers" in error, headers


# -- hypothesis ---------------------------------------------------------------------------

_HEADERS = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.booleans() | st.integers(-(2**31), 2**31 - 1) | st.binary(max_size=40) | st.text(max_size=40),
    max_size=5,
)
_MESSAGES = st.lists(st.tuples(_HEADERS, st.binary(max_size=300)), max_size=6)
_CUTS = st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=40)


@_SETTINGS
@given(messages=_MESSAGES, cuts=_CUTS)
def test_framed_messages_come_back_at_any_cut(
    messages: list[tuple[dict[str, object], bytes]], cuts: list[int]
) -> None:
    body = b"".join(eventstream_message(h, p) for h, p in messages)  # type: ignore[arg-type]
    expected = [EventStreamMessage(h, p) for h, p in messages]  # type: ignore[arg-type]
    assert decode(pieces(body, [c % (len(body) + 1) for c in cuts])) == expected
    assert [(m.headers, m.payload) for m in expected] == botocore_decode(body)


@_SETTINGS
@given(body=st.binary(max_size=600), cuts=_CUTS)
@example(body=b"\x00" * 12, cuts=[])
@example(body=b"\xff" * 40, cuts=[3])
def test_random_bytes_raise_only_protocol_errors(body: bytes, cuts: list[int]) -> None:
    whole = outcome([body])
    cut = outcome(pieces(body, [c % (len(body) + 1) for c in cuts]))
    assert cut[0] == whole[0]
    assert cut[1] == whole[1]


@_SETTINGS
@given(
    messages=_MESSAGES.filter(bool),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1, max_size=1),
    cuts=_CUTS,
)
def test_a_flipped_byte_is_caught(
    messages: list[tuple[dict[str, object], bytes]], flips: list[tuple[int, int]], cuts: list[int]
) -> None:
    frames = [eventstream_message(h, p) for h, p in messages]  # type: ignore[arg-type]
    body = bytearray(b"".join(frames))
    ((at, mask),) = flips
    at %= len(body)
    body[at] ^= mask
    error, decoded = outcome(pieces(bytes(body), [c % (len(body) + 1) for c in cuts]))
    # Never a wrong message: the messages before the broken one come out unchanged, then
    # the error (a changed byte in one place is always caught by a CRC32, whether in the
    # prelude, the headers, the payload or a checksum; a changed length is caught by the
    # prelude's).
    assert error is not None
    assert decoded == [EventStreamMessage(h, p) for h, p in messages][: len(decoded)]  # type: ignore[arg-type]
    boundary = 0
    for i, frame in enumerate(frames):
        if boundary <= at < boundary + len(frame):
            assert len(decoded) <= i
            break
        boundary += len(frame)


@_SETTINGS
@given(messages=_MESSAGES.filter(bool), keep=st.integers(min_value=1))
def test_a_cut_body_is_an_error_never_a_silent_end(
    messages: list[tuple[dict[str, object], bytes]], keep: int
) -> None:
    body = b"".join(eventstream_message(h, p) for h, p in messages)  # type: ignore[arg-type]
    keep %= len(body)
    if keep == 0:
        return
    boundaries = set(itertools.accumulate(len(eventstream_message(h, p)) for h, p in messages))  # type: ignore[arg-type]
    error, _ = outcome([body[:keep]])
    assert (error is None) == (keep in boundaries)
