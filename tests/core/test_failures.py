"""HTTP errors, mid-stream failures, timeouts, cancellation and connection hygiene."""

from __future__ import annotations

import gc
from functools import partial
from typing import Any

import anyio
import pytest

import streamwrap
from streamwrap.testing import Emulator, Fault, Reply
from tests.support import providers

pytestmark = pytest.mark.anyio

SECRET = "sk-test-secret-key-0123456789"
TEXT = [f"w{i} " for i in range(8)]


async def idle(emu: Emulator, timeout: float = 2.0) -> bool:
    """Wait, without blocking this event loop, until the emulator has no open connection.

    (Blocking it would stop asyncio from running the generator finalizer that a `break`
    out of `async for` schedules.)"""
    with anyio.move_on_after(timeout):
        while emu.open_connections:
            await anyio.sleep(0.01)
    return emu.open_connections == 0


make_model = partial(providers.make_model, model_name="m", api_key=SECRET)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, streamwrap.AuthenticationError),
        (403, streamwrap.AuthenticationError),
        (404, streamwrap.NotFoundError),
        (429, streamwrap.RateLimitError),
        (500, streamwrap.ServerError),
        (503, streamwrap.ServerError),
        (400, streamwrap.ProviderHTTPError),
    ],
)
async def test_http_errors_raise_at_the_call(
    emu: Emulator, model: Any, status: int, error_class: type
) -> None:
    emu.script(Reply(status=status, error={"message": f"nope {SECRET}", "type": "x", "code": "c"}))
    with pytest.raises(error_class) as info:
        await model("hi")
    err = info.value
    assert isinstance(err, streamwrap.ProviderHTTPError)
    assert err.status_code == status
    assert err.provider == "openai"
    assert err.body["error"]["code"] == "c"
    # The key never appears: not in the message, not in the stored body.
    assert SECRET not in str(err) and SECRET not in repr(err.body)
    assert "nope" in str(err)


async def test_retry_after_429_then_success_records_attempts(emu: Emulator) -> None:
    model = make_model(emu, max_retries=2)
    emu.script(Reply(status=429, headers={"Retry-After": "0"}), Reply(status=503), Reply(text="ok"))
    response = await model("hi")
    assert await response.aread() == "ok"
    assert [a["status"] for a in response.attempts] == [429, 503, 200]


async def test_retries_exhausted_raise_the_last_error(emu: Emulator) -> None:
    model = make_model(emu, max_retries=1)
    emu.script(
        Reply(status=500, headers={"Retry-After": "0"}), Reply(status=500, headers={"Retry-After": "0"})
    )
    with pytest.raises(streamwrap.ServerError):
        await model("hi")
    assert len(emu.requests) == 2


async def test_non_retryable_status_is_not_retried(emu: Emulator) -> None:
    model = make_model(emu, max_retries=3)
    emu.script(Reply(status=401))
    with pytest.raises(streamwrap.AuthenticationError):
        await model("hi")
    assert len(emu.requests) == 1


async def test_no_retry_once_a_token_has_arrived(emu: Emulator) -> None:
    # Retries happen only before the first token: a stream that breaks after it is not
    # sent again (the reply would be duplicated, and billed twice), however many retries
    # are allowed. The second reply would succeed if it were asked for.
    model = make_model(emu, max_retries=1)
    emu.script(Reply(text=TEXT, fault=Fault.drop_after(3)), Reply(text="a retry"))
    response = await model("hi")
    with pytest.raises(streamwrap.StreamInterruptedError) as info:
        await response.aread()
    assert info.value.partial_text == "".join(TEXT[:3])
    assert response.partial_text == "".join(TEXT[:3])
    assert len(emu.requests) == 1
    assert [a["status"] for a in response.attempts] == [200]


