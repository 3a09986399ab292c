"""``usage_summary()``: tokens and cost of every call made in a block, by provider and model.

AutoGen's ``print_usage_summary``, done right for streams. The block is a context variable
(as :func:`default_output` is): a call belongs to the blocks active where it was made, in
the task or thread that made it, and tasks started inside inherit them; a call made with
``call_sync`` or through the library's own thread is counted in the block of the code that
called. A call is counted once, when its response ends, however it ends (finished,
failed, cancelled, or dropped unread): a stream is counted with the usage its provider had
reported, not at its first chunk. Nested blocks each count it.

Counting is a few integer additions per call under a lock, at the end of the call, on the
library's thread. Pricing is not done there: ``genai-prices`` takes about half a millisecond
a call (and half a second to load its table, the first time), which would stall every other
stream on that thread. A call's price is computed when the summary is next read, on the
reader's thread (once: the response shares it, so ``response.cost`` read first is not
computed again). Until then the summary keeps the call's usage: about a hundred bytes a
call, for a block read only at its end.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from ._channel import Channel, State
from ._cost import Cost, Pricing, format_money, plain_decimal
from ._usage import Usage

__all__ = ["UsageRow", "track", "usage_summary"]

logger = logging.getLogger("streamwrap.usage")

_active: contextvars.ContextVar[tuple[usage_summary, ...]] = contextvars.ContextVar(
    "streamwrap_usage_summary", default=()
)
_COUNTS = (
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """The calls of one provider and model (or of all: :attr:`usage_summary.total`).

    Token counts are sums of what the providers reported, and of the local estimates of
    the ``estimated_calls`` whose provider reported none. ``cost`` sums the calls that
    could be priced (``None`` if none could); ``unpriced_calls`` could not, for the
    ``unpriced_reasons``. ``partial_calls`` ended by a cancel or a failure, with the usage
    reported until then.
    """

    provider: str
    model: str
    calls: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    estimated_calls: int = 0
    unreported_calls: int = 0
    partial_calls: int = 0
    cost: Decimal | None = None
    currency: str = "USD"
    unpriced_calls: int = 0
    unpriced_reasons: tuple[str, ...] = field(default=(), repr=False)

    @property
    def cost_complete(self) -> bool:
        """Every call of the row was priced."""
        return self.unpriced_calls == 0


class _Row:
    """A row being summed (under the summary's lock)."""

    __slots__ = (
        "cost",
        "counts",
        "currency",
        "estimated",
        "partial",
        "provider",
        "reasons",
        "unpriced",
        "unreported",
    )

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.counts = dict.fromkeys(_COUNTS, 0)
        self.estimated = self.unreported = self.partial = self.unpriced = 0
        self.cost: Decimal | None = None
        self.currency = "USD"
        self.reasons: dict[str, None] = {}

    def add_usage(self, usage: Usage, partial: bool) -> None:
        counts = self.counts
        for name in _COUNTS:
            value = getattr(usage, name)
            if value:
                counts[name] += value
        if usage.source == "estimated":
            self.estimated += 1
        elif usage.source != "provider":
            self.unreported += 1
        if partial:
            self.partial += 1

    def add_price(self, result: Cost | str) -> None:
        if isinstance(result, Cost):
            self.cost = result.amount if self.cost is None else self.cost + result.amount
            self.currency = result.currency
        else:
            self.unpriced += 1
            self.reasons[result] = None

    def frozen(self, model: str, calls: int) -> UsageRow:
        return UsageRow(
            self.provider,
            model,
            calls,
            estimated_calls=self.estimated,
            unreported_calls=self.unreported,
            partial_calls=self.partial,
            cost=self.cost,
            currency=self.currency,
            unpriced_calls=self.unpriced,
            unpriced_reasons=tuple(self.reasons),
            **self.counts,
        )


class usage_summary:  # (lower case: used like default_output)
    """Sum the tokens and cost of every model call made inside the block.

        with streamwrap.usage_summary() as summary:
            await agent.run(...)
        print(summary)              # a small table, by provider and model
        summary.total.cost          # Decimal, or None if no call could be priced

    Works with ``with`` and ``async with``, in asyncio, trio and threads; one summary may be
    read while calls are still running (``pending`` counts those not ended yet; they are
    counted when they end, after the block too). Re-entering a summary adds to it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], _Row] = {}
        self._calls: dict[tuple[str, str], int] = {}
        # Calls ended whose price waits for the next reading: (row key, pricing, usage, ...).
        self._unpriced: list[tuple[tuple[str, str], Pricing, Usage, str | None, float, bool]] = []
        self._pending = 0
        self._tokens: list[contextvars.Token[tuple[usage_summary, ...]]] = []

    # -- the block ------------------------------------------------------------------------

    def __enter__(self) -> usage_summary:
        self._tokens.append(_active.set((*_active.get(), self)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _active.reset(self._tokens.pop())

    async def __aenter__(self) -> usage_summary:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()

    # -- counting (the library's thread, at each call's end) ------------------------------

    def _started(self) -> None:
        with self._lock:
            self._pending += 1

    def _ended(
        self,
        ch: Channel,
        model_name: str,
        pricing: Pricing,
        usage: Usage,
        result: Cost | str | None,
        partial: bool,
    ) -> None:
        model = ch.model or model_name
        key = (ch.provider, model)
        with self._lock:
            self._pending -= 1
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = _Row(ch.provider)
            self._calls[key] = self._calls.get(key, 0) + 1
            row.add_usage(usage, partial)
            if result is not None:
                row.add_price(result)
            else:
                self._unpriced.append((key, pricing, usage, ch.model, ch.started_at, partial))

    def _price_waiting(self) -> None:
        """Price the calls that ended since the last reading (on the reader's thread)."""
        with self._lock:
            waiting, self._unpriced = self._unpriced, []
        if not waiting:
            return
        results = [
            (key, pricing.result(usage, model, started, partial=partial))
            for key, pricing, usage, model, started, partial in waiting
        ]
        with self._lock:
            for key, result in results:
                self._rows[key].add_price(result)

    # -- reading --------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Calls made in the block that have not ended yet (they count when they end)."""
        return self._pending

    @property
    def rows(self) -> list[UsageRow]:
        """One row per provider and model, in the order they were first seen."""
        self._price_waiting()
        with self._lock:
            return [row.frozen(key[1], self._calls[key]) for key, row in self._rows.items()]

    @property
    def total(self) -> UsageRow:
        """All the calls: ``provider`` and ``model`` are ``""``."""
        return _sum_rows(self.rows)

    @property
    def cost(self) -> Decimal | None:
        """The total cost of the calls that could be priced (``total.cost``)."""
        return self.total.cost

    def as_dict(self) -> dict[str, Any]:
        rows = self.rows
        return {
            "rows": [_row_dict(r) for r in rows],
            "total": _row_dict(_sum_rows(rows)),
            "pending": self.pending,
        }

    def __repr__(self) -> str:
        total = self.total
        cost = "?" if total.cost is None else format_money(total.cost, total.currency)
        return f"<usage_summary calls={total.calls} tokens={total.total_tokens} cost={cost} pending={self.pending}>"

    def __str__(self) -> str:
        return _table(self.rows, self.pending)


def track(ch: Channel, model_name: str, pricing: Pricing) -> None:
    """Count the call of ``ch`` in the summaries active here, when it ends. Called where the
    call is made (the caller's context), once per call."""
    summaries = _active.get()
    if not summaries:
        return
    for summary in summaries:
        summary._started()

    def ended(state: State) -> None:
        try:
            usage = ch.usage or Usage()
            partial = state != "done"
            result: Cost | str | None = None
            # Priced here only when there is nothing to price (the reason is known without
            # the table); else on reading, on the reader's thread (the module's docstring).
            if pricing.ref.unpriced is not None or usage.source != "provider":
                result = pricing.result(usage, ch.model, ch.started_at, partial=partial)
            for summary in summaries:
                summary._ended(ch, model_name, pricing, usage, result, partial)
        except Exception:  # a summary must never break the stream it counts
            logger.exception("usage_summary: counting a call failed")

    ch.end_hooks.append(ended)


def _sum_rows(rows: list[UsageRow]) -> UsageRow:
    total: dict[str, Any] = dict.fromkeys(
        (*_COUNTS, "calls", "estimated_calls", "unreported_calls", "partial_calls", "unpriced_calls"), 0
    )
    cost: Decimal | None = None
    reasons: dict[str, None] = {}
    for row in rows:
        for name in total:
            total[name] += getattr(row, name)
        if row.cost is not None:
            cost = row.cost if cost is None else cost + row.cost
        reasons.update(dict.fromkeys(row.unpriced_reasons))
    return UsageRow("", "", cost=cost, unpriced_reasons=tuple(reasons), **total)


def _row_dict(row: UsageRow) -> dict[str, Any]:
    data = {f.name: getattr(row, f.name) for f in fields(UsageRow)}
    data["cost"] = None if row.cost is None else plain_decimal(row.cost)
    data["unpriced_reasons"] = list(row.unpriced_reasons)
    return data


def _table(rows: list[UsageRow], pending: int) -> str:
    """The rows as a small text table, then a total line and notes."""
    header = ("provider", "model", "calls", "input", "cached", "output", "reasoning", "cost")
    lines: list[tuple[str, ...]] = [header]
    notes: dict[str, None] = {}
    for row in [*rows, _sum_rows(rows)] if rows else []:
        # "~": some of the row's counts are local estimates.
        mark = "~" if row.estimated_calls else ""
        if row.cost is None:
            cost = "n/a"
        else:
            cost = format_money(row.cost, row.currency) + ("+?" if row.unpriced_calls else "")
        lines.append(
            (
                row.provider or "total",
                row.model,
                str(row.calls),
                f"{mark}{row.input_tokens}",
                str(row.cached_tokens),
                f"{mark}{row.output_tokens}",
                str(row.reasoning_tokens),
                cost,
            )
        )
        if row.provider:
            notes.update(dict.fromkeys(row.unpriced_reasons))
    if not rows:
        return "usage_summary: no calls" + (f" ({pending} still running)" if pending else "")
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for n, line in enumerate(lines):
        if n == len(lines) - 1:
            text.append("  ".join("-" * w for w in widths))
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
    total = _sum_rows(rows)
    if total.estimated_calls:
        text.append(f"~ {total.estimated_calls} call(s) with estimated usage (the provider reported none)")
    if total.partial_calls:
        text.append(
            f"{total.partial_calls} call(s) cancelled or failed: counted with the usage reported before"
        )
    for reason in notes:
        text.append(f"not priced: {reason}")
    if pending:
        text.append(f"{pending} call(s) still running: not counted yet")
    return "\n".join(text)
