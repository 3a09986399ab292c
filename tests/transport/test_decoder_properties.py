"""Properties of every wire mapper (bytes → deltas), over real recordings and arbitrary bytes.

1. Cutting changes nothing: each real recording in ``../shared/recordings`` that a mapper
   decodes (routed by the provider table in ``tests/support/recordings.py``: OpenAI-format ones, Azure's
   included, through :class:`OpenAIStreamMapper`, DashScope native, Gemini, Ollama; the
   providers with no wrapper yet are skipped, saying so) is fed whole, then cut into
   network reads at hypothesis-drawn points; the deltas (and what the response derives
   from them: text, reasoning, assembled tool calls, usage, finish reason, identity) are
   the same, and the whole parse is the recording's ``expected`` block. A recorded error body a mapper reads (Gemini's) gives
   the same error however it is cut.
2. Nothing but streamwrap's typed errors: arbitrary bytes, mutations of the recordings
   (flipped bytes, cuts, inserted garbage, invalid UTF-8, duplicated or deleted spans) and
   JSON of the wrong shape, fed to each mapper in pieces and then ended, either decode or
   raise a :class:`StreamwrapError` — never a ``KeyError``, ``AttributeError``,
   ``UnicodeDecodeError`` or ``RecursionError`` — and every delta has the types the
   response relies on (text is ``str``, a count is an ``int`` or ``None``, ...). The
   outcome does not depend on the cuts either.

The mappers are driven as ``BodyUpstream`` drives them: after each read, a held error
(``mapper.error``) is raised. Hypothesis runs derandomized (the same examples on every
run, so CI is deterministic) with a bounded number of examples: the module takes seconds.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import streamwrap
from streamwrap._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from streamwrap._finish import normalize_finish_reason
from streamwrap._providers.anthropic._wire import AnthropicStreamMapper
from streamwrap._providers.bedrock._invoke import InvokeStreamMapper
from streamwrap._providers.bedrock._wire import ConverseStreamMapper
from streamwrap._providers.dashscope._wire import DashScopeStreamMapper
from streamwrap._providers.gemini._wire import GeminiStreamMapper
from streamwrap._providers.ollama._wire import OllamaStreamMapper
from streamwrap._providers.openai._responses_wire import ResponsesStreamMapper
from streamwrap._providers.openai._wire import OpenAIStreamMapper
from streamwrap._tools import ToolCallAssembler
from streamwrap._transport._wire_mapper import WireMapper
from streamwrap._usage import Usage
from streamwrap.testing._eventstream import eventstream_message
from tests.support import recordings as _recordings


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- the wires ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """One mapper, how a body is framed for it, and how its recordings' ``expected`` reads."""

    name: str
    make: Callable[[], WireMapper]
    frame: Callable[[bytes], bytes]  # one JSON object as one event (or line) of this wire
    # Whether usage is reported once per event (every reading kept), rather than once per
    # read and only when it changed: then the whole delta list must not depend on cuts.
    usage_per_event: bool


