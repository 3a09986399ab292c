"""The emulator's OpenAI Responses dialect (``POST .../responses``).

The official ``openai`` SDK reads the emulated stream (``client.responses.stream``, which
checks that every event fits the response it accumulates, and ``create(stream=True)``)
and must see exactly the scripted content, in the same events as real traffic
(../shared/recordings/openai_responses, skipped if absent); faults are the Responses API's
``error`` and ``response.failed`` events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.support import recordings as _recordings

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

API_KEY = "sk-test-secret-key-0123456789"


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[openai.AsyncOpenAI]:
    # Closed in the test's own event loop: a client left to the garbage collector would
    # close its connections in a later test, maybe under the other backend.
    async with openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key=API_KEY, max_retries=0) as client:
        yield client


def _events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(``event:`` line, data) of every event, decoded independently of streamwrap."""
    out = []
    for block in body.split(b"\n\n"):
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        if b"data" in fields:
            out.append((fields[b"event"].decode(), orjson.loads(fields[b"data"])))
    return out


def _post(emu: Emulator, **body: Any) -> httpx.Response:
    return httpx.post(
        emu.openai_base_url + "/responses", json={"model": "gpt-5", "input": "hi", "stream": True, **body}
    )


async def test_sdk_stream_helper_accumulates_reasoning_text_and_tool_calls(
    emu: Emulator, client: openai.AsyncOpenAI
) -> None:
    emu.script(
        Reply(
            reasoning="Think first.",
            text="Two calls.",
            tool_calls=[ToolCallSpec("get_weather", '{"city": "Paris"}'), ToolCallSpec("get_time", "{}")],
            usage=(7, 20),
        )
    )
    async with client.responses.stream(model="gpt-5", input="hi") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == "Two calls."
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call", "function_call"]
    reasoning = final.output[0]
    assert reasoning.type == "reasoning"
    assert [part.text for part in reasoning.summary] == ["Think first."]
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", '{"city": "Paris"}'),
        ("get_time", "{}"),
    ]
    assert all(c.call_id.startswith("call_emu_") and c.id.startswith("fc_") for c in calls)
    assert final.status == "completed"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (7, 20, 27)
    assert final.usage.output_tokens_details.reasoning_tokens == 2
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    counts = Counter(kinds)
    assert counts["response.reasoning_summary_text.delta"] == 2
    assert counts["response.output_text.delta"] == 2
    assert counts["response.function_call_arguments.delta"] == 5  # cut in a few fragments each


async def test_sdk_create_stream_and_non_streaming(emu: Emulator, client: openai.AsyncOpenAI) -> None:
    emu.script(Reply(text="Hello there"), Reply(text="Hello there"))
    texts, sequence = [], []
    async for event in await client.responses.create(model="gpt-5", input="hi", stream=True):
        sequence.append(event.sequence_number)
        if event.type == "response.output_text.delta":
            texts.append(event.delta)
    assert texts == ["Hello ", "there"]
    assert sequence == list(range(len(sequence)))  # contiguous, as the API numbers them
    response = await client.responses.create(model="gpt-5", input="hi")
    assert response.output_text == "Hello there"
    assert response.id.startswith("resp_")
    assert response.status == "completed"


async def test_sdk_sees_an_incomplete_response(emu: Emulator, client: openai.AsyncOpenAI) -> None:
    emu.script(Reply(text="Cut", finish_reason="length"))
    events = [event async for event in await client.responses.create(model="gpt-5", input="hi", stream=True)]
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output_text == "Cut"


async def test_sdk_errors(emu: Emulator, client: openai.AsyncOpenAI) -> None:
    emu.script(Reply(status=429))
    with pytest.raises(openai.RateLimitError):
        await client.responses.create(model="gpt-5", input="hi", stream=True)
    emu.script(Reply(text=["a", "b"], fault=Fault.error_event_after(1, "overloaded", "server_error")))
    # (The SDK hands the Responses API's `error` event over as an event, not an exception.)
    events = [event async for event in await client.responses.create(model="gpt-5", input="hi", stream=True)]
    assert [event.type for event in events][-2:] == ["response.output_text.delta", "error"]
    error = events[-1]
    assert error.type == "error"
    assert (error.message, error.code) == ("overloaded", "server_error")


def test_faults_on_the_wire(emu: Emulator) -> None:
    emu.script(
        Reply(text=["a", "b"], fault=Fault.error_event_after(1, "overloaded", "server_error")),
        Reply(text=["a", "b"], fault=Fault.inband_error_after(1, "overloaded", "server_error")),
        Reply(text=["a", "b"], fault=Fault.end_without_finish_after(1)),
    )
    error = _events(_post(emu).content)
    assert [kind for kind, _ in error][-2:] == ["response.output_text.delta", "error"]
    assert error[-1][1] == {"type": "error", "code": "server_error", "message": "overloaded", "param": None}
    failed = _events(_post(emu).content)
    assert failed[-1][0] == "response.failed"
    assert failed[-1][1]["response"]["error"] == {"code": "server_error", "message": "overloaded"}
    cut = _events(_post(emu).content)
    assert [data["delta"] for kind, data in cut if kind == "response.output_text.delta"] == ["a"]
    assert not {"response.completed", "response.incomplete"} & {kind for kind, _ in cut}
    # The `event:` line is the data's type, as on the real wire.
    assert all(kind == data["type"] for kind, data in error + failed + cut)


def test_keys_are_checked_as_openai_checks_them() -> None:
    with Emulator(api_key=API_KEY) as emu:
        emu.script(Reply(text="kept"))
        refused = _post(emu)
        assert refused.status_code == 401
        assert set(refused.json()["error"]) == {"message", "type", "param", "code"}
        allowed = httpx.post(
            emu.openai_base_url + "/responses",
            json={"model": "gpt-5", "input": "hi", "stream": True},
            headers={"authorization": f"Bearer {API_KEY}"},
        )
        assert b"kept" in allowed.content


def test_text_stream_has_the_events_of_a_recording(emu: Emulator, recordings: Path) -> None:
    recording = _recordings.named("openai_responses/gpt-4o_text_usage")
    recorded = _events(recording.body)
    text = [data["delta"] for kind, data in recorded if kind == "response.output_text.delta"]
    emu.script(Reply(text=text))
    mine = _events(_post(emu).content)
    assert [kind for kind, _ in mine] == [kind for kind, _ in recorded]
    for (_, ours), (_, theirs) in zip(mine, recorded, strict=True):
        # Every field of the real event is there (the padding `obfuscation` aside).
        assert set(theirs) - {"obfuscation"} <= set(ours), theirs["type"]
