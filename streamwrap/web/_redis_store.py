"""The stream store on Redis (:class:`RedisStreamStore`): replies shared by any number of
worker processes and machines, through redis-py's asyncio client.

Keys, all under the store's ``prefix`` (another deployment with another prefix can neither
read nor stop these replies):

* ``<prefix>:reply:<response id>``: the reply, a Redis stream. Each entry is one UI message
  chunk, ``s`` (its seq), ``d`` (its JSON), ``f`` (``1`` on the final one), under the
  entry id ``0-<seq + 1>``: the ids are the seq numbers, so "after seq n" is an ``XREAD``
  from ``0-<n + 1>``, and Redis itself refuses an entry appended twice. ``MAXLEN ~`` bounds
  a long reply's memory (a reader that falls behind the bound is told so, see
  :mod:`._resumable`).
* ``<prefix>:chat:<chat id>``: the chat's active reply; ``<prefix>:owner:<response id>``: the
  reply's chat (a resume names a chat; a reply of another chat is not served).
* ``<prefix>:lease:<response id>``: set by the generator every ``lease / 3`` seconds, with
  an expiry of ``lease``; readers that wait on a reply without a lease report it lost.
* ``<prefix>:stop:<response id>``, and a message on the channel ``<prefix>:stops``: a stop
  request. The channel reaches the generator at once; the key is its fallback, read with
  each renewal of the lease (a pub/sub message to a worker that is reconnecting is lost).

Every key expires: those of a reply ``ttl`` after it ended, or ``ttl + lease`` after its
generator last renewed its lease (a killed generator leaves nothing behind for long).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import InputError, MissingDependencyError

from ._store import GeneratorLost, StopHandler, StoreEntry, StoreUnavailable, StreamStore

try:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError, ResponseError
except ImportError as exc:  # pragma: no cover - exercised with redis missing
    raise MissingDependencyError("redis", "redis") from exc

__all__ = ["RedisStreamStore"]

logger = logging.getLogger("streamwrap.web")

_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Removes the chat's index only if it still names this reply (a newer one may have replaced it).
_END_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
return 0
"""


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(fields: dict[Any, Any]) -> StoreEntry:
    # (bytes keys and values, or str ones from a client made with decode_responses=True)
    if b"s" not in fields:
        fields = {k.encode(): v.encode() for k, v in fields.items()}
    return StoreEntry(int(fields[b"s"]), fields[b"d"], fields.get(b"f") == b"1")