def _sse(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


OPENAI = Wire("openai", lambda: OpenAIStreamMapper("openai"), _sse, usage_per_event=True)
DASHSCOPE = Wire(
    "dashscope",
    lambda: DashScopeStreamMapper("dashscope"),
    lambda data: b"id:1\nevent:result\n:HTTP_STATUS/200\ndata:" + data + b"\n\n",
    usage_per_event=False,
)
DASHSCOPE_CUMULATIVE = replace(
    DASHSCOPE, name="dashscope-cumulative", make=lambda: DashScopeStreamMapper("dashscope", incremental=False)
)
GEMINI = Wire(
    "gemini",
    lambda: GeminiStreamMapper("gemini"),
    lambda d: b"data: " + d + b"\r\n\r\n",
    usage_per_event=False,
)
# Vertex AI serves Gemini's stream: the same mapper (and framing), reporting provider "vertex".
VERTEX = replace(GEMINI, name="vertex", make=lambda: GeminiStreamMapper("vertex"))
OLLAMA = Wire("ollama", lambda: OllamaStreamMapper("ollama"), lambda data: data + b"\n", usage_per_event=True)
# (The mapper reads an event's kind from its JSON "type"; the SSE event name is decoration.)
ANTHROPIC = Wire(
    "anthropic",
    lambda: AnthropicStreamMapper("anthropic"),
    lambda data: b"event: message\ndata: " + data + b"\n\n",
    usage_per_event=True,
)
OPENAI_RESPONSES = Wire(
    "openai_responses",
    lambda: ResponsesStreamMapper("openai"),
    lambda data: b"event: x\ndata: " + data + b"\n\n",
    usage_per_event=True,
)
# Bedrock: AWS event stream frames. A JSON object's event type is drawn from its bytes, so
# that the misshapen-JSON test reaches every event's reader.
_CONVERSE_EVENTS = (
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
)


def _converse_frame(data: bytes) -> bytes:
    event = _CONVERSE_EVENTS[sum(data) % len(_CONVERSE_EVENTS)]
    headers = {":event-type": event, ":content-type": "application/json", ":message-type": "event"}
    return eventstream_message(headers, data)


def _invoke_frame(data: bytes) -> bytes:
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return eventstream_message(headers, orjson.dumps({"bytes": base64.b64encode(data).decode()}))


BEDROCK = Wire("bedrock", lambda: ConverseStreamMapper("bedrock"), _converse_frame, usage_per_event=True)
BEDROCK_INVOKE = Wire(
    "bedrock_invoke", lambda: InvokeStreamMapper("bedrock"), _invoke_frame, usage_per_event=True
)
WIRES = [
    OPENAI,
    DASHSCOPE,
    DASHSCOPE_CUMULATIVE,
    GEMINI,
    OLLAMA,
    ANTHROPIC,
    OPENAI_RESPONSES,
    BEDROCK,
    BEDROCK_INVOKE,
]
WIRE_PARAMS = [pytest.param(w, id=w.name) for w in WIRES]

# The recordings, routed by the one provider table (tests/support/recordings.py).
MAPPERS = {
    _recordings.OPENAI: OPENAI,
    _recordings.DASHSCOPE: DASHSCOPE,
    _recordings.GEMINI: GEMINI,
    _recordings.OLLAMA: OLLAMA,
    _recordings.ANTHROPIC: ANTHROPIC,
    _recordings.OPENAI_RESPONSES: OPENAI_RESPONSES,
    _recordings.BEDROCK: BEDROCK,
    _recordings.BEDROCK_INVOKE: BEDROCK_INVOKE,
    _recordings.VERTEX: VERTEX,
}


@dataclass(frozen=True)
class Recording:
    source: _recordings.Recording
    wire: Wire

    @property
    def meta(self) -> dict[str, Any]:
        return self.source.meta

    @property
    def body(self) -> bytes:
        return self.source.body


RECORDED = [Recording(r, MAPPERS[r.wire]) for r in _recordings.select() if r.wire is not None]
RECORDING_PARAMS = _recordings.params(
    "recording",
    [r.source for r in RECORDED],
    lambda r: Recording(r, MAPPERS[str(r.wire)]),
    what="streamed",
    skipped=_recordings.without_wrapper(),
)


def recordings_of(wire: Wire) -> list[bytes]:
    """Bodies to mutate for ``wire``: its own recordings (the cumulative DashScope mapper
    mutates the incremental ones: same framing)."""
    return [r.body for r in RECORDED if r.wire.frame is wire.frame]


# -- driving a mapper ---------------------------------------------------------------------


def pieces(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``body`` cut at the given positions (any order, duplicates allowed: empty pieces)."""
    bounds = [0, *sorted(min(max(c, 0), len(body)) for c in cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


def run(wire: Wire, chunks: Sequence[bytes]) -> tuple[list[Delta], streamwrap.StreamwrapError | None]:
    """Feed the reads, then end, as ``BodyUpstream`` does. A :class:`StreamwrapError`
    stops it and is returned; anything else propagates and fails the test."""
    mapper = wire.make()
    out: list[Delta] = []
    try:
        for chunk in chunks:
            out.extend(mapper.feed(chunk))
            if mapper.error is not None:
                raise mapper.error
        out.extend(mapper.end())
    except streamwrap.StreamwrapError as exc:
        check_types(out)
        return out, exc
    check_types(out)
    return out, None


def check_types(deltas: list[Delta]) -> None:
    """Every delta has the types the response and its consumers rely on."""
    for d in deltas:
        cls = type(d)
        if cls is TextDelta or cls is ReasoningDelta:
            continue
        if cls is ToolCallDelta:
            assert type(d.index) is int, d
            assert d.id is None or type(d.id) is str, d
            assert d.name is None or type(d.name) is str, d
            assert type(d.arguments) is str, d
            assert d.extra is None or all(_extra_value(k, v) for k, v in d.extra.items()), d
        elif cls is Finish:
            assert type(d.raw) is str, d
        elif cls is Metadata:
            assert d.provider_id is None or type(d.provider_id) is str, d
            assert d.model is None or type(d.model) is str, d
        elif cls is UsageReport:
            usage = d.usage
            assert type(usage) is Usage, d
            for n in ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cached_tokens"):
                assert getattr(usage, n) is None or type(getattr(usage, n)) is int, (n, d)
        else:
            raise AssertionError(f"not a delta: {d!r}")


def _extra_value(key: str, value: object) -> bool:
    """A tool call's ``extra`` holds text (Gemini's thought signature), or Anthropic's
    thinking blocks: a list of objects of text (``type``, ``thinking``, ``signature``,
    ``data``), sent back as they came."""
    if key == "thinking_blocks":
        return type(value) is list and all(
            type(b) is dict and all(type(x) is str for x in b.values()) for b in value
        )
    return type(value) is str


@dataclass(frozen=True)
class Parse:
    """What a response derives from a delta list."""

    text: str
    reasoning: str | None
    tool_calls: tuple[tuple[str, str, str, int], ...]  # (id, name, arguments, index)
    usage: Usage | None
    usage_raw: dict[str, Any] | None
    finish_raw: str | None
    finish: str | None
    provider_id: str | None
    model: str | None


def parse(deltas: list[Delta]) -> Parse:
    text: list[str] = []
    reasoning: list[str] = []
    tools = ToolCallAssembler()
    usage: Usage | None = None
    finish: str | None = None
    provider_id: str | None = None
    model: str | None = None
    for d in deltas:
        if type(d) is TextDelta:
            text.append(d)
        elif type(d) is ReasoningDelta:
            reasoning.append(d)
        elif type(d) is ToolCallDelta:
            tools.add(d)
        elif type(d) is UsageReport:
            usage = d.usage
        elif type(d) is Finish:
            finish = d.raw
        elif type(d) is Metadata:
            provider_id = d.provider_id or provider_id
            model = d.model or model
    calls = tools.calls()
    for call in calls:  # (what response.tool_calls hands out; must not raise a bare error)
        try:
            call.parsed_arguments()
        except streamwrap.StreamwrapError:
            pass
    return Parse(
        text="".join(text),
        reasoning="".join(reasoning) if reasoning else None,
        tool_calls=tuple((c.id, c.name, c.arguments, c.index) for c in calls),
        usage=usage,
        usage_raw=dict(usage.raw) if usage is not None and usage.raw is not None else None,
        finish_raw=finish,
        finish=normalize_finish_reason(finish),
        provider_id=provider_id,
        model=model,
    )


def content(deltas: list[Delta]) -> list[Delta]:
    return [d for d in deltas if type(d) is not UsageReport]


def outcome(wire: Wire, chunks: Sequence[bytes]) -> tuple[Any, ...]:
    """What must not depend on the cuts: the error (type and message), the deltas (usage
    readings aside where a mapper reports them once per read), and the parse."""
    deltas, error = run(wire, chunks)
    kept = deltas if wire.usage_per_event else content(deltas)
    return (None if error is None else f"{type(error).__name__}: {error}"), kept, parse(deltas)


# -- 1. real recordings cut anywhere ------------------------------------------------------


def test_every_recording_folder_is_in_the_provider_table(recordings: Path) -> None:
    # A new provider's recordings must be routed (or skipped, saying why) on purpose, not
    # break collection or be silently left out.
    everything = _recordings.everything()
    assert not [r.id for r in everything if not r.routed]
    folders = {p.name for p in recordings.iterdir() if p.is_dir()}
    assert folders <= {*_recordings.WIRES, *_recordings.NO_WRAPPER}
    assert {r.wire.name for r in RECORDED} == {
        "openai",
        "dashscope",
        "gemini",
        "ollama",
        "anthropic",
        "openai_responses",
        "bedrock",
        "bedrock_invoke",
        "vertex",
    }
    # Every streamed recording of a provider with a wrapper is decoded here.
    streamed = [r for r in everything if r.status == 200 and r.provider not in _recordings.NO_WRAPPER]
    assert sorted(r.source.id for r in RECORDED) == sorted(r.id for r in streamed)
    assert len(RECORDED) >= 25
    # Azure OpenAI's chat completions are the OpenAI wire (every deployment style).
    assert {r.source.name for r in RECORDED if r.source.provider == "azure"} >= {"o4-mini_v1_text_usage"}
    assert all(r.wire is OPENAI for r in RECORDED if r.source.provider == "azure")


def expected_parse(recording: Recording) -> dict[str, Any]:
    """The recording's ``expected`` block, in :class:`Parse`'s terms (the fields it has)."""
    e = recording.meta["expected"]
    wire = recording.wire
    if wire is OPENAI:
        return {
            "text": e["text"],
            "reasoning": e["reasoning"],
            "tool_calls": tuple((c["id"], c["name"], c["arguments"], c["index"]) for c in e["tool_calls"]),
            "usage_raw": e["usage"],
            "finish_raw": e["finish_reason"],
            "provider_id": e["id"],
            "model": e["model"],
        }
    if wire is DASHSCOPE:
        return {
            "text": e["text"],
            "reasoning": e["reasoning"],
            "tool_calls": tuple((c["id"], c["name"], c["arguments"], c["index"]) for c in e["tool_calls"]),
            "usage_raw": e["usage"],
            "finish_raw": e["finish_reason"],
            "provider_id": e["request_id"],
        }
    if wire is GEMINI:
        return {
            "text": e["text"],
            "reasoning": e["thought_text"],
            # (Gemini gives no call ids: the mapper makes them up; compare name and args.)
            "calls": [(c["name"], c["args"]) for c in e["function_calls"]],
            "usage_raw": e["usage"]["raw_last_usageMetadata"],
            "finish_raw": e["finish_reason"],
            "model": e["model_version"],
        }
    if wire is VERTEX:
        return {
            "text": e["text"],
            "reasoning": e["thought_text"],
            "calls": [(c["name"], c["args"]) for c in e["function_calls"]],
            "tool_calls": tuple(
                (f"call_{e['response_id']}_{n}", c["name"], c["arguments"], n)
                for n, c in enumerate(e["tool_calls"])
            ),
            # (The early readings, {"trafficType": ...} only, are replaced by the last.)
            "usage_raw": e["usage"],
            "finish_raw": e["finish_reason"],
            "provider_id": e["response_id"],
            "model": e["model_version"],
        }
    if wire is ANTHROPIC:
        return {
            "text": e["text"],
            "reasoning": e.get("thinking"),
            "tool_calls": tuple(
                (c["id"], c["name"], c["arguments"], n) for n, c in enumerate(e.get("tool_calls", []))
            ),
            "finish_raw": e["stop_reason"],
            "model": e["model"],
            "usage_counts": (
                e["usage"]["input_tokens"]
                + e["usage"]["cache_read_input_tokens"]
                + e["usage"]["cache_creation_input_tokens"],
                e["usage"]["output_tokens"],
            ),
        }
    if wire is OPENAI_RESPONSES:
        # A refusal is the reply's text, and its finish reason is "refusal".
        return {
            "text": e["text"] + (e["refusal"] or ""),
            "reasoning": e["reasoning"],
            "tool_calls": tuple(
                (c["id"], c["name"], c["arguments"], c["output_index"]) for c in e["tool_calls"]
            ),
            "usage_raw": e["usage"],
            "finish_raw": "refusal" if e["refusal"] else e["finish_reason"],
            "provider_id": e["response_id"],
            "model": e["model"],
        }
    if wire is BEDROCK:
        # (Converse's events carry no response id nor model.)
        return {
            "text": e["text"],
            "reasoning": e["reasoning"],
            "tool_calls": tuple(
                (c["id"], c["name"], c["arguments"], n) for n, c in enumerate(e["tool_calls"])
            ),
            "finish_raw": e["finish_reason"],
            "usage_counts": (e["usage"]["inputTokens"], e["usage"]["outputTokens"]),
            "usage_raw": {**e["usage"], **e["metrics"]},
        }
    if wire is BEDROCK_INVOKE:
        return {
            "text": e["text"],
            "reasoning": e["reasoning"],
            "tool_calls": tuple(
                (c["id"], c["name"], c["arguments"], n) for n, c in enumerate(e["tool_calls"])
            ),
            "finish_raw": e["finish_reason"],
            "model": e["model"],
            "provider_id": e["message_id"],
            "usage_counts": (
                e["usage"]["input_tokens"]
                + e["usage"]["cache_read_input_tokens"]
                + e["usage"]["cache_creation_input_tokens"],
                e["usage"]["output_tokens"],
            ),
        }
    assert wire is OLLAMA
    return {
        "text": e["text"],
        "reasoning": e["thinking"],
        "tool_calls": (),
        "usage_counts": (e["prompt_eval_count"], e["eval_count"]),
        "finish_raw": e["done_reason"],
        "model": e["model"],
    }


def actual_parse(result: Parse, keys: Iterable[str]) -> dict[str, Any]:
    derived: dict[str, Callable[[], Any]] = {
        "calls": lambda: [(name, orjson.loads(arguments)) for _, name, arguments, _ in result.tool_calls],
        "usage_counts": lambda: (
            None if result.usage is None else (result.usage.input_tokens, result.usage.output_tokens)
        ),
    }
    return {k: derived[k]() if k in derived else getattr(result, k) for k in keys}


@pytest.mark.parametrize("recording", RECORDING_PARAMS)
@_settings(100)
@given(data=st.data())
def test_recording_cut_anywhere_parses_like_the_whole(recording: Recording, data: st.DataObject) -> None:
    body = recording.body
    whole = outcome(recording.wire, [body])
    error, _, result = whole
    assert error is None
    assert result.text or result.tool_calls, "a recording with no content"
    expected = expected_parse(recording)
    assert actual_parse(result, expected) == expected
    # Cuts anywhere, often close together (inside CRLF pairs, multi-byte characters, the
    # `data:` prefix), and at times every single byte apart.
    cuts = data.draw(
        st.lists(st.integers(min_value=0, max_value=len(body)), max_size=64)
        | st.integers(min_value=0, max_value=len(body) - 1).flatmap(
            lambda start: st.just(list(range(start, min(len(body), start + 48))))
        ),
        label="cuts",
    )
    assert outcome(recording.wire, pieces(body, cuts)) == whole


@pytest.mark.parametrize("recording", RECORDING_PARAMS)
def test_recording_fed_byte_by_byte_parses_like_the_whole(recording: Recording) -> None:
    body = recording.body
    assert outcome(recording.wire, [body[i : i + 1] for i in range(len(body))]) == outcome(
        recording.wire, [body]
    )


# Error bodies a mapper reads too: Gemini sends its errors as a JSON body even where the
# content type says text/event-stream (see the recordings' README).
ERROR_RECORDINGS = _recordings.params(
    "path, meta",
    [r for r in _recordings.select(wire=_recordings.GEMINI, status=None) if r.status != 200],
    lambda r: (r.body_path, r.meta),
    what="Gemini error",
)


@pytest.mark.parametrize(("path", "meta"), ERROR_RECORDINGS)
@_settings(100)
@given(data=st.data())
def test_recorded_error_body_cut_anywhere_is_the_same_error(
    path: Path, meta: dict[str, Any], data: st.DataObject
) -> None:
    body = path.read_bytes()
    whole = outcome(GEMINI, [body])
    error = meta["expected"]["error_body_json"]["error"]
    assert whole[0] == (
        f"ProviderStreamError: gemini: {error['message']} [{error['status']}] (after 0 characters of text)"
    )
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=64), label="cuts")
    assert outcome(GEMINI, pieces(body, cuts)) == whole


# -- 2. arbitrary and broken bytes --------------------------------------------------------


def check_bytes(wire: Wire, body: bytes, cuts: list[int]) -> None:
    """Only typed errors, well-typed deltas, and the same outcome however it is cut."""
    whole = outcome(wire, [body])
    split = outcome(wire, pieces(body, [c % (len(body) + 1) for c in cuts]))
    assert split == whole


_CUTS = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=32)


@pytest.mark.parametrize("wire", WIRE_PARAMS)
@_settings(150)
@given(body=st.binary(max_size=512), cuts=_CUTS)
@example(body=b"data: {not json\n\n", cuts=[])
@example(body=b"data: [1, 2]\n\n", cuts=[3])
@example(body=b"data: \xff\n\n", cuts=[])
@example(body=b"event: error\ndata: {}\n\n", cuts=[])
@example(body=b'data: {"error": {"message": "boom"}}\n\n', cuts=[9])
@example(body=b"data: [DONE]\n\ndata: garbage\n\n", cuts=[])
@example(body=b'\xef\xbb\xbf{"a": 1}\n\xff\n', cuts=[1, 2])
@example(body=b'  \r\n{"error": 5}', cuts=[1])
@example(body=b"data: " + b"[" * 100_000 + b"\n\n", cuts=[50_000])
@example(body=b"[" * 100_000 + b"\n", cuts=[])
@example(body=b'data: {"a": ' * 5_000 + b"\n\n", cuts=[])
def test_arbitrary_bytes_raise_only_streamwrap_errors(wire: Wire, body: bytes, cuts: list[int]) -> None:
    check_bytes(wire, body, cuts)


# Ways to break a real body.
_INVALID_UTF8 = st.sampled_from(
    [
        b"\xff",
        b"\xfe",
        b"\x80",
        b"\xc3",
        b"\xc0\xaf",
        b"\xe2\x82",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf0\x9f\x98",
    ]
)
_GARBAGE = (
    st.binary(min_size=1, max_size=24)
    | _INVALID_UTF8
    | st.sampled_from(
        [
            b"\n",
            b"\r",
            b"\r\n",
            b"\n\n",
            b"data: ",
            b"data:",
            b":",
            b"{",
            b"}",
            b"[",
            b"]",
            b'"',
            b"\\",
            b"\x00",
            b"event: error\n",
            b"[DONE]",
            b"null",
            b"true",
            b"1e999",
            b"-0",
            b'"\\ud800"',
        ]
    )
)


@st.composite
def mutated(draw: st.DrawFn, bodies: list[bytes]) -> bytes:
    body = bytearray(draw(st.sampled_from(bodies)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate", "replace"]))
        at = draw(st.integers(min_value=0, max_value=len(body)))
        if kind == "flip" and body:
            body[at % len(body)] ^= draw(st.integers(min_value=1, max_value=255))
        elif kind == "truncate":
            del body[at:]
        elif kind == "insert":
            body[at:at] = draw(_GARBAGE)
        elif kind == "delete":
            del body[at : at + draw(st.integers(min_value=1, max_value=64))]
        elif kind == "duplicate":
            body[at:at] = body[at : at + draw(st.integers(min_value=1, max_value=256))]
        else:  # one byte becomes a byte that breaks UTF-8
            body[at : at + 1] = draw(_INVALID_UTF8)
    return bytes(body)


@pytest.mark.parametrize("wire", WIRE_PARAMS)
@_settings(150)
@given(data=st.data(), cuts=_CUTS)
def test_mutated_recordings_raise_only_streamwrap_errors(
    wire: Wire, data: st.DataObject, cuts: list[int]
) -> None:
    bodies = recordings_of(wire)
    if not bodies:
        pytest.skip(
            _recordings.MISSING if not _recordings.RECORDINGS.is_dir() else f"no {wire.name} recordings"
        )
    check_bytes(wire, data.draw(mutated(bodies), label="body"), cuts)


# JSON objects with the keys each mapper looks for, holding values of any type.
_KEYS = st.sampled_from(
    [
        # OpenAI chunks
        "id",
        "model",
        "choices",
        "delta",
        "message",
        "content",
        "reasoning_content",
        "reasoning",
        "tool_calls",
        "index",
        "function",
        "name",
        "arguments",
        "finish_reason",
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "cached_tokens",
        "reasoning_tokens",
        "prompt_cache_hit_tokens",
        "error",
        "code",
        "type",
        # DashScope
        "output",
        "text",
        "request_id",
        "input_tokens",
        "output_tokens",
        "output_tokens_details",
        # Gemini
        "candidates",
        "parts",
        "thought",
        "functionCall",
        "args",
        "thoughtSignature",
        "finishReason",
        "usageMetadata",
        "promptTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "totalTokenCount",
        "cachedContentTokenCount",
        "responseId",
        "modelVersion",
        "promptFeedback",
        "blockReason",
        "blockReasonMessage",
        "status",
        # Ollama
        "thinking",
        "done",
        "done_reason",
        "prompt_eval_count",
        "eval_count",
        # Anthropic (also "type", "index", "delta", "message", "usage", "text", "thinking", "error")
        "content_block",
        "partial_json",
        "signature",
        "data",
        "input",
        "stop_reason",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        # OpenAI Responses
        "response",
        "item",
        "output_index",
        "delta",
        "call_id",
        "arguments",
        "incomplete_details",
        "reason",
        # Bedrock ConverseStream (also "delta", "text", "input", "name", "usage", "signature")
        "contentBlockIndex",
        "start",
        "toolUse",
        "toolUseId",
        "reasoningContent",
        "redactedContent",
        "stopReason",
        "metrics",
        "latencyMs",
        "inputTokens",
        "outputTokens",
        "cacheReadInputTokens",
        "cacheWriteInputTokens",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False, width=32)
    | st.text(max_size=4)
    | st.sampled_from(["stop", "STOP", "null", "", "tool_calls", "{}", '{"a": 1}'])
    # Anthropic's event, block and delta types, so that its mapper gets past the first key.
    | st.sampled_from(
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "text_delta",
            "thinking_delta",
            "signature_delta",
            "input_json_delta",
            "tool_use",
            "thinking",
            "redacted_thinking",
        ]
    )
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=16,
)
_OBJECTS = st.lists(st.dictionaries(_KEYS, _JSON, max_size=5), min_size=1, max_size=5)


@pytest.mark.parametrize("wire", WIRE_PARAMS)
@_settings(300)
@given(objects=_OBJECTS, cuts=_CUTS, end=st.booleans())
@example(objects=[{"choices": 5}], cuts=[], end=True)
@example(objects=[{"choices": [{"delta": {"content": 5}}]}], cuts=[12], end=True)
@example(objects=[{"choices": [{"finish_reason": {"a": 1}}]}], cuts=[], end=True)
@example(
    objects=[{"choices": [{"delta": {"tool_calls": [{"id": 5, "function": {"arguments": 7}}]}}]}],
    cuts=[],
    end=True,
)
@example(objects=[{"usage": {"prompt_tokens": "3", "completion_tokens": True}}], cuts=[], end=True)
@example(objects=[{"output": {"text": "x"}, "usage": 5}], cuts=[], end=False)
@example(objects=[{"usageMetadata": "x"}, {"candidates": [{"finishReason": "STOP"}]}], cuts=[], end=False)
@example(objects=[{"id": {"a": 1}, "model": [1], "responseId": 5, "modelVersion": 2.5}], cuts=[], end=True)
@example(
    objects=[{"type": "response.output_item.added", "output_index": "0", "item": {"type": "function_call"}}],
    cuts=[],
    end=False,
)
@example(
    objects=[{"type": "response.function_call_arguments.delta", "output_index": 0, "delta": 5}],
    cuts=[],
    end=False,
)
@example(
    objects=[{"type": "response.completed", "response": {"usage": 5, "status": "completed"}}],
    cuts=[],
    end=False,
)
@example(
    objects=[{"type": "response.incomplete", "response": {"incomplete_details": [1]}}], cuts=[], end=False
)
@example(objects=[{"type": "response.failed", "response": {"error": {"code": 5}}}], cuts=[3], end=False)
@example(objects=[{"type": {"a": 1}}, {"type": "response.created", "response": []}], cuts=[], end=False)
def test_misshapen_json_raises_only_streamwrap_errors(
    wire: Wire, objects: list[dict[str, Any]], cuts: list[int], end: bool
) -> None:
    body = b"".join(wire.frame(orjson.dumps(o)) for o in objects)
    if end and wire is OPENAI:
        body += b"data: [DONE]\n\n"
    check_bytes(wire, body, cuts)
