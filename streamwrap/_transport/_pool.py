"""Connection pools that close idle connections off the request path.

httpcore (httpx's transport; httpcore2 under httpx2, which openai 3 uses) cleans its pool
inside the request that happens to look at it: ``handle_async_request`` collects the idle
connections whose keep-alive has expired (or that the server has closed) and awaits
``_close_connections()`` on them, one ``connection.aclose()`` after another, before it sends
its own request (and a response that ends does the same before its ``aclose()`` returns).
Each close waits for a turn of the event loop (the socket close yields once), and on a loop
that is busy streaming 200 replies a turn is a large fraction of a second: the request that
found 50 expired connections waited 7.4 s for its first chunk while every other reply got
theirs within seconds (httpcore2 2.16.2; 2.17.0 still closes them one by one).

So the pools of the clients streamwrap builds hand that work to a background task, which
closes them concurrently; the request goes out at once. Closing the pool itself (the
wrapper's ``aclose()``, the runtime's shutdown) still waits for every close, so no socket
outlives its client. The pools also allow 1000 connections (openai's default; plain
httpx allows 100, so a 101st concurrent stream would wait for one to end).

This replaces a private method, ``_close_connections``, of each pool instance (and wraps
the instance's ``aclose``), not of the class: pools of other clients in the process, and a
client a caller hands in, are left alone. It finds the pools through private attributes of
httpx's client and transport too. If a release renames any of them, the pools fall back to
the library's own behaviour, and ``tests/transport/test_pool.py`` fails on purpose, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

__all__ = ["background_pools", "close_idle_in_background", "pool_limits"]

#: connections a client may open (its concurrent streams), as openai's own default
MAX_CONNECTIONS = 1000
#: idle connections a client keeps for reuse
MAX_KEEPALIVE_CONNECTIONS = 100

# The private names this module relies on (httpx's client and transport, httpcore's pool).
_TRANSPORT, _MOUNTS, _POOL, _CLOSE = "_transport", "_mounts", "_pool", "_close_connections"


def pool_limits(httpx: Any) -> Any:
    """The ``Limits`` (of the ``httpx`` module given: httpx or httpx2) of streamwrap's pools."""
    return httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS)


def close_idle_in_background(client: Any) -> Any:
    """Make the connection pools of ``client`` (an ``httpx``/``httpx2`` ``AsyncClient``:
    its transport's, and those of its proxy mounts) close removed connections in the
    background; returns ``client``. A transport without such a pool is left as it is."""
    for pool in _pools(client):
        if not isinstance(getattr(pool, _CLOSE, None), _BackgroundCloser):
            closer = _BackgroundCloser(pool)
            setattr(pool, _CLOSE, closer)
            pool.aclose = closer.aclose_pool
    return client


def background_pools(client: Any) -> int:
    """How many of ``client``'s pools close connections in the background (for the tests)."""
    return sum(isinstance(getattr(pool, _CLOSE, None), _BackgroundCloser) for pool in _pools(client))


def _pools(client: Any) -> Iterator[Any]:
    transports = [getattr(client, _TRANSPORT, None), *(getattr(client, _MOUNTS, None) or {}).values()]
    for transport in transports:
        pool = getattr(transport, _POOL, None)
        if pool is not None and callable(getattr(pool, _CLOSE, None)):
            yield pool


class _BackgroundCloser:
    """Stands in for one pool's ``_close_connections(closing)``."""

    def __init__(self, pool: Any) -> None:
        self._serial = getattr(pool, _CLOSE)  # the library's own: one close after another
        self._pool_aclose = pool.aclose
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool_closing = False

    async def __call__(self, closing: list[Any]) -> None:
        if not closing:
            return
        if self._pool_closing:
            await self._serial(closing)  # (shielded from cancellation there)
            return
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on asyncio (the runtime's loop always is): as the library does
            await self._serial(closing)
            return
        # No await before the request is sent: nothing here yields to the busy loop.
        task = loop.create_task(_close_all(closing))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose_pool(self) -> None:
        """The pool's ``aclose()``: its own, then waits for the closes still under way."""
        import asyncio

        self._pool_closing = True
        try:
            await self._pool_aclose()
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)


async def _close_all(closing: list[Any]) -> None:
    import asyncio

    # Concurrently: each close waits for a turn of the loop, and they need not wait in line.
    # A close that fails leaves a connection that is gone anyway; nobody awaits this task.
    await asyncio.gather(*(connection.aclose() for connection in closing), return_exceptions=True)
