"""What a call cost in currency, priced by ``genai-prices`` (pydantic's maintained price table).

streamwrap keeps no prices of its own: they change, and a table copied into this repository
would be wrong within weeks. ``genai-prices`` (the ``cost`` extra) has them, with their
history (a call is priced at the prices of the moment it was made) and, if the application
starts its ``UpdatePrices``, updates fetched at run time; streamwrap never fetches anything
itself. The price is computed once, when somebody asks (``response.cost``) or when a
:func:`usage_summary <streamwrap.usage_summary>` block counts the call at its end: never
per chunk. Importing the table takes about half a second, so nothing here imports it before
a cost is wanted (:func:`warm_up` does it ahead of time for the CLI and ``serve``).

A cost is never guessed: usage that was only estimated, a provider or model that the table
does not know, or no usage at all give no :class:`Cost`, but a reason.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from ._url_redaction import redact_urls
from ._usage import Usage

__all__ = [
    "Cost",
    "CostItem",
    "CostKind",
    "PriceRef",
    "Pricing",
    "format_money",
    "plain_decimal",
    "price",
    "warm_up",
]

CostKind = Literal["input", "cached_input", "cache_write", "output", "reasoning", "other"]

_SOURCE = "genai-prices"
_CURRENCY = "USD"  # genai-prices' prices are all in US dollars
_PER_MTOK = 1_000_000
_INSTALL = 'genai-prices is not installed (pip install "streamwrap[cost]")'
_LABELS: dict[str, str] = {
    "input": "input",
    "cached_input": "cached input",
    "cache_write": "cache write",
    "output": "output",
    "reasoning": "reasoning",
    "other": "other",
}


@dataclass(frozen=True, slots=True)
class CostItem:
    """One line of how a cost was computed: ``tokens`` at ``price_per_mtok`` (US dollars per
    million tokens, the tier that applied) make ``amount``.

    ``input`` is the uncached input; ``cached_input`` (read from the prompt cache) and
    ``cache_write`` are priced apart when the model has prices for them, else they are part
    of ``input``; likewise ``reasoning`` and ``output``. ``other`` is what the table charges
    for that is not a token count (a per-request fee): no tokens, no rate.
    """

    kind: CostKind
    tokens: int | None
    price_per_mtok: Decimal | None
    amount: Decimal

    def __str__(self) -> str:
        label = _LABELS[self.kind]
        if self.tokens is None or self.price_per_mtok is None:
            return f"{label} {format_money(self.amount)}"
        return f"{label} {self.tokens} x {format_money(self.price_per_mtok)}/MTok"


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of one call (or, summed, of several): ``amount`` in ``currency``.

    ``items`` say how it was computed, and add up to ``amount``. ``model`` and
    ``price_provider`` are the table's ids the call was priced as (``gpt-4o-mini`` for a
    response from ``gpt-4o-mini-2024-07-18``), ``source`` and ``version`` the table's name
    and version; ``prices_updated_at`` is when the application's ``UpdatePrices`` fetched the
    prices used, ``None`` for the data bundled with that version. ``priced_at``: the moment
    whose prices applied (when the call was made). ``partial``: the response was cancelled
    or failed, and this is the price of the usage reported before it ended (the provider
    may bill more).
    """

    amount: Decimal
    currency: str
    items: tuple[CostItem, ...]
    model: str
    price_provider: str
    source: str
    version: str
    prices_updated_at: datetime | None
    priced_at: datetime
    partial: bool = False

    def __str__(self) -> str:
        how = " + ".join(str(item) for item in self.items if item.amount or item.tokens)
        partial = ", partial" if self.partial else ""
        return (
            f"{format_money(self.amount, self.currency)}"
            + (f" = {how}" if how else "")
            + f" ({self.model} at {self.price_provider}, {self.source} {self.version}{partial})"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; amounts as decimal strings (``"0.000435"``, never an exponent), which
        keep every digit of the ``Decimal``."""
        return {
            "amount": _plain(self.amount),
            "currency": self.currency,
            "items": [
                {
                    "kind": item.kind,
                    "tokens": item.tokens,
                    "price_per_mtok": None if item.price_per_mtok is None else _plain(item.price_per_mtok),
                    "amount": _plain(item.amount),
                }
                for item in self.items
            ],
            "model": self.model,
            "price_provider": self.price_provider,
            "source": self.source,
            "version": self.version,
            "prices_updated_at": None
            if self.prices_updated_at is None
            else self.prices_updated_at.isoformat(),
            "priced_at": self.priced_at.isoformat(),
            "partial": self.partial,
        }


def plain_decimal(amount: Decimal) -> str:
    """``"0.000435"``: every significant digit, no exponent, no trailing zeros."""
    return f"{amount.normalize():f}" if amount else "0"


_plain = plain_decimal


def format_money(amount: Decimal, currency: str = _CURRENCY) -> str:
    """``$0.000435``: every significant digit (a call costs fractions of a cent), no exponent."""
    text = plain_decimal(amount)
    return f"${text}" if currency == _CURRENCY else f"{text} {currency}"


@dataclass(frozen=True, slots=True)
class PriceRef:
    """Where a wrapper's calls find their prices: a provider id of the table, or the API
    URL the table matches against its providers' (an OpenAI-compatible server: DeepSeek,
    Groq, ...), or neither, and ``unpriced`` says why."""

    provider_id: str | None = None
    api_url: str | None = None
    unpriced: str | None = None


class Pricing:
    """The price of one call, computed at most once, when first wanted after its end.

    Held by the response and by the :func:`usage_summary` hooks, never holding either:
    the values it prices are passed in.
    """

    __slots__ = ("_lock", "_result", "model_name", "ref")

    def __init__(self, ref: PriceRef, model_name: str) -> None:
        self.ref = ref
        self.model_name = model_name
        self._result: Cost | str | None = None
        self._lock = threading.Lock()

    def result(
        self, usage: Usage, reported_model: str | None, started_at: float, *, partial: bool
    ) -> Cost | str:
        """The cost, or why there is none. ``started_at``: the call's ``time.monotonic()``."""
        result = self._result
        if result is None:
            with self._lock:  # (two sinks asking at once compute it once)
                result = self._result
                if result is None:
                    # The moment the call was made, on the wall clock: its prices apply.
                    wall = time.time() - (time.monotonic() - started_at)
                    when = datetime.fromtimestamp(wall, tz=UTC)
                    models = [m for m in (reported_model, self.model_name) if m]
                    result = self._result = price(usage, models, self.ref, when, partial=partial)
        return result


