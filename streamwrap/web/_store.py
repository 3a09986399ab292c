"""Where resumable replies are kept: :class:`StreamStore`, the interface
:func:`~streamwrap.web.chat_app` writes replies to and reads them back from, and
:class:`MemoryStreamStore`, the store of one process (:class:`~streamwrap.web.RedisStreamStore`,
in :mod:`._redis_store`, shares replies between processes).

A reply is kept as the list of its entries: ``(seq, data, final)``, where ``seq`` counts
0, 1, 2, ... (the ``n`` of the SSE ``id: <response id>:<n>`` line), ``data`` is one UI
message chunk as JSON and ``final`` marks the last one. The store also keeps which reply
is active in a chat, the generator's lease (a reply whose generator stopped renewing it was
lost), and carries stop requests to the generating process.
"""

from __future__ import annotations

import abc
import collections
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import InputError

__all__ = [
    "GeneratorLost",
    "MemoryStreamStore",
    "StoreEntry",
    "StoreUnavailable",
    "StreamStore",
    "check_seconds",
]


@dataclass(frozen=True, slots=True)
class StoreEntry:
    """One UI message chunk of a reply: its ``seq``, its JSON, and whether it ends the reply."""

    seq: int
    data: bytes
    final: bool = False


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis is down): resumption is unavailable for now."""


class GeneratorLost(Exception):
    """The reply's generator stopped renewing its lease before the reply ended: the process
    was killed, or lost the store."""


#: Called with the id of a reply whose stop was requested (see :meth:`StreamStore.listen`).
StopHandler = Callable[[str], None]


def check_seconds(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InputError(f"{name} must be a number of seconds > 0; got {value!r}")
    return float(value)


class StreamStore(abc.ABC):
    """Keeps replies so that a client can resume them, any number of readers can follow
    them, and a stop request reaches the process that generates them.

    :func:`~streamwrap.web.chat_app` is the only caller: pass it an instance. Two
    implementations: :class:`MemoryStreamStore` (one process) and
    :class:`~streamwrap.web.RedisStreamStore` (any number of processes and machines).

    ``ttl``: how long a reply stays readable after it ended (or after its generator was
    lost), in seconds. ``lease``: how long a generator may go without renewing its lease
    before readers are told it was lost (it renews it every third of that).
    """

    def __init__(self, *, ttl: float, lease: float) -> None:
        self.ttl = check_seconds("ttl", ttl)
        self.lease = check_seconds("lease", lease)

    # -- the generating side ----------------------------------------------------------------

    @abc.abstractmethod
    async def start(self, chat_id: str, response_id: str) -> None:
        """A reply begins: it becomes the chat's active one, and its lease is taken."""

    @abc.abstractmethod
    async def append(self, response_id: str, entries: list[StoreEntry]) -> bool:
        """Add entries (in ``seq`` order, after those already added). False when the reply
        is no longer in the store (the store lost its data): the caller stops writing it."""

    @abc.abstractmethod
    async def renew(self, response_id: str) -> bool:
        """Renew the generator's lease; True when a stop was requested for the reply."""

    @abc.abstractmethod
    async def end(self, chat_id: str, response_id: str) -> None:
        """The reply ended (its final entry was appended): it is no longer the chat's
        active reply, and expires after ``ttl``."""

    @abc.abstractmethod
    async def listen(self, handler: StopHandler) -> None:
        """Call ``handler(response_id)`` for each stop request, until cancelled."""

    # -- the reading side -------------------------------------------------------------------

    @abc.abstractmethod
    async def active(self, chat_id: str) -> str | None:
        """The id of the chat's reply in progress, if any."""

    @abc.abstractmethod
    async def chat_of(self, response_id: str) -> str | None:
        """The chat of a reply still in the store, else None."""

    @abc.abstractmethod
    def read(self, response_id: str, after: int) -> AsyncIterator[StoreEntry | None]:
        """The reply's entries with a ``seq`` above ``after``, then those that follow as
        they come, until the final one. ``None`` is yielded now and then while nothing
        comes (the reader's chance to send a heartbeat). Raises :class:`GeneratorLost` when
        the generator's lease runs out first, :class:`StoreUnavailable` when the store
        cannot be reached. Entries the store lost or trimmed are not there: the caller
        checks that the ``seq`` numbers follow on."""

    @abc.abstractmethod
    async def request_stop(self, response_id: str) -> None:
        """Ask the reply's generator, wherever it runs, to stop it."""

    async def aclose(self) -> None:  # noqa: B027 (a store with nothing to close need not override it)
        """Release the store's connections."""


