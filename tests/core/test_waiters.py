"""Wake-ups from another thread into an asyncio loop (:func:`streamwrap._waiters.async_waiter`):
every waiter is woken once, in the order of the wake-ups, and those that come while the
loop is busy share one ``call_soon_threadsafe``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from streamwrap._waiters import async_waiter, fire


def test_wakeups_from_another_thread_share_one_callback_and_keep_their_order() -> None:
    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        calls = 0
        threadsafe = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any) -> Any:
            nonlocal calls
            calls += 1
            return threadsafe(callback, *args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        pairs = [async_waiter() for _ in range(300)]
        woken: list[int] = []

        async def waiter(i: int) -> None:
            await pairs[i][1]()
            woken.append(i)

        tasks = [asyncio.create_task(waiter(i)) for i in range(len(pairs))]
        await asyncio.sleep(0)  # every waiter is waiting
        # All the wake-ups come while this loop is blocked (joining the thread).
        thread = threading.Thread(target=fire, args=([wake for wake, _ in pairs],))
        thread.start()
        thread.join()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        # A second round, after the first callback ran, schedules a callback of its own.
        wake, wait = async_waiter()
        threading.Thread(target=wake).start()
        await asyncio.wait_for(wait(), 10)
        return woken, calls

    woken, calls = asyncio.run(main())
    assert woken == list(range(300))
    assert calls == 2


def test_a_wakeup_for_a_closed_loop_is_skipped() -> None:
    async def make() -> Any:
        return async_waiter()[0]

    wake = asyncio.run(make())
    fire([wake])  # the loop has closed: nothing to wake, and no error
    fire([wake])