def price(
    usage: Usage, models: Sequence[str], ref: PriceRef, when: datetime, *, partial: bool = False
) -> Cost | str:
    """Price ``usage`` of the first of ``models`` that the table knows, at the prices of
    ``when``; or say why it cannot be priced."""
    if ref.unpriced is not None:
        return ref.unpriced
    if usage.source == "estimated":
        return (
            "usage is only estimated (the provider reported none, streamwrap counted about 4 "
            "characters a token): an estimate is not priced"
        )
    if usage.source != "provider" or (usage.input_tokens is None and usage.output_tokens is None):
        return "no usage was reported"
    if importlib.util.find_spec("genai_prices") is None:
        return _INSTALL
    import genai_prices
    from genai_prices import data_snapshot

    version = str(genai_prices.__version__)
    snapshot = data_snapshot.get_snapshot()
    if ref.api_url is not None:
        try:
            snapshot.find_provider(None, None, ref.api_url)
        except LookupError:
            return (
                f"no provider in {_SOURCE} {version} serves {redact_urls(ref.api_url)}: if it sells a "
                "known provider's models, name that provider with the config key 'price_provider'"
            )
    try:
        table_usage = _table_usage(genai_prices.Usage, usage)
    except ValueError as exc:
        return f"{_SOURCE} cannot price this usage: {exc}"
    errors: list[str] = []
    for model in dict.fromkeys(models):
        try:
            if ref.api_url is not None:
                calc = genai_prices.calc_price(
                    table_usage, model, provider_api_url=ref.api_url, genai_request_timestamp=when
                )
            else:
                calc = genai_prices.calc_price(
                    table_usage, model, provider_id=ref.provider_id, genai_request_timestamp=when
                )
        except LookupError as exc:
            errors.append(str(exc))
            continue
        except ValueError as exc:  # usage the table's units cannot take (cached > input, say)
            return f"{_SOURCE} cannot price this usage: {exc}"
        return Cost(
            amount=calc.total_price,
            currency=_CURRENCY,
            items=_items(calc, usage),
            model=calc.model.id,
            price_provider=calc.provider.id,
            source=_SOURCE,
            version=version,
            prices_updated_at=calc.auto_update_timestamp,
            priced_at=when,
            partial=partial,
        )
    where = ref.provider_id or redact_urls(ref.api_url or "")
    return f"not in {_SOURCE} {version} ({where}): " + "; ".join(errors)


