"""``streamwrap.usage_summary()``: every call of a block counted once, when it ends, by
provider and model; scoped by a context variable across tasks, threads and ``call_sync``;
nested blocks each count; printable."""

from __future__ import annotations

import contextvars
import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import anyio
import pytest

import streamwrap
from streamwrap import UsageRow, usage_summary
from streamwrap._cost import format_money
from streamwrap.testing import Emulator, Fault, Reply
from tests.support.prices import INPUT, OUTPUT, fixed_prices, usd
from tests.support.providers import make_model

__all__ = ["fixed_prices"]  # (a fixture: pytest finds it by this import)

pytestmark = pytest.mark.anyio

# Each call: 10 tokens in, 5 out.
ONE_CALL = usd((10, INPUT), (5, OUTPUT))


def _reply(**kwargs: Any) -> Reply:
    return Reply(text=["a ", "b ", "c"], usage=(10, 5), **kwargs)


async def test_a_block_sums_its_calls_by_provider_and_model(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    emu.script(_reply(), _reply(), _reply(model="gpt-4o-mini"))
    with usage_summary() as summary:
        for _ in range(3):
            response = await model("hi")
            await response.aread()
    rows = summary.rows
    assert [(r.provider, r.model, r.calls) for r in rows] == [
        ("openai", "emulator-1", 2),
        ("openai", "gpt-4o-mini", 1),
    ]
    assert (rows[0].input_tokens, rows[0].output_tokens, rows[0].total_tokens) == (20, 10, 30)
    assert rows[0].cost == 2 * ONE_CALL and rows[0].cost_complete
    total = summary.total
    assert (total.calls, total.input_tokens, total.output_tokens) == (3, 30, 15)
    assert total.cost == summary.cost == 3 * ONE_CALL
    assert summary.pending == 0


async def test_outside_the_block_nothing_is_counted(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    emu.script(_reply(), _reply())
    with usage_summary() as summary:
        pass
    await (await model("before")).aread()
    with usage_summary() as other:
        await (await model("inside")).aread()
    assert summary.rows == [] and str(summary) == "usage_summary: no calls"
    assert other.total.calls == 1


async def test_nested_blocks_both_count(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    emu.script(_reply(), _reply())
    with usage_summary() as outer:
        await (await model("outer")).aread()
        async with usage_summary() as inner:
            await (await model("inner")).aread()
    assert outer.total.calls == 2 and inner.total.calls == 1
    assert outer.cost == 2 * ONE_CALL and inner.cost == ONE_CALL


async def test_a_stream_counts_once_when_it_ends(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    emu.script(_reply(fault=Fault.stall_after(1, 30)))
    with usage_summary() as summary:
        response = await model("hi")
        async for _ in response.stream:
            # Mid-stream: counted nowhere yet, pending.
            assert summary.pending == 1 and summary.rows == []
            break
    await response.aclose()
    assert summary.pending == 0
    (row,) = summary.rows
    assert row.calls == 1 and row.partial_calls == 1
    # OpenAI reports usage at the end only: the cancelled call's usage is an estimate.
    assert row.estimated_calls == 1 and row.cost is None and row.unpriced_calls == 1
    assert "estimated" in row.unpriced_reasons[0]
    assert summary.rows == [row]  # reading again counts nothing twice


async def test_failed_and_cancelled_calls_count_with_their_reported_usage(
    emu: Emulator, fixed_prices: Any
) -> None:
    # Anthropic reports the input as the stream starts: it is there after a cut.
    model = make_model(emu, "anthropic_chat", price_provider="anthropic")
    usage = {"input_tokens": 10, "output_tokens": 5}
    emu.script(
        Reply(text=["a ", "b ", "c"], usage=usage, fault=Fault.drop_after(1)),
        Reply(text=["a ", "b ", "c"], usage=usage, fault=Fault.stall_after(1, 30)),
        Reply(text=["a ", "b ", "c"], usage=usage),
    )
    with usage_summary() as summary:
        failed = await model("one")
        with pytest.raises(streamwrap.StreamError):
            await failed.aread()
        cancelled = await model("two")
        async for _ in cancelled.stream:
            break
        await cancelled.aclose()
        await (await model("three")).aread()
    (row,) = summary.rows
    assert (row.calls, row.partial_calls, row.estimated_calls) == (3, 2, 0)
    # The cut calls' output is Anthropic's early count (1); the whole one's is 5.
    assert (row.input_tokens, row.output_tokens) == (30, 1 + 1 + 5)
    assert row.cost == usd((30, INPUT), (7, OUTPUT))


async def test_a_dropped_response_counts_when_it_is_collected(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    emu.script(_reply(fault=Fault.stall_after(1, 30)))
    with usage_summary() as summary:
        response = await model("hi")
        assert summary.pending == 1
        del response
        gc.collect()
        while summary.pending:
            await anyio.sleep(0.01)
    assert summary.total.calls == 1 and summary.total.partial_calls == 1


async def test_100_concurrent_tasks_all_count(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    emu.default = _reply()

    async def call(i: int) -> None:
        response = await model(f"task {i}")
        async for _ in response.stream:
            pass

    with usage_summary() as summary:
        async with anyio.create_task_group() as group:
            for i in range(100):
                group.start_soon(call, i)
    total = summary.total
    assert (total.calls, total.input_tokens, total.output_tokens) == (100, 1000, 500)
    assert total.cost == 100 * ONE_CALL
    assert summary.pending == 0


async def test_concurrent_blocks_in_tasks_count_only_their_own(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    emu.default = _reply()
    summaries: dict[int, usage_summary] = {}

    async def worker(n: int) -> None:
        with usage_summary() as summary:
            summaries[n] = summary
            for _ in range(n):
                await (await model("hi")).aread()
                await anyio.sleep(0)  # let the other blocks' calls interleave

    async with anyio.create_task_group() as group:
        for n in (3, 5, 7):
            group.start_soon(worker, n)
    assert {n: s.total.calls for n, s in summaries.items()} == {3: 3, 5: 5, 7: 7}


def test_call_sync_from_threads_counts_in_the_block_it_was_called_from(
    emu: Emulator, fixed_prices: Any
) -> None:
    model = make_model(emu, price_provider="openai")
    emu.default = _reply()

    def call() -> None:
        model.call_sync("hi").wait()

    with usage_summary() as summary, ThreadPoolExecutor(8) as pool:
        # A pool's threads do not inherit the context: the caller carries it, as
        # asyncio.to_thread and anyio.to_thread do.
        futures = [pool.submit(contextvars.copy_context().run, call) for _ in range(40)]
        for future in futures:
            future.result()
    assert summary.total.calls == 40 and summary.cost == 40 * ONE_CALL


def test_blocks_in_concurrent_threads_count_only_their_own(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    emu.default = _reply()
    counted: dict[int, int] = {}
    start = threading.Barrier(4)

    def worker(n: int) -> None:
        with usage_summary() as summary:
            start.wait()
            for _ in range(n):
                response = model.call_sync("hi")
                for _ in response.stream_sync():
                    pass
        counted[n] = summary.total.calls

    threads = [threading.Thread(target=worker, args=(n,)) for n in (2, 4, 6, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted == {2: 2, 4: 4, 6: 6, 8: 8}


def test_one_summary_shared_by_threads_loses_nothing(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    emu.default = _reply()
    with usage_summary() as summary:
        context = contextvars.copy_context()

        def worker() -> None:
            for _ in range(25):
                context.copy().run(lambda: model.call_sync("hi").wait())

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert summary.total.calls == 100 and summary.total.input_tokens == 1000


def test_calls_are_priced_on_reading_not_on_the_io_thread(
    emu: Emulator, fixed_prices: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # genai-prices takes about half a millisecond a call: on streamwrap's own thread that
    # would stall every other stream. The summary prices on the thread that reads it.
    import streamwrap._cost as cost_module
    from streamwrap._runtime import runtime

    threads: list[bool] = []
    real = cost_module.price

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(runtime.in_runtime_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(cost_module, "price", recording)
    model = make_model(emu, price_provider="openai")
    emu.script(_reply(), _reply())
    with usage_summary() as summary:
        model.call_sync("hi").wait()
        read_first = model.call_sync("hi")
        assert read_first.cost is not None  # priced here, and not again by the summary
    assert len(summary._unpriced) == 2 and threads == [False]
    assert summary.cost == 2 * ONE_CALL and summary._unpriced == []
    assert threads == [False, False]


def test_the_summary_prints_as_a_table(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    unpriced = make_model(emu, "dashscope_chat")
    emu.script(_reply(), _reply(), Reply(text="qwen says", usage=(7, 3)), _reply(stream_usage=False))
    with usage_summary() as summary:
        for m in (model, model, unpriced, model):
            m.call_sync("hi").wait()
    text = str(summary)
    lines = text.splitlines()
    assert lines[0].split() == [
        "provider",
        "model",
        "calls",
        "input",
        "cached",
        "output",
        "reasoning",
        "cost",
    ]
    assert lines[1].split() == [
        "openai",
        "emulator-1",
        "3",
        "~21",
        "0",
        "~12",
        "0",
        f"{format_money(2 * ONE_CALL)}+?",
    ]
    assert lines[2].split() == ["dashscope", "qwen-max", "1", "7", "0", "3", "0", "n/a"]
    assert set(lines[3]) <= {"-", " "}
    assert lines[4].split() == ["total", "4", "~28", "0", "~15", "0", f"{format_money(2 * ONE_CALL)}+?"]
    assert "~ 1 call(s) with estimated usage" in text
    assert "not priced: usage is only estimated" in text
    assert "not priced: no provider in genai-prices" in text  # (DashScope at the emulator)
    assert repr(summary) == f"<usage_summary calls=4 tokens=43 cost={format_money(2 * ONE_CALL)} pending=0>"
    data = summary.as_dict()
    assert Decimal(data["total"]["cost"]) == 2 * ONE_CALL and len(data["rows"]) == 2


def test_rows_are_values(emu: Emulator, fixed_prices: Any) -> None:
    model = make_model(emu, price_provider="openai")
    emu.script(_reply())
    with usage_summary() as summary:
        model.call_sync("hi").wait()
    (row,) = summary.rows
    assert row == UsageRow(
        "openai", "emulator-1", 1, input_tokens=10, output_tokens=5, total_tokens=15, cost=Decimal(ONE_CALL)
    )
    with pytest.raises(AttributeError):
        row.calls = 2  # type: ignore[misc]