@dataclass
class _Reply:
    chat_id: str
    entries: list[StoreEntry] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)
    ended: bool = False
    stop_requested: bool = False


class MemoryStreamStore(StreamStore):
    """The store of one process: replies in memory, nothing to install. Readers in the
    same process resume, fan out and stop replies; for several worker processes use
    :class:`~streamwrap.web.RedisStreamStore`.

    ``ttl`` (default 300 s): how long an ended reply can still be read, by a client that
    reconnects with its ``Last-Event-ID``. (No lease here: a generator cannot die without
    its readers.)
    """

    def __init__(self, *, ttl: float = 300.0) -> None:
        super().__init__(ttl=ttl, lease=3600.0)
        self._replies: dict[str, _Reply] = {}
        self._chats: dict[str, str] = {}
        self._handlers: list[StopHandler] = []
        # Ended replies in the order they expire (one ttl for all): expiring is O(1) a reply.
        self._ended: collections.deque[tuple[float, str]] = collections.deque()

    def _expire(self) -> None:
        now = anyio.current_time()
        while self._ended and self._ended[0][0] <= now:
            self._replies.pop(self._ended.popleft()[1], None)

    async def start(self, chat_id: str, response_id: str) -> None:
        self._expire()
        self._replies[response_id] = _Reply(chat_id)
        self._chats[chat_id] = response_id

    async def append(self, response_id: str, entries: list[StoreEntry]) -> bool:
        reply = self._replies.get(response_id)
        if reply is None:
            return False
        reply.entries.extend(entries)
        reply.changed.set()
        reply.changed = anyio.Event()
        return True

    async def renew(self, response_id: str) -> bool:
        reply = self._replies.get(response_id)
        return reply is not None and reply.stop_requested

    async def end(self, chat_id: str, response_id: str) -> None:
        reply = self._replies.get(response_id)
        if reply is not None and not reply.ended:
            reply.ended = True
            self._ended.append((anyio.current_time() + self.ttl, response_id))
            reply.changed.set()
        if self._chats.get(chat_id) == response_id:
            del self._chats[chat_id]

    async def listen(self, handler: StopHandler) -> None:
        self._handlers.append(handler)
        try:
            await anyio.sleep_forever()
        finally:
            self._handlers.remove(handler)

    async def active(self, chat_id: str) -> str | None:
        return self._chats.get(chat_id)

    async def chat_of(self, response_id: str) -> str | None:
        self._expire()
        reply = self._replies.get(response_id)
        return None if reply is None else reply.chat_id

    async def read(self, response_id: str, after: int) -> AsyncIterator[StoreEntry | None]:
        reply = self._replies.get(response_id)
        if reply is None:
            return
        # seq n is entries[n]: the entries of one process are never trimmed.
        position = after + 1
        while True:
            while position < len(reply.entries):
                entry = reply.entries[position]
                position += 1
                yield entry
                if entry.final:
                    return
            if reply.ended:
                return
            changed = reply.changed
            with anyio.move_on_after(1.0):
                await changed.wait()
            if not changed.is_set():
                yield None

    async def request_stop(self, response_id: str) -> None:
        reply = self._replies.get(response_id)
        if reply is not None:
            reply.stop_requested = True
        for handler in list(self._handlers):
            handler(response_id)