async def test_connection_refused_is_a_provider_connection_error() -> None:
    with Emulator() as emu:
        url = emu.openai_base_url
    model = streamwrap.load_model(
        {"model_type": "openai_chat", "model_name": "m", "base_url": url, "api_key": "k", "max_retries": 0}
    )
    with pytest.raises(streamwrap.ProviderConnectionError):
        await model("hi")


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (Fault.error_event_after(3, message="overloaded", code="overloaded"), streamwrap.ProviderStreamError),
        (
            Fault.inband_error_after(3, message="overloaded", code="overloaded"),
            streamwrap.ProviderStreamError,
        ),
        (Fault.drop_after(3), streamwrap.StreamInterruptedError),
        (Fault.end_without_finish_after(3), streamwrap.StreamInterruptedError),
        (Fault.truncated_json_after(3), streamwrap.StreamProtocolError),
        (Fault.malformed_line_after(3), streamwrap.StreamProtocolError),
    ],
    ids=["error-event", "inband-error", "drop", "no-finish", "truncated-json", "malformed-line"],
)
async def test_mid_stream_failures_raise_typed_errors_with_partial_text(
    emu: Emulator, model: Any, fault: Fault, error_class: type
) -> None:
    emu.script(Reply(text=TEXT, fault=fault))
    response = await model("hi")  # the status was 200: the call itself succeeds
    seen: list[str] = []
    with pytest.raises(error_class) as info:
        async for is_last, text in response.stream:
            assert not is_last
            seen.append(text)
    err = info.value
    assert isinstance(err, streamwrap.StreamError)
    assert err.partial_text == "".join(TEXT[:3])
    assert seen[-1] == err.partial_text
    # Never a silent prefix: the final fields raise too, a replay raises again.
    with pytest.raises(error_class):
        _ = response.text
    with pytest.raises(error_class):
        await response.aread()
    with pytest.raises(error_class):
        async for _ in response.stream:
            pass
    assert response.finish_reason == "error"
    assert response.partial_text == "".join(TEXT[:3])
    if error_class is streamwrap.ProviderStreamError:
        assert err.code == "overloaded" and "overloaded" in str(err)


@pytest.mark.parametrize(
    "bad_event",
    [b'event: error\ndata: {"error": {"message": "overloaded"}}\n\n', b"data: {not json\n\n"],
    ids=["error-event", "malformed"],
)
async def test_text_in_the_same_read_as_an_error_is_kept(emu: Emulator, model: Any, bad_event: bytes) -> None:
    # Everything in one write: the client reads the good chunks and the bad event at once.
    chunks = b"".join(
        b'data: {"id": "c1", "choices": [{"index": 0, "delta": {"content": "%s"}}]}\n\n' % word
        for word in (b"Hel", b"lo")
    )
    emu.replay(chunks + bad_event, split=None)
    response = await model("hi")
    with pytest.raises(streamwrap.StreamError) as info:
        await response.aread()
    assert info.value.partial_text == "Hello"
    assert response.partial_text == "Hello"


async def test_stream_that_ends_without_done_after_a_finish_is_fine(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT, done=False))
    response = await model("hi")
    assert await response.aread() == "".join(TEXT)
    assert response.finish_reason == "stop"


async def test_first_token_timeout(own_emu: Emulator) -> None:
    # The budget is for the provider's first token, not for a cold start: whether the
    # clock starts before or after the SDK's import and the client's construction (the
    # first call in a fresh process spends a second or more there on a busy machine), and
    # whatever ran before this test, both are done first, by a model of default timeouts
    # and by this model's own first call, which the same budget lets through.
    warm = make_model(own_emu)
    model = make_model(own_emu, first_token_timeout=0.3)
    own_emu.script(Reply(text=TEXT), Reply(text=TEXT), Reply(text=TEXT, first_delay=3.0))
    assert await (await warm("warm up")).aread() == "".join(TEXT)
    await warm.aclose()
    assert await (await model("fast")).aread() == "".join(TEXT)
    response = await model("hi")  # headers arrive at once; the first token does not
    with anyio.fail_after(2):
        with pytest.raises(streamwrap.StreamTimeoutError) as info:
            await response.aread()
    assert info.value.code == "first_token_timeout"
    assert info.value.partial_text == ""
    assert response.finish_reason == "error"
    assert await idle(own_emu)