def _table_usage(usage_class: Any, usage: Usage) -> Any:
    # streamwrap's counts nest as the table's units do: cached and cache-write tokens are
    # part of the input, reasoning tokens part of the output (each wire mapper makes it so).
    counts = {
        "input_tokens": usage.input_tokens,
        "cache_read_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "output_tokens": usage.output_tokens,
        "output_reasoning_tokens": usage.reasoning_tokens,
    }
    return usage_class(**{k: v for k, v in counts.items() if v})


def _items(calc: Any, usage: Usage) -> tuple[CostItem, ...]:
    """How ``calc.total_price`` was made, line by line, from the model's prices.

    The total is the table's own; these lines explain it with the same rules (a count the
    model has no price for is part of its parent's; a tier applies to all tokens once the
    input crosses its threshold), computed with the table's own unit-price function. What
    they do not explain (a per-request fee) is the ``other`` line.
    """
    from genai_prices.types import calc_unit_price

    prices = calc.model_price
    total_input = usage.input_tokens or 0

    def rate(key: str) -> Decimal | None:
        value = getattr(prices, key, None)
        if value is None:
            return None
        # The rate of the tier that applies: the price of one million tokens at it.
        return Decimal(calc_unit_price(value, _PER_MTOK, total_input, _PER_MTOK))

    items: list[CostItem] = []

    def line(kind: CostKind, tokens: int, per_mtok: Decimal | None) -> None:
        if tokens and per_mtok is not None:
            items.append(CostItem(kind, tokens, per_mtok, per_mtok * tokens / _PER_MTOK))

    cached, written = usage.cached_tokens or 0, usage.cache_write_tokens or 0
    cached_rate, written_rate = rate("cache_read_mtok"), rate("cache_write_mtok")
    uncached = (
        total_input
        - (cached if cached_rate is not None else 0)
        - (written if written_rate is not None else 0)
    )
    line("input", uncached, rate("input_mtok"))
    line("cached_input", cached, cached_rate)
    line("cache_write", written, written_rate)
    reasoning, reasoning_rate = usage.reasoning_tokens or 0, rate("output_reasoning_mtok")
    line(
        "output",
        (usage.output_tokens or 0) - (reasoning if reasoning_rate is not None else 0),
        rate("output_mtok"),
    )
    line("reasoning", reasoning, reasoning_rate)
    rest = calc.total_price - sum((item.amount for item in items), Decimal(0))
    if rest:
        items.append(CostItem("other", None, None, rest))
    return tuple(items)


_warm = False


def warm_up() -> None:
    """Load the price table now (about half a second), if installed: so that the first
    response's cost does not wait for it."""
    global _warm
    if importlib.util.find_spec("genai_prices") is not None:
        from genai_prices import data_snapshot

        data_snapshot.get_snapshot()
    _warm = True


def warmed() -> bool:
    """Whether :func:`warm_up` has run (then it has nothing left to do)."""
    return _warm
