"""An open provider response as the producer consumes it: body bytes → decoder → wire
mapper → batches of deltas, one batch per network read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from .._delta import Delta
from .._errors import StreamInterruptedError, StreamwrapError
from .._secret import Secret, redact_error

__all__ = ["BodyMapper", "BodyUpstream", "RedactingUpstream", "StaticUpstream", "Upstream"]


class Upstream(Protocol):
    """An open provider response: iterate for batches of deltas, then ``aclose()``.

    Iteration raises a :class:`StreamError` for a broken stream, and yields only batches
    that hold content or state (keep-alives are swallowed), so that the idle timeout sees
    real progress only.
    """

    def __aiter__(self) -> AsyncIterator[list[Delta]]: ...

    async def aclose(self) -> None: ...


class BodyMapper(Protocol):
    """What :class:`BodyUpstream` needs of a mapper: ``feed``, ``end`` and a held ``error``,
    as :class:`~streamwrap._transport._wire_mapper.WireMapper` (the base class of every
    provider's mapper) documents them."""

    @property
    def error(self) -> StreamwrapError | None: ...

    def feed(self, chunk: bytes) -> list[Delta]:
        """Decode one network read; return the deltas it completed."""
        ...

    def end(self) -> list[Delta]:
        """End of body: return the last deltas, or raise if the stream was cut short."""
        ...


class BodyUpstream:
    """Reads an HTTP response body (its network reads, as httpx's ``aiter_raw``/``aiter_bytes`` give them) through a mapper."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        mapper: BodyMapper,
        close: Callable[[], Awaitable[Any]],
        provider: str,
    ) -> None:
        self._chunks = chunks
        self._mapper = mapper
        self._close = close
        self._provider = provider

    async def __aiter__(self) -> AsyncIterator[list[Delta]]:
        mapper = self._mapper
        try:
            async for chunk in self._chunks:
                batch = mapper.feed(chunk)
                if batch:
                    yield batch
                if mapper.error is not None:
                    raise mapper.error
        except StreamwrapError:
            raise
        except Exception as exc:
            # Whatever the HTTP library raised mid-body (reset, incomplete chunked read,
            # read timeout), the caller sees one type, with the partial text attached.
            raise StreamInterruptedError(
                f"connection lost mid-stream ({type(exc).__name__}: {exc})", provider=self._provider
            ) from exc
        batch = mapper.end()
        if batch:
            yield batch

    async def aclose(self) -> None:
        # A mapper error leaves the HTTP library's byte iterator suspended mid-body (`async
        # for` does not close what it iterates). Close it here, in order, on this loop:
        # left to the garbage collector, the chain of nested async generators under it is
        # finalized piecemeal, at any time and in any thread, and fails ("async generator
        # already executing").
        close_chunks = getattr(self._chunks, "aclose", None)
        if close_chunks is not None:
            await close_chunks()
        await self._close()


class StaticUpstream:
    """A response that is already complete (non-streaming calls): one batch."""

    def __init__(self, batch: list[Delta]) -> None:
        self._batch = batch

    async def __aiter__(self) -> AsyncIterator[list[Delta]]:
        if self._batch:
            yield self._batch

    async def aclose(self) -> None:
        return None


class RedactingUpstream:
    """An open response whose errors pass through :func:`redact_error` on their way out.

    Wraps the upstream that decodes the body, so that a stream error's traceback starts
    here, above the decoder frames that hold the body's bytes.
    """

    __slots__ = ("_secret", "_upstream")

    def __init__(self, upstream: Upstream, secret: Secret | None) -> None:
        self._upstream = upstream
        self._secret = secret

    async def __aiter__(self) -> AsyncIterator[list[Delta]]:
        error: StreamwrapError | None = None
        try:
            async for batch in self._upstream:
                yield batch
        except StreamwrapError as exc:
            error = exc
        if error is not None:
            # Raised outside the handler, so that the decoder's frames are not kept as
            # this error's context either.
            raise redact_error(error, self._secret)

    async def aclose(self) -> None:
        await self._upstream.aclose()
