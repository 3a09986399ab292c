"""The sans-I/O NDJSON decoder and the Ollama wire mapper: unit cases, and properties
over the real recorded Ollama bodies (../shared/recordings/ollama) and arbitrary text,
cut at arbitrary points (inside CRLF pairs and inside multi-byte UTF-8 characters too)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import streamwrap
from streamwrap import ReasoningDelta, TextDelta, ToolCallDelta
from streamwrap._delta import Finish, Metadata, UsageReport
from streamwrap._providers.ollama._wire import OllamaStreamMapper, chat_deltas
from streamwrap._transport._ndjson import NDJSONDecoder
from tests.support import recordings as _recordings

BOM = b"\xef\xbb\xbf"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The Ollama bodies, as the provider table (tests/support/recordings.py) routes them.
OLLAMA_BODIES = _recordings.params(
    "path", _recordings.select(wire=_recordings.OLLAMA), lambda r: r.body_path, what="Ollama"
)


def pieces(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``body`` cut at the given positions (any order, duplicates allowed: empty pieces)."""
    bounds = [0, *sorted(min(max(c, 0), len(body)) for c in cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


def decode(chunks: Iterable[bytes]) -> list[bytes]:
    decoder = NDJSONDecoder()
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.close())
    return out


def reference_lines(body: bytes) -> list[bytes]:
    """The same split done the obvious way, on the whole body at once."""
    if body.startswith(BOM):
        body = body[3:]
    lines = [line[:-1] if line.endswith(b"\r") else line for line in body.split(b"\n")]
    return [line for line in lines if line.strip(b" \t\r\n")]


# -- the decoder: unit cases ---------------------------------------------------------------


def test_one_line_per_read() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n') == [b'{"a":1}']
    assert decoder.feed(b'{"b":2}\n{"c":3}\n') == [b'{"b":2}', b'{"c":3}']
    assert decoder.pending == 0
    assert decoder.close() == []
    assert decoder.lines == 3


def test_a_line_cut_anywhere_comes_out_once_complete() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a"') == []
    assert decoder.pending == 4
    assert decoder.feed(b":1}") == []
    assert decoder.feed(b"\n") == [b'{"a":1}']
    assert decoder.pending == 0


def test_crlf_and_a_crlf_cut_between_reads() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\r\n{"b":2}\r') == [b'{"a":1}']
    # The CR is held with the unfinished line until its LF arrives: one line ending.
    assert decoder.feed(b"\n") == [b'{"b":2}']
    assert decoder.close() == []


def test_blank_lines_are_skipped_and_counted() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'\n\r\n  \n{"a":1}\n\t\n') == [b'{"a":1}']
    assert decoder.blank_lines == 4
    assert decoder.lines == 1


def test_a_split_inside_a_multibyte_character() -> None:
    line = '{"message":{"content":"héllo 世界 🎉"}}\n'.encode()
    for cut in range(1, len(line)):
        decoder = NDJSONDecoder()
        out = decoder.feed(line[:cut]) + decoder.feed(line[cut:])
        assert out == [line[:-1]]
        assert orjson.loads(out[0])["message"]["content"] == "héllo 世界 🎉"


def test_close_returns_a_last_line_without_its_newline() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n{"done":true}') == [b'{"a":1}']
    assert decoder.close() == [b'{"done":true}']
    # Closing again finds nothing: the line was handed out once.
    assert decoder.close() == []


def test_close_returns_a_cut_line_for_the_parser_to_judge() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n{"message":{"cont') == [b'{"a":1}']
    (tail,) = decoder.close()
    assert tail == b'{"message":{"cont'
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(tail)


def test_close_drops_a_blank_or_lone_cr_tail() -> None:
    for tail in (b"", b"  ", b"\r", b" \r"):
        decoder = NDJSONDecoder()
        assert decoder.feed(b'{"a":1}\n' + tail) == [b'{"a":1}']
        assert decoder.close() == []


def test_bom_is_removed_even_when_split() -> None:
    assert decode([BOM[:1], BOM[1:2], BOM[2:] + b'{"a":1}\n']) == [b'{"a":1}']
    assert decode([BOM + b'{"a":1}']) == [b'{"a":1}']
    assert decode([BOM]) == []
    # The start of a BOM that never completes is data (which the JSON parser rejects).
    assert decode([BOM[:2]]) == [BOM[:2]]
    # A BOM is only a BOM at the very start.
    assert decode([b'{"a":1}\n', BOM + b"x\n"]) == [b'{"a":1}', BOM + b"x"]


def test_invalid_utf8_passes_through_for_the_parser_to_reject() -> None:
    (line,) = decode([b'{"a":"\xff"}\n'])
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(line)


# -- the decoder: properties -------------------------------------------------------------

_LINE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
)


@FAST
@given(
    lines=st.lists(_LINE_TEXT, max_size=12),
    endings=st.lists(st.sampled_from(["\n", "\r\n"]), min_size=12, max_size=12),
    final_newline=st.booleans(),
    bom=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=2_000), max_size=24),
)
@example(lines=["é", "世"], endings=["\r\n"] * 12, final_newline=True, bom=True, cuts=[1, 2, 4, 5, 6, 9])
def test_any_cut_of_any_text_gives_the_same_lines(
    lines: list[str], endings: list[str], final_newline: bool, bom: bool, cuts: list[int]
) -> None:
    text = "".join(line + ending for line, ending in zip(lines, endings, strict=False))
    if not final_newline and text:
        text = text.rstrip("\r\n")
    body = (BOM if bom else b"") + text.encode()
    expected = reference_lines(body)
    assert decode(pieces(body, cuts)) == expected
    # Every line decodes as UTF-8 on its own: no cut ever landed inside a character.
    for line in expected:
        line.decode()


