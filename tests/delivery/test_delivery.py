"""Delivery: response events, the callback sink, deliver(), response_callback and the
default output, through the real openai SDK against the emulator, on asyncio and trio."""

from __future__ import annotations

import gc
import threading
from functools import partial
from typing import Any

import anyio
import pytest

import streamwrap
from streamwrap import CallbackSink, EndEvent, ResponseEvent
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.support import providers

pytestmark = pytest.mark.anyio

TEXT = ["The ", "quick ", "brown ", "fox."]


class Recorder:
    """A sink that keeps what it was sent (and on which thread)."""

    def __init__(self) -> None:
        self.events: list[ResponseEvent] = []
        self.threads: set[str] = set()
        self.done = threading.Event()

    async def send(self, event: ResponseEvent) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread().name)
        if event.final:
            self.done.set()

    @property
    def ends(self) -> list[EndEvent]:
        return [e for e in self.events if isinstance(e, EndEvent)]

    @property
    def text(self) -> str:
        return "".join(e.delta for e in self.events if e.type == "text")


class Callbacks:
    """Records which CallbackSink callbacks fired, sync and async ones mixed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.sink = CallbackSink(
            on_chunk=self.on_chunk, on_finish=self.on_finish, on_error=self.on_error, on_cancel=self.on_cancel
        )

    def on_chunk(self, event: Any) -> None:
        self.calls.append(("chunk", event))

    async def on_finish(self, event: EndEvent) -> None:
        await anyio.sleep(0)
        self.calls.append(("finish", event))

    def on_error(self, event: EndEvent) -> None:
        self.calls.append(("error", event))

    async def on_cancel(self, event: EndEvent) -> None:
        self.calls.append(("cancel", event))

    @property
    def terminal(self) -> list[tuple[str, EndEvent]]:
        return [(k, e) for k, e in self.calls if k != "chunk"]

    @property
    def chunk_text(self) -> str:
        return "".join(e.delta for k, e in self.calls if k == "chunk" and e.type == "text")


streaming = partial(providers.make_model, api_key="sk-test")


# -- response.events() ---------------------------------------------------------------------


async def test_events_are_a_start_the_chunks_and_one_final_end(emu: Emulator, model: Any) -> None:
    emu.script(
        Reply(
            text=TEXT,
            reasoning=["hm", "m"],
            usage=(7, 6),
            tool_calls=[ToolCallSpec("lookup", ['{"q":', '"x"}'], id="call_1")],
        )
    )
    response = await model("hi")
    events = [e async for e in response.events()]
    types = [e.type for e in events]
    assert types[:7] == ["start", "reasoning", "reasoning", "text", "text", "text", "text"]
    assert set(types[7:-1]) == {"tool_call"} and types[-1] == "end"
    calls = [e for e in events if e.type == "tool_call"]
    assert "".join(e.arguments_delta for e in calls) == '{"q":"x"}'
    assert calls[0].name == "lookup" and calls[0].call_id == "call_1"
    assert [e.seq for e in events] == list(range(len(events)))
    assert {e.response_id for e in events} == {response.id}
    assert [e.final for e in events] == [False] * (len(events) - 1) + [True]
    texts = [e for e in events if e.type == "text"]
    assert [e.text_so_far for e in texts] == [
        "The ",
        "The quick ",
        "The quick brown ",
        "The quick brown fox.",
    ]
    end = events[-1]
    assert isinstance(end, EndEvent)
    assert (end.status, end.text, end.reasoning, end.finish_reason) == (
        "finished",
        "The quick brown fox.",
        "hmm",
        "tool_calls",
    )
    assert end.usage.output_tokens == 6 and end.usage.source == "provider"
    assert [(c.name, c.arguments) for c in end.tool_calls] == [("lookup", '{"q":"x"}')]
    # The wire form of the end carries no text or reasoning a client could append twice.
    wire = end.to_dict()
    assert "text" not in wire and "reasoning" not in wire and wire["final"] is True
    assert "The quick" not in repr(wire) and "hmm" not in repr(wire)
    # Replays: a second iteration sees the same events.
    again = [e async for e in response.events()]
    assert [e.to_dict() for e in again] == [e.to_dict() for e in events]


async def test_events_end_with_failed_instead_of_raising(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT, fault=Fault.drop_after(2)))
    response = await model("hi")
    events = [e async for e in response.events()]
    end = events[-1]
    assert isinstance(end, EndEvent)
    assert end.status == "failed" and end.finish_reason == "error"
    assert end.text == "The quick "
    assert isinstance(end.error, streamwrap.StreamInterruptedError)
    assert end.to_dict()["error"]["type"] == "StreamInterruptedError"


async def test_non_streaming_events_are_one_final_message(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT))
    response = await model("hi", stream=False)
    events = [e async for e in response.events()]
    assert [e.type for e in events] == ["start", "end"]
    assert events[-1].text == "The quick brown fox."  # type: ignore[union-attr]


async def test_leaving_events_early_cancels_unless_told_otherwise(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT, delay=0.05), Reply(text=TEXT, delay=0.05))
    response = await model("hi")
    async for event in response.events():
        if event.type == "text":
            break
    await response.await_done()
    assert response.finish_reason == "cancelled"

    watched = await model("hi")
    async for event in watched.events(cancel_on_exit=False):
        if event.type == "text":
            break
    assert await watched.aread() == "The quick brown fox."


# -- CallbackSink and deliver() -------------------------------------------------------------


async def test_callback_sink_gets_chunks_then_exactly_one_finish(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT, usage=(3, 4)))
    response = await model("hi")
    cb = Callbacks()
    await streamwrap.deliver(response, cb.sink)
    assert cb.chunk_text == "The quick brown fox."
    [(kind, end)] = cb.terminal
    assert kind == "finish"
    assert (end.text, end.finish_reason, end.usage.output_tokens) == ("The quick brown fox.", "stop", 4)


async def test_callback_sink_on_error_once_with_the_partial_text(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT, fault=Fault.error_event_after(3)))
    response = await model("hi")
    cb = Callbacks()
    await streamwrap.deliver(response, cb.sink)
    [(kind, end)] = cb.terminal
    assert kind == "error"
    assert end.text == "The quick brown " == cb.chunk_text
    assert isinstance(end.error, streamwrap.ProviderStreamError)
    assert end.finish_reason == "error"


async def test_deliver_to_several_sinks_while_the_caller_iterates(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=[f"w{i} " for i in range(200)], delay=0.001))
    response = await model("hi")
    a, b, cb = Recorder(), Recorder(), Callbacks()
    seen: list[str] = []
    async with streamwrap.deliver(response, a, b, cb.sink):
        async for _, text in response.stream:
            seen.append(text)
    expected = "".join(f"w{i} " for i in range(200))
    assert seen[-1] == expected
    assert [e.to_dict() for e in a.events] == [e.to_dict() for e in b.events]
    assert a.text == expected == cb.chunk_text
    assert len(a.ends) == 1 and [k for k, _ in cb.terminal] == ["finish"]


async def test_caller_breaking_out_cancels_and_every_sink_hears_it(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=[f"w{i} " for i in range(100)], delay=0.01))
    response = await model("hi")
    cb = Callbacks()
    rec = Recorder()
    async with streamwrap.deliver(response, cb.sink, rec):
        async for _, text in response.stream:
            if len(text) > 10:
                break
    [(kind, end)] = cb.terminal
    assert kind == "cancel" and end.finish_reason == "cancelled"
    assert end.text.startswith("w0 w1 ")
    assert len(rec.ends) == 1 and rec.ends[0].status == "cancelled"


async def test_cancelling_the_delivery_cancels_the_response_and_says_so(own_emu: Emulator) -> None:
    own_emu.script(Reply(text=[f"w{i} " for i in range(100)], delay=0.02))
    model = streaming(own_emu)
    response = await model("hi")
    cb = Callbacks()
    with anyio.move_on_after(0.2):
        await streamwrap.deliver(response, cb.sink)
    [(kind, end)] = cb.terminal
    assert kind == "cancel" and end.text == response.partial_text
    assert response.finish_reason == "cancelled"
    assert own_emu.wait_idle(5)
    await model.aclose()


async def test_a_failing_sink_stops_but_hears_the_end_and_the_error_surfaces(
    emu: Emulator, model: Any
) -> None:
    emu.script(Reply(text=TEXT))
    response = await model("hi")
    chunks: list[str] = []
    ends: list[str] = []

    def on_chunk(event: Any) -> None:
        chunks.append(event.delta)
        if len(chunks) == 2:
            raise ValueError("sink broke")

    broken = CallbackSink(on_chunk=on_chunk, on_finish=lambda e: ends.append(e.status))
    healthy = Recorder()
    with pytest.raises(ValueError, match="sink broke"):
        await streamwrap.deliver(response, broken, healthy)
    assert chunks == ["The ", "quick "]  # no chunk after the failure...
    assert ends == ["finished"]  # ...but the end, once
    assert healthy.text == "The quick brown fox." and len(healthy.ends) == 1
    assert response.finish_reason == "stop"  # the response itself went on


async def test_deliver_rejects_what_is_not_a_sink(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT))
    response = await model("hi")
    with pytest.raises(streamwrap.InputError, match="must be a sink"):
        streamwrap.deliver(response, 42)  # type: ignore[arg-type]
    with pytest.raises(streamwrap.InputError, match="on_finish"):
        CallbackSink(on_finish="print")  # type: ignore[arg-type]
    await response.aclose()


# -- response_callback ------------------------------------------------------------------------


async def test_config_callback_gets_chunks_and_the_end_without_anyone_reading(emu: Emulator) -> None:
    events: list[ResponseEvent] = []
    ended = anyio.Event()

    async def callback(event: ResponseEvent) -> None:
        events.append(event)
        if event.final:
            ended.set()

    model = streaming(emu, response_callback=callback)
    emu.script(Reply(text=TEXT))
    await model("hi")  # fire and forget: the callback holds the response until its end
    gc.collect()
    with anyio.fail_after(10):
        await ended.wait()
    assert [e.type for e in events] == ["text"] * 4 + ["end"]  # a plain callback gets no start
    assert events[-1].text == "The quick brown fox."  # type: ignore[union-attr]


async def test_non_streaming_callback_gets_one_final_message(emu: Emulator) -> None:
    rec = Recorder()
    model = streaming(emu, response_callback=lambda e: rec.events.append(e))
    emu.script(Reply(text=TEXT))
    response = await model("hi", stream=False)
    await response.aread()
    with anyio.fail_after(10):
        while not rec.events:
            await anyio.sleep(0.01)
    [end] = rec.events
    assert isinstance(end, EndEvent) and end.text == "The quick brown fox."


async def test_call_level_callback_overrides_the_config_one(emu: Emulator) -> None:
    config_rec, call_rec = Recorder(), Recorder()
    model = streaming(emu, response_callback=config_rec)
    emu.script(Reply(text=TEXT))
    response = await model("hi", response_callback=call_rec)
    await response.aread()
    with anyio.fail_after(10):
        while not call_rec.ends:
            await anyio.sleep(0.01)
    assert call_rec.text == "The quick brown fox."
    assert config_rec.events == []


async def test_callback_hears_an_http_error_before_the_stream(emu: Emulator) -> None:
    cb = Callbacks()
    model = streaming(emu, response_callback=cb.sink)
    emu.script(Reply(status=401))
    with pytest.raises(streamwrap.AuthenticationError):
        await model("hi")
    with anyio.fail_after(10):
        while not cb.terminal:
            await anyio.sleep(0.01)
    [(kind, end)] = cb.terminal
    assert kind == "error" and isinstance(end.error, streamwrap.AuthenticationError)


def test_default_output_from_sync_code(emu: Emulator, model: Any) -> None:
    rec = Recorder()
    emu.script(Reply(text=TEXT))
    with streamwrap.default_output(rec):
        assert model.call_sync("hi").text == "The quick brown fox."
    assert rec.done.wait(10) and rec.text == "The quick brown fox."


def test_sync_call_runs_callbacks_on_a_thread_of_their_own(emu: Emulator) -> None:
    rec = Recorder()
    model = streaming(emu, response_callback=rec)
    emu.script(Reply(text=TEXT))
    response = model.call_sync("hi")
    assert response.text == "The quick brown fox."
    assert rec.done.wait(10)
    assert rec.text == "The quick brown fox."
    assert rec.threads == {"streamwrap-delivery"}


def test_config_rejects_a_callback_that_is_not_callable(emu: Emulator) -> None:
    with pytest.raises(streamwrap.ConfigError, match="'response_callback' must be a callable or a sink"):
        streaming(emu, response_callback="print")


# -- default_output -------------------------------------------------------------------------


async def test_default_output_is_per_context(emu: Emulator, model: Any) -> None:
    emu.script(*[Reply(text=[f"{who} ", "says ", "hi"], delay=0.005) for who in ("ann", "bob")])
    sinks = {"ann": Recorder(), "bob": Recorder()}

    async def request(who: str) -> None:
        # Like two requests in one server: each sets its own output for its own calls, and
        # `async with` returns once its sink has had the end.
        async with streamwrap.default_output(sinks[who]):
            await model(f"I am {who}")
        assert sinks[who].ends

    async with anyio.create_task_group() as group:
        group.start_soon(request, "ann")
        group.start_soon(request, "bob")
    texts = sorted(s.text for s in sinks.values())
    assert texts == ["ann says hi", "bob says hi"]  # each got exactly one response, whole
    assert all(len(s.ends) == 1 for s in sinks.values())
    assert streamwrap.get_default_output() == ()


async def test_default_output_nests_and_can_be_turned_off(emu: Emulator, model: Any) -> None:
    outer, inner = Recorder(), Recorder()
    with streamwrap.default_output(outer):
        with streamwrap.default_output(inner):
            assert streamwrap.get_default_output() == (inner,)
        with streamwrap.default_output():
            emu.script(Reply(text=TEXT))
            await (await model("quiet")).aread()
        assert streamwrap.get_default_output() == (outer,)
    assert streamwrap.get_default_output() == ()
    await anyio.sleep(0.05)
    assert outer.events == [] and inner.events == []


async def test_default_output_travels_to_the_runtime_thread(emu: Emulator) -> None:
    seen: list[tuple[str, tuple[Any, ...]]] = []

    class Probe(streamwrap.OpenAIChatWrapper):
        async def _open(self, request: Any) -> Any:
            # Runs on streamwrap's own thread: the caller's context came along.
            seen.append((threading.current_thread().name, streamwrap.get_default_output()))
            return await super()._open(request)

    rec = Recorder()
    model = Probe("emulator-1", stream=True, base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)
    emu.script(Reply(text=TEXT))
    async with streamwrap.default_output(rec):
        await model("hi")
    assert seen == [("streamwrap-runtime", (rec,))]
    assert rec.text == "The quick brown fox."


async def test_an_error_in_the_body_cancels_and_passes_through(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=[f"w{i} " for i in range(100)], delay=0.01))
    response = await model("hi")
    cb = Callbacks()
    with pytest.raises(ValueError, match="body broke"):
        async with streamwrap.deliver(response, cb.sink):
            async for _, text in response.stream:
                if len(text) > 6:
                    raise ValueError("body broke")
    assert [k for k, _ in cb.terminal] == ["cancel"]
    assert response.finish_reason == "cancelled"


def test_events_sync_from_sync_code(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT))
    response = model.call_sync("hi")
    events = list(response.events_sync())
    assert [e.type for e in events] == ["start", "text", "text", "text", "text", "end"]
    assert events[-1].text == "The quick brown fox."  # type: ignore[union-attr]