async def test_idle_timeout_is_not_reset_by_keepalives(own_emu: Emulator) -> None:
    model = make_model(own_emu, idle_timeout=0.4)
    own_emu.script(Reply(text=TEXT, fault=Fault.stall_with_keepalive_after(2, seconds=5.0, every=0.05)))
    response = await model("hi")
    with anyio.fail_after(3):
        with pytest.raises(streamwrap.StreamTimeoutError) as info:
            await collect_all(response)
    assert info.value.code == "idle_timeout"
    assert info.value.partial_text == "".join(TEXT[:2])
    assert await idle(own_emu)


async def test_slow_but_steady_stream_does_not_time_out(emu: Emulator) -> None:
    model = make_model(emu, idle_timeout=0.5)
    emu.script(Reply(text=TEXT, delay=0.1))
    response = await model("hi")
    assert await response.aread() == "".join(TEXT)


async def collect_all(response: streamwrap.ModelResponse) -> list[str]:
    return [text async for _, text in response.stream]


async def test_break_closes_the_upstream_and_reports_cancelled(own_emu: Emulator) -> None:
    model = make_model(own_emu)
    own_emu.script(Reply(text=TEXT * 50, delay=0.02))
    response = await model("hi")
    async for _, text in response.stream:
        if len(text) > 10:
            break
    assert await idle(own_emu), "the upstream connection was not closed after break"
    await response.await_done()
    assert response.finish_reason == "cancelled"
    assert response.text.startswith("w0 w1")
    assert len(response.text) < len("".join(TEXT * 50))


async def test_cancelling_the_consuming_task_closes_the_upstream(own_emu: Emulator) -> None:
    model = make_model(own_emu)
    own_emu.script(Reply(text=TEXT * 50, delay=0.02))
    response = await model("hi")
    got: list[str] = []

    async def consume() -> None:
        async for _, text in response.stream:
            got.append(text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.sleep(0.15)
        tg.cancel_scope.cancel()
    assert got
    assert await idle(own_emu)
    await response.await_done()
    assert response.finish_reason == "cancelled"


async def test_aclose_and_async_with_close_the_upstream(own_emu: Emulator) -> None:
    model = make_model(own_emu)
    own_emu.script(Reply(text=TEXT * 50, delay=0.02), Reply(text=TEXT * 50, delay=0.02))
    response = await model("hi")
    await response.aclose()
    assert response.done and response.finish_reason == "cancelled"
    assert await idle(own_emu)
    async with await model("hi") as second:
        async for _ in second.stream:
            break
    assert second.finish_reason == "cancelled"
    assert await idle(own_emu)


async def test_dropping_an_unconsumed_response_closes_the_upstream(own_emu: Emulator) -> None:
    model = make_model(own_emu)
    own_emu.script(Reply(text=TEXT * 50, delay=0.02))
    response = await model("hi")
    ch = response._ch
    del response
    gc.collect()
    assert await idle(own_emu)
    assert ch.wait_terminal(2.0) and ch.state == "cancelled"


async def test_cancelling_the_call_itself_closes_the_request(own_emu: Emulator) -> None:
    model = make_model(own_emu)
    own_emu.script(Reply(text=TEXT, first_delay=5.0, status=200))
    with anyio.move_on_after(0.2):
        await model("hi", stream=False)  # non-streaming: waits for the whole body
    assert await idle(own_emu)


async def test_connections_are_reused_across_calls(emu: Emulator, model: Any) -> None:
    before = emu.total_connections
    for _ in range(5):
        response = await model("hi")
        await response.aread()
    assert emu.total_connections - before <= 1


async def test_a_finished_stream_is_not_cancelled_by_break(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT))
    response = await model("hi")
    await response.aread()
    async for _ in response.stream:
        break
    assert response.finish_reason == "stop"
    assert response.text == "".join(TEXT)


async def test_model_aclose_from_either_backend(emu: Emulator, model: Any) -> None:
    # The close runs on the runtime's asyncio loop; a trio caller's context must not make
    # the HTTP library there believe it runs under trio.
    response = await model("hi")
    await response.aread()
    await model.aclose()
    response = await model("hi")  # a closed wrapper makes a new client
    assert await response.aread()
    await model.aclose()