@FAST
@given(body=st.binary(max_size=512), cuts=st.lists(st.integers(min_value=0, max_value=512), max_size=32))
@example(body=b"\xef", cuts=[])
@example(body=b"\xef\xbb\xbf\r", cuts=[1, 3])
@example(body=b"a\r\r\nb\r", cuts=[2, 3])
def test_any_cut_of_any_bytes_gives_the_same_lines(body: bytes, cuts: list[int]) -> None:
    assert decode(pieces(body, cuts)) == decode([body])
    assert decode(pieces(body, cuts)) == reference_lines(body)


@pytest.mark.parametrize("path", OLLAMA_BODIES)
@FAST
@given(cuts=st.lists(st.integers(min_value=0, max_value=8_000), max_size=40))
def test_recorded_bodies_cut_anywhere_give_the_recorded_lines(path: Path, cuts: list[int]) -> None:
    body = path.read_bytes()
    lines = decode(pieces(body, cuts))
    meta = _recordings.load_meta(path)
    assert len(lines) == meta["expected"]["ndjson_lines"]
    assert lines == reference_lines(body)


# -- the Ollama wire mapper --------------------------------------------------------------


def _line(**fields: Any) -> bytes:
    return orjson.dumps(fields) + b"\n"


def _map(body: bytes, cuts: Iterable[int] = ()) -> list[Any]:
    mapper = OllamaStreamMapper("ollama")
    out: list[Any] = []
    for piece in pieces(body, cuts):
        out.extend(mapper.feed(piece))
    out.extend(mapper.end())
    return out


DONE = {"done": True, "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 3, "eval_duration": 99}


def test_mapper_text_reasoning_usage_finish() -> None:
    body = (
        _line(model="qwen3", message={"role": "assistant", "content": "", "thinking": "hmm"}, done=False)
        + _line(model="qwen3", message={"role": "assistant", "content": "Hi"}, done=False)
        + _line(model="qwen3", message={"role": "assistant", "content": ""}, **DONE)
    )
    out = _map(body)
    assert out[0] == Metadata(None, "qwen3")
    assert [d for d in out if type(d) in (TextDelta, ReasoningDelta)] == ["hmm", "Hi"]
    assert type(out[1]) is ReasoningDelta
    (usage,) = [d.usage for d in out if type(d) is UsageReport]
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.source) == (
        5,
        3,
        8,
        "provider",
    )
    assert dict(usage.raw or {}) == {"prompt_eval_count": 5, "eval_count": 3, "eval_duration": 99}
    assert out[-1] == Finish("stop")


def test_mapper_tool_calls_get_json_arguments_ids_and_distinct_indexes() -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}
    body = (
        _line(model="m", message={"role": "assistant", "content": "", "tool_calls": [call, call]}, done=False)
        # A later line restarting at index 0 must not merge into the first call.
        + _line(
            model="m",
            message={
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"index": 0, "name": "f", "arguments": {}}},
                    {"id": "call_own", "function": {"index": 7, "name": "g", "arguments": {"x": [1]}}},
                ],
            },
            done=False,
        )
        + _line(model="m", message={"role": "assistant", "content": ""}, **DONE)
    )
    out = _map(body)
    calls = [d for d in out if type(d) is ToolCallDelta]
    assert [(c.index, c.id, c.name, c.arguments) for c in calls] == [
        (0, "call_0", "get_weather", '{"city":"Paris","days":2}'),
        (1, "call_1", "get_weather", '{"city":"Paris","days":2}'),
        (2, "call_2", "f", "{}"),
        (7, "call_own", "g", '{"x":[1]}'),
    ]
    # The raw reason is kept as Ollama sent it; the response reports "tool_calls" for it.
    assert out[-1] == Finish("stop")


