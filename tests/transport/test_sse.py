"""The sans-I/O SSE decoder and the OpenAI wire mapper: unit cases for the WHATWG rules,
and properties of the decoder over real recorded bodies (../shared/recordings) and
arbitrary bytes, cut at arbitrary points. (The wire mappers' properties, for every
provider, are in test_decoder_properties.py.)"""

from __future__ import annotations

import collections
import itertools
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import streamwrap
from streamwrap._providers.openai._wire import OpenAIStreamMapper
from streamwrap._transport._sse import ServerSentEvent, SSEDecoder
from tests.support import recordings as _recordings

BOM = b"\xef\xbb\xbf"

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every SSE body, whatever its provider: the decoder is the same for all of them, those of
# providers streamwrap has no wrapper for yet included (tests/support/recordings.py routes them).
SSE_RECORDINGS = [r for r in _recordings.select(status=None) if r.meta["body_file"].endswith(".sse")]
SSE_METAS = _recordings.params("body_path, meta", SSE_RECORDINGS, lambda r: (r.body_path, r.meta), what="SSE")
SSE_FILES = _recordings.params("body_path", SSE_RECORDINGS, lambda r: r.body_path, what="SSE")


def pieces(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``body`` cut at the given positions (any order, duplicates allowed: empty pieces)."""
    bounds = [0, *sorted(min(max(c, 0), len(body)) for c in cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


def decode_with_counts(chunks: Sequence[bytes]) -> tuple[list[ServerSentEvent], int, int]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events, decoder.comments, decoder.events


def ev(
    data: bytes, event: str | None = None, id: str | None = None, retry: int | None = None
) -> ServerSentEvent:
    return ServerSentEvent(data, event, id, retry)


# -- line endings -----------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_line_endings(eol: bytes) -> None:
    body = b"data: one" + eol + eol + b"data: two" + eol + b"data: 2b" + eol + eol
    assert decode(body) == [ev(b"one"), ev(b"two\n2b")]
    # Fed one byte at a time: the same events.
    assert decode(*(body[i : i + 1] for i in range(len(body)))) == [ev(b"one"), ev(b"two\n2b")]


def test_events_complete_as_soon_as_their_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [ev(b"a")]
    assert decoder.feed(b"data: b\r\n\r\ndata: c\n\n") == [ev(b"b"), ev(b"c")]
    assert decoder.close() == []
    assert decoder.events == 3


def test_crlf_split_across_two_feeds_is_one_line_ending() -> None:
    decoder = SSEDecoder()
    # If the CR were taken as a line ending and the LF as a second (blank) line, "a"
    # would be dispatched alone and "b" would become a second event.
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [ev(b"a\nb")]
    assert decoder.close() == []
    assert decoder.events == 1


def test_crlf_split_at_the_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\n\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [ev(b"a"), ev(b"b")]
    assert decoder.close() == []


def test_bare_cr_held_back_then_followed_by_another_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # The next byte is not LF: the held CR was a line ending of its own.
    assert decoder.feed(b"\rdata: b\r\r") == [ev(b"a")]
    assert decoder.close() == [ev(b"b")]


def test_mixed_line_endings_in_one_stream() -> None:
    assert decode(b"data: a\r\n\ndata: b\n\r\ndata: c\r\r") == [ev(b"a"), ev(b"b"), ev(b"c")]


# -- fields -----------------------------------------------------------------------------


def test_comments_are_counted_and_produce_no_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": OPENROUTER PROCESSING\n\n") == []
    assert decoder.feed(b":\n\n:keep-alive\r\n\r\n") == []
    assert decoder.feed(b"data: x\n: a comment inside an event\ndata: y\n\n") == [ev(b"x\ny")]
    assert decoder.close() == []
    assert decoder.comments == 4
    assert decoder.events == 1


def test_multi_line_data_is_joined_with_lf() -> None:
    assert decode(b"data: a\ndata: b\ndata: c\n\n") == [ev(b"a\nb\nc")]
    assert decode(b"data: a\ndata:\ndata: c\n\n") == [ev(b"a\n\nc")]


def test_space_after_the_colon_is_optional_and_only_one_is_removed() -> None:
    assert decode(b"data:x\n\n") == [ev(b"x")]
    assert decode(b"data: x\n\n") == [ev(b"x")]
    assert decode(b"data:  x \n\n") == [ev(b" x ")]
    assert decode(b'data: {"a": "b:c"}\n\n') == [ev(b'{"a": "b:c"}')]


def test_field_without_colon() -> None:
    # "data" alone is the field "data" with an empty value: an event with empty data.
    assert decode(b"data\n\n") == [ev(b"")]
    assert decode(b"data\ndata\n\n") == [ev(b"\n")]
    assert decode(b"data: a\ndata\n\n") == [ev(b"a\n")]
    # Another name without a colon is an unknown field: ignored.
    assert decode(b"foo\ndata: x\n\n") == [ev(b"x")]


def test_event_id_and_retry_fields() -> None:
    events = decode(b"event: update\nid: 42\nretry: 1500\ndata: x\n\n")
    assert events == [ev(b"x", "update", "42", 1500)]
    assert decode(b"event:delta\nid:7\ndata:y\n\n") == [ev(b"y", "delta", "7")]


def test_event_type_resets_after_each_dispatch_and_id_persists() -> None:
    events = decode(b"event: a\nid: 1\ndata: x\n\ndata: y\n\nid: 2\ndata: z\n\n")
    assert [(e.data, e.event, e.id) for e in events] == [
        (b"x", "a", "1"),
        (b"y", None, "1"),
        (b"z", None, "2"),
    ]


def test_id_containing_nul_is_ignored() -> None:
    assert decode(b"id: a\x00b\ndata: x\n\n") == [ev(b"x")]
    events = decode(b"id: good\ndata: 1\n\nid: ba\x00d\ndata: 2\n\n")
    assert [e.id for e in events] == ["good", "good"]


@pytest.mark.parametrize("value", [b"12a", b"-5", b"1.5", b" 3", b"", b"abc", b"\xd9\xa3"])
def test_non_digit_retry_is_ignored(value: bytes) -> None:
    # (b"\xd9\xa3" is ARABIC-INDIC DIGIT THREE: a digit, but not an ASCII one.)
    assert decode(b"retry: " + value + b"\ndata: x\n\n") == [ev(b"x")]


def test_enormous_retry_value_does_not_raise() -> None:
    # int() of more than 4300 digits raises ValueError (CPython's int max str digits limit).
    events = decode(b"retry: " + b"9" * 5000 + b"\ndata: x\n\n")
    assert [e.data for e in events] == [b"x"]
    assert events[0].retry is None or type(events[0].retry) is int


def test_unknown_fields_are_ignored() -> None:
    assert decode(b"foo: bar\ndata: x\nDATA: no\nData: no\n\n") == [ev(b"x")]
    assert decode(b"foo: bar\n\n") == []


def test_blank_lines_without_data_dispatch_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\n\n\r\n\r\r\n") == []
    assert decoder.feed(b"event: ping\n\n") == []  # an event type but no data
    assert decoder.feed(b"id: 3\nretry: 10\n\n") == []
    assert decoder.close() == []
    assert decoder.events == 0
    # ...and the event type of a data-less block does not leak into the next event.
    assert decode(b"event: ping\n\ndata: y\n\n") == [ev(b"y")]


# -- BOM --------------------------------------------------------------------------------


def test_leading_bom_is_stripped() -> None:
    assert decode(BOM + b"data: x\n\n") == [ev(b"x")]
    # Without the BOM being stripped, the first line's field name would be BOM + "event".
    assert decode(BOM + b"event: e\ndata: x\n\n") == [ev(b"x", "e")]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_bom_split_across_feeds(cut: int) -> None:
    body = BOM + b"event: e\ndata: x\n\n"
    assert decode(body[:cut], body[cut:]) == [ev(b"x", "e")]
    assert decode(*(body[i : i + 1] for i in range(len(body)))) == [ev(b"x", "e")]


def test_only_one_leading_bom_is_stripped() -> None:
    # A second BOM is part of the first field name, making it an unknown field.
    assert decode(BOM + BOM + b"data: x\n\ndata: y\n\n") == [ev(b"y")]
    # A BOM later in the stream is not special either.
    assert decode(b"data: x\n\n" + BOM + b"data: y\n\n") == [ev(b"x")]


def test_bom_prefix_that_is_not_a_bom_is_kept() -> None:
    assert decode(b"\xef", b"\xbbX\n" + b"data: x\n\n") == [ev(b"x")]
    assert decode(b"data: \xef", b"\xbb\xbf\n\n") == [ev(b"\xef\xbb\xbf")]


# -- end of body ------------------------------------------------------------------------


@pytest.mark.parametrize("tail", [b"", b"\n", b"\r", b"\r\n"], ids=["none", "LF", "CR", "CRLF"])
def test_close_completes_an_event_without_its_blank_line(tail: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\nevent: last\ndata: b" + tail) == [ev(b"a")]
    assert decoder.close() == [ev(b"b", "last")]
    assert decoder.events == 2


def test_close_without_pending_data_returns_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n: trailing comment") == [ev(b"a")]
    assert decoder.close() == []
    assert decoder.comments == 1
    assert SSEDecoder().close() == []


def test_data_stays_bytes_even_when_not_utf8() -> None:
    events = decode(b"event: \xff\nid: \xfe\ndata: \xff\xfe\n\n")
    assert events == [ev(b"\xff\xfe", "\ufffd", "\ufffd")]
    assert type(events[0].data) is bytes


# -- real recordings: counts against their meta -----------------------------------------


@pytest.mark.parametrize(("body_path", "meta"), SSE_METAS)
def test_recording_event_counts_match_the_meta(body_path: Path, meta: dict[str, Any]) -> None:
    body = _recordings.read(body_path)
    events, comments, count = decode_with_counts([body])
    assert count == len(events)
    expected = meta["expected"]
    # Every comment line of the body was counted (an independent line count).
    comment_lines = [line for line in re.split(rb"\r\n|\r|\n", body) if line.startswith(b":")]
    assert comments == len(comment_lines)
    if "data_events_excluding_done" in expected:  # OpenAI wire format
        assert len(events) == expected["data_events_excluding_done"] + bool(expected["done_sentinel_present"])
        assert comments == expected.get("sse_comment_lines", 0)  # (Azure's meta leaves out the 0)
        done = bool(expected["done_sentinel_present"])
        assert (events[-1].data == b"[DONE]") is done
        chunks = [orjson.loads(event.data) for event in events[: len(events) - done]]
        assert all(type(chunk) is dict for chunk in chunks)
        if "chunks_with_empty_choices" in expected:  # Azure: prompt and content filter results
            assert sum(chunk["choices"] == [] for chunk in chunks) == expected["chunks_with_empty_choices"]
            filtered = [c.get("content_filter_results") for chunk in chunks for c in chunk["choices"]]
            assert sum(bool(f) for f in filtered) == expected["chunks_with_nonempty_content_filter_results"]
            assert sum(f == {} for f in filtered) == expected["chunks_with_empty_content_filter_results"]
    if "event_type_counts" in expected:  # Anthropic: every event is named
        assert collections.Counter(e.event for e in events) == expected["event_type_counts"]
    if "events" in expected:  # Gemini (CRLF)
        assert len(events) == expected["events"]
    if "data_events" in expected:  # DashScope native: id:/event:/:HTTP_STATUS/ + data:
        assert len(events) == expected["data_events"]
        assert [e.id for e in events] == [str(n) for n in range(1, len(events) + 1)]
        assert {e.event for e in events} == {"result"}
        assert {line[1:].decode() for line in comment_lines} == set(expected["http_status_comment_lines"])


# -- properties: cutting never changes the events ---------------------------------------


@pytest.mark.parametrize("body_path", SSE_FILES)
@FAST
@given(data=st.data())
def test_recording_cut_anywhere_decodes_like_the_whole(body_path: Path, data: st.DataObject) -> None:
    body = _recordings.read(body_path)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=64), label="cuts")
    whole = decode_with_counts([body])
    assert whole[0], "a recording with no events"
    assert decode_with_counts(pieces(body, cuts)) == whole


@pytest.mark.parametrize("body_path", SSE_FILES)
def test_recording_fed_byte_by_byte_decodes_like_the_whole(body_path: Path) -> None:
    body = _recordings.read(body_path)
    assert decode_with_counts([body[i : i + 1] for i in range(len(body))]) == decode_with_counts([body])


@FAST
@given(body=st.binary(max_size=512), cuts=st.lists(st.integers(min_value=0, max_value=512), max_size=32))
@example(body=b"data: a\r\n\r\n", cuts=[8])
@example(body=BOM + b"data: a\n\n", cuts=[1, 2])
@example(body=b"\r\r\n\n\rdata\r", cuts=[1, 2, 3, 4, 5])
def test_arbitrary_bytes_never_raise_and_cutting_changes_nothing(body: bytes, cuts: list[int]) -> None:
    split = decode_with_counts(pieces(body, cuts))
    assert split == decode_with_counts([body])
    for event in split[0]:
        assert type(event.data) is bytes
        assert event.event is None or type(event.event) is str
        assert event.id is None or type(event.id) is str
        assert event.retry is None or type(event.retry) is int


# An SSE-shaped stream: lines of known field names (or junk), any line ending, an optional
# BOM. Compared with a direct reading of the WHATWG rules over the whole body.
_FIELD = st.sampled_from([b"data", b"event", b"id", b"retry", b"", b"foo", b"Data"])
_VALUE = st.sampled_from(
    [b"", b"x", b" x", b"  y", b"1", b"12", b"a:b", b"\x00", b"[DONE]", b"\xff", b"\xef\xbb\xbf"]
)
_LINE = st.tuples(_FIELD, st.sampled_from([b"", b":", b": "]), _VALUE).map(lambda t: b"".join(t))
_EOL = st.sampled_from([b"\n", b"\r", b"\r\n"])
_SSE = st.tuples(
    st.booleans(), st.lists(st.tuples(_LINE | st.just(b""), _EOL), max_size=24), st.booleans()
).map(lambda t: (BOM if t[0] else b"") + b"".join(a + b for a, b in t[1]) + (b"data: end" if t[2] else b""))


def reference_decode(body: bytes) -> tuple[list[tuple[bytes, str | None, str | None]], int]:
    """The WHATWG event-stream interpretation over a complete body (close() at the end)."""
    if body.startswith(BOM):
        body = body[3:]
    *lines, rest = re.split(rb"\r\n|\r|\n", body)
    if rest:
        lines.append(rest)
    lines.append(b"")
    events: list[tuple[bytes, str | None, str | None]] = []
    data: list[bytes] | None = None
    event_type: str | None = None
    last_id: str | None = None
    comments = 0
    for line in lines:
        if not line:
            if data is not None:
                events.append((b"\n".join(data), event_type, last_id))
            data, event_type = None, None
            continue
        if line.startswith(b":"):
            comments += 1
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data = [*(data or []), value]
        elif name == b"event":
            event_type = value.decode("utf-8", "replace") or None
        elif name == b"id" and b"\x00" not in value:
            last_id = value.decode("utf-8", "replace")
    return events, comments


@FAST
@given(
    body=_SSE,
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=24),
    cr_picks=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
@example(body=b"event: x\r\ndata: y\r\ndata: z\r\n\r\n", cuts=[], cr_picks=[0, 1])
def test_sse_shaped_streams_decode_as_the_specification_reads_them(
    body: bytes, cuts: list[int], cr_picks: list[int]
) -> None:
    cuts = [c % (len(body) + 1) for c in cuts]
    # Cutting right after a CR is where a CRLF gets torn in two: try those places often.
    after_cr = [i + 1 for i, byte in enumerate(body) if byte == 0x0D]
    if after_cr:
        cuts += [after_cr[p % len(after_cr)] for p in cr_picks]
    events, comments, _ = decode_with_counts(pieces(body, cuts))
    # (An empty event type means the default type, whether it is "" or None.)
    assert ([(e.data, e.event or None, e.id) for e in events], comments) == reference_decode(body)


# -- the OpenAI wire mapper -------------------------------------------------------------


def map_all(chunks: Sequence[bytes]) -> tuple[list[Any], str | None]:
    """Deltas of feed() per chunk then end(); stops at a StreamwrapError (returned by
    type name and message). Any other exception propagates and fails the test."""
    mapper = OpenAIStreamMapper("openai")
    out: list[Any] = []
    try:
        for chunk in chunks:
            out.extend(mapper.feed(chunk))
        out.extend(mapper.end())
    except streamwrap.StreamwrapError as exc:
        return out, f"{type(exc).__name__}: {exc}"
    return out, None


# The mapper's properties over recordings, arbitrary bytes and misshapen JSON (cuts change
# nothing; only typed errors) are in test_decoder_properties.py, for every wire mapper.


@pytest.mark.parametrize(
    "chunk",
    [
        b'{"choices": 5}',
        b'{"choices": "abc"}',
        b'{"choices": {"a": 1}}',
        b'{"choices": [null]}',
        b'{"choices": [{"delta": 1}]}',
        b'{"choices": [{"delta": {"content": 5}}]}',
        b'{"choices": [{"delta": {"content": {"a": 1}}}]}',
        b'{"choices": [{"delta": {"reasoning_content": ["x"]}}]}',
        b'{"choices": [{"delta": {"tool_calls": 5}}]}',
        b'{"choices": [{"delta": {"tool_calls": [1]}}]}',
        b'{"choices": [{"delta": {"tool_calls": [{"index": 0, "function": "f"}]}}]}',
        b'{"usage": 5}',
        b'{"usage": [1]}',
    ],
)
def test_mapper_misshapen_chunk_is_a_protocol_error(chunk: bytes) -> None:
    # Valid JSON of the wrong shape: a StreamProtocolError, never a bare TypeError,
    # AttributeError or KeyError, and never a number or an object passed off as text.
    deltas, error = map_all([b"data: " + chunk + b"\n\ndata: [DONE]\n\n"])
    assert error is not None
    assert error.startswith("StreamProtocolError: ")
    assert not any(type(d) in (streamwrap.TextDelta, streamwrap.ReasoningDelta) for d in deltas)