class RedisStreamStore(StreamStore):
    """Replies on Redis, shared by every worker that uses the same Redis and ``prefix``.

    ``redis``: a ``redis://`` or ``rediss://`` URL, or a ``redis.asyncio.Redis`` client of
    your own (closed by you, not by the store). ``prefix``: the namespace of every key and
    channel (default ``"streamwrap"``); deployments sharing one Redis need different ones.
    ``ttl`` (default 300 s): how long a reply stays readable after it ended. ``lease``
    (default 10 s): how soon readers learn that a reply's generator died. ``maxlen``
    (default 100,000): the most chunks kept of one reply (approximately, ``MAXLEN ~``).

    Needs ``pip install "streamwrap[redis]"`` (redis-py >= 5). Works under asyncio.
    """

    def __init__(
        self,
        redis: str | Any,
        *,
        prefix: str = "streamwrap",
        ttl: float = 300.0,
        lease: float = 10.0,
        maxlen: int = 100_000,
    ) -> None:
        super().__init__(ttl=ttl, lease=lease)
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise InputError(f"prefix must be 1-64 characters of A-Z a-z 0-9 _ . : -; got {prefix!r}")
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 100:
            raise InputError(f"maxlen must be an integer >= 100; got {maxlen!r}")
        self.prefix = prefix
        self.maxlen = maxlen
        # redis-py types each command for its sync and async clients at once (a value or an
        # awaitable): the client is held untyped rather than cast at every call.
        self._redis: Any
        if isinstance(redis, str):
            if not redis.startswith(("redis://", "rediss://")):
                raise InputError(f"the Redis URL must start with redis:// or rediss://; got {redis!r}")
            self._redis = aioredis.from_url(redis, socket_connect_timeout=2.0)
            self._owns_client = True
        elif isinstance(redis, aioredis.Redis):
            self._redis = redis
            self._owns_client = False
        else:
            raise InputError(
                f"redis must be a redis:// URL or a redis.asyncio.Redis client; got {type(redis).__name__}"
            )
        self._ms = int(self.lease * 1000)
        self._keep_ms = int((self.ttl + self.lease) * 1000)
        self._down = False

    # -- keys ---------------------------------------------------------------------------------

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    @property
    def _channel(self) -> str:
        return f"{self.prefix}:stops"

    def _failed(self, exc: BaseException) -> StoreUnavailable:
        if not self._down:
            self._down = True
            logger.warning("the Redis stream store is unreachable (%s): replies are not resumable", exc)
        return StoreUnavailable(f"the stream store (Redis) is unreachable: {exc}")

    def _ok(self) -> None:
        if self._down:
            self._down = False
            logger.warning("the Redis stream store is reachable again")

    # -- the generating side ----------------------------------------------------------------

    async def start(self, chat_id: str, response_id: str) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._key("owner", response_id), chat_id, px=self._keep_ms)
                pipe.set(self._key("chat", chat_id), response_id, px=self._keep_ms)
                pipe.set(self._key("lease", response_id), b"1", px=self._ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        self._ok()

    async def append(self, response_id: str, entries: list[StoreEntry]) -> bool:
        key = self._key("reply", response_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    fields: dict[str, bytes | int] = {"s": entry.seq, "d": entry.data}
                    if entry.final:
                        fields["f"] = b"1"
                    # The first entry creates the stream; later ones must find it (a Redis that
                    # restarted without it would otherwise get a reply without its beginning).
                    pipe.xadd(
                        key,
                        fields,
                        id=f"0-{entry.seq + 1}",
                        maxlen=self.maxlen,
                        approximate=True,
                        nomkstream=entry.seq != 0,
                    )
                if entries[0].seq == 0:
                    pipe.pexpire(key, self._keep_ms)
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        self._ok()
        # None: NOMKSTREAM found no stream; an error: an id at or below the stream's last.
        return not any(r is None or isinstance(r, ResponseError) for r in results[: len(entries)])

    async def renew(self, response_id: str) -> bool:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._key("lease", response_id), b"1", px=self._ms)
                pipe.pexpire(self._key("reply", response_id), self._keep_ms)
                pipe.pexpire(self._key("owner", response_id), self._keep_ms)
                pipe.exists(self._key("stop", response_id))
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        self._ok()
        return bool(results[-1])

    async def end(self, chat_id: str, response_id: str) -> None:
        ttl_ms = int(self.ttl * 1000)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.pexpire(self._key("reply", response_id), ttl_ms)
                pipe.pexpire(self._key("owner", response_id), ttl_ms)
                pipe.delete(self._key("lease", response_id), self._key("stop", response_id))
                pipe.eval(_END_SCRIPT, 1, self._key("chat", chat_id), response_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc

    async def listen(self, handler: StopHandler) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    while True:
                        message = await pubsub.get_message(timeout=None)
                        if message is not None and message.get("type") == "message":
                            handler(_str(message["data"]))
            except (RedisError, OSError) as exc:
                # Stops then still arrive through the stop key, with each renewal.
                self._failed(exc)
                await anyio.sleep(1.0)

    # -- the reading side -------------------------------------------------------------------

    async def active(self, chat_id: str) -> str | None:
        try:
            value = await self._redis.get(self._key("chat", chat_id))
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        self._ok()
        return None if value is None else _str(value)

    async def chat_of(self, response_id: str) -> str | None:
        try:
            value = await self._redis.get(self._key("owner", response_id))
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        self._ok()
        return None if value is None else _str(value)

    async def read(self, response_id: str, after: int) -> AsyncIterator[StoreEntry | None]:
        key = self._key("reply", response_id)
        lease = self._key("lease", response_id)
        last = f"0-{after + 1}"
        # Wake up at least twice per lease: to see a lost generator in time, and to let the
        # reader send heartbeats.
        block = max(50, min(self._ms // 2, 5000))
        quiet = False
        while True:
            try:
                got = await self._redis.xread({key: last}, count=1000, block=None if quiet else block)
                if not got:
                    if not quiet and await self._redis.exists(lease):
                        yield None
                        continue
                    if quiet:
                        # No lease, and nothing came in after it went: ended, or lost.
                        tail = await self._redis.xrevrange(key, count=1)
                        if tail and _entry(tail[0][1]).final:
                            return  # (the final entry was read before, by this reader's client)
                        raise GeneratorLost(f"the generator of {response_id} stopped without ending it")
                    quiet = True  # one more look without blocking, for entries added meanwhile
                    continue
            except (RedisError, OSError) as exc:
                raise self._failed(exc) from exc
            quiet = False
            for entry_id, fields in got[0][1]:
                last = _str(entry_id)
                entry = _entry(fields)
                yield entry
                if entry.final:
                    return

    async def request_stop(self, response_id: str) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._key("stop", response_id), b"1", px=self._keep_ms)
                pipe.publish(self._channel, response_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc

    async def aclose(self) -> None:
        if self._owns_client:
            await self._redis.aclose()