def test_mapper_keeps_length_even_with_tool_calls() -> None:
    call = {"function": {"name": "f", "arguments": {}}}
    body = _line(model="m", message={"role": "assistant", "tool_calls": [call]}, done=False) + _line(
        model="m", message={"role": "assistant", "content": ""}, **{**DONE, "done_reason": "length"}
    )
    assert _map(body)[-1] == Finish("length")


def test_mapper_without_done_reason_sends_no_finish() -> None:
    body = _line(model="m", message={"role": "assistant", "content": "x"}, done=True, eval_count=1)
    out = _map(body)
    assert not [d for d in out if type(d) is Finish]
    (usage,) = [d.usage for d in out if type(d) is UsageReport]
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (None, 1, None)


def test_mapper_ignores_lines_after_done() -> None:
    body = (
        _line(model="m", message={"role": "assistant", "content": "x"}, **DONE)
        + _line(model="m", message={"role": "assistant", "content": "late"}, done=False)
        + b"not json\n"
    )
    assert [d for d in _map(body) if type(d) is TextDelta] == ["x"]


def test_mapper_accepts_a_last_line_without_newline() -> None:
    body = _line(model="m", message={"role": "assistant", "content": "x"}, **DONE).rstrip(b"\n")
    assert _map(body)[-1] == Finish("stop")


def test_mapper_error_line() -> None:
    body = _line(model="m", message={"role": "assistant", "content": "par"}, done=False) + _line(
        error="an error was encountered while running the model: unexpected EOF"
    )
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        _map(body)
    assert info.value.message == "an error was encountered while running the model: unexpected EOF"
    assert info.value.provider == "ollama"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", streamwrap.StreamInterruptedError),
        (
            _line(model="m", message={"role": "assistant", "content": "x"}, done=False),
            streamwrap.StreamInterruptedError,
        ),
        # A last line cut mid-way by a dropped connection is an interruption, not bad JSON.
        (
            _line(model="m", message={"content": "x"}, done=False) + b'{"model":"m","mess',
            streamwrap.StreamInterruptedError,
        ),
        (b"{not json}\n", streamwrap.StreamProtocolError),
        (b"[1, 2]\n", streamwrap.StreamProtocolError),
        (b'{"message": "text"}\n', streamwrap.StreamProtocolError),
        (b'{"message": {"content": 5}}\n', streamwrap.StreamProtocolError),
        (b'{"message": {"tool_calls": [{"name": "f"}]}}\n', streamwrap.StreamProtocolError),
        (b'{"message": {"content": "\xff"}}\n', streamwrap.StreamProtocolError),
    ],
)
def test_mapper_failures_are_typed(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        _map(body)
    assert type(info.value) is error


@pytest.mark.parametrize("path", OLLAMA_BODIES)
@FAST
@given(cuts=st.lists(st.integers(min_value=0, max_value=8_000), max_size=40))
def test_recorded_bodies_map_to_expected_however_cut(path: Path, cuts: list[int]) -> None:
    body = path.read_bytes()
    expected = _recordings.load_meta(path)["expected"]
    out = _map(body, cuts)
    assert "".join(d for d in out if type(d) is TextDelta) == expected["text"]
    assert not [d for d in out if type(d) in (ReasoningDelta, ToolCallDelta)]
    assert out[0] == Metadata(None, expected["model"])
    (usage,) = [d.usage for d in out if type(d) is UsageReport]
    assert (usage.input_tokens, usage.output_tokens) == (
        expected["prompt_eval_count"],
        expected["eval_count"],
    )
    assert out[-1] == Finish(expected["done_reason"])


def test_chat_deltas_of_a_whole_body() -> None:
    obj = {
        "model": "m",
        "message": {
            "role": "assistant",
            "content": "ok",
            "thinking": "t",
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
        },
        **DONE,
    }
    out = chat_deltas(obj, "ollama")
    assert out[:3] == [Metadata(None, "m"), ReasoningDelta("t"), TextDelta("ok")]
    assert out[3] == ToolCallDelta(0, "call_0", "f", '{"a":1}')
    assert out[-1] == Finish("stop")  # the response reports "tool_calls" for it
    with pytest.raises(streamwrap.ProviderStreamError):
        chat_deltas({"error": "boom"}, "ollama")
    with pytest.raises(streamwrap.StreamProtocolError):
        chat_deltas([], "ollama")
