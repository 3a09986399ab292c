"""A fixed genai-prices table for the cost tests: deterministic and offline.

genai-prices' bundled data changes with each release (that is its point), so the tests do
not assert its figures. They install this snapshot instead, through genai-prices' own hook
for a custom table (``data_snapshot.set_custom_snapshot``, what its ``UpdatePrices`` uses),
and take it away afterwards: round prices per million tokens, the same for every provider,
so each expected amount can be worked out by hand.

    input $1 · cached input $0.10 · cache write $1.25 · output $4 · reasoning $8

The tests never start ``UpdatePrices`` (and streamwrap never does): nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

genai_prices = pytest.importorskip(
    "genai_prices", reason='genai-prices is not installed (pip install "streamwrap[cost]")'
)
from genai_prices import data_snapshot  # noqa: E402
from genai_prices.types import (  # noqa: E402
    ClauseEquals,
    ClauseOr,
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    Tier,
    TieredPrices,
)

INPUT = Decimal("1")
CACHED = Decimal("0.10")
CACHE_WRITE = Decimal("1.25")
OUTPUT = Decimal("4")
REASONING = Decimal("8")
PER_MTOK = Decimal(1_000_000)

# The models of tests/support/providers.py, as each provider reports them, and the emulator's
# default (emulator-1).
MODELS = (
    "emulator-1",
    "gpt-5",
    "glm-4.7",
    "gpt-4o-mini",
    "gemini-2.5-flash",
    "claude-sonnet-4-5",
    "us.anthropic.claude-sonnet-4-20250514-v1:0",
)
# Priced by the table's ids, as the wrappers name them (price_provider_id).
PROVIDER_IDS = ("openai", "azure", "zhipuai", "google", "anthropic", "aws")
# A model without a reasoning price: its reasoning tokens are output tokens.
NO_REASONING_PRICE = "plain-1"
# A model whose input price doubles for every input token once the input passes 1000.
TIERED = "tiered-1"
# A model whose prices changed at the start of 2001: $1 before, $2 since (input and output).
CHANGED = "changed-1"
# An OpenAI-compatible provider found by its API URL (the emulator's, in the tests).
URL_PROVIDER = "compatible"


def _standard() -> ModelPrice:
    return ModelPrice(
        input_mtok=INPUT,
        cache_read_mtok=CACHED,
        cache_write_mtok=CACHE_WRITE,
        output_mtok=OUTPUT,
        output_reasoning_mtok=REASONING,
    )


def _models() -> list[ModelInfo]:
    return [
        ModelInfo(
            id="standard", match=ClauseOr(or_=[ClauseEquals(equals=m) for m in MODELS]), prices=_standard()
        ),
        ModelInfo(
            id=NO_REASONING_PRICE,
            match=ClauseEquals(equals=NO_REASONING_PRICE),
            prices=ModelPrice(input_mtok=INPUT, output_mtok=OUTPUT),
        ),
        ModelInfo(
            id=TIERED,
            match=ClauseEquals(equals=TIERED),
            prices=ModelPrice(
                input_mtok=TieredPrices(base=INPUT, tiers=[Tier(start=1000, price=Decimal(2))]),
                output_mtok=OUTPUT,
            ),
        ),
        ModelInfo(
            id=CHANGED,
            match=ClauseEquals(equals=CHANGED),
            prices=[
                ConditionalPrice(prices=ModelPrice(input_mtok=Decimal(1), output_mtok=Decimal(1))),
                ConditionalPrice(
                    constraint=StartDateConstraint(start_date=datetime(2001, 1, 1, tzinfo=UTC).date()),
                    prices=ModelPrice(input_mtok=Decimal(2), output_mtok=Decimal(2)),
                ),
            ],
        ),
    ]


def snapshot(url_pattern: str = r"http://127\.0\.0\.1:\d+/compatible") -> data_snapshot.DataSnapshot:
    """The fixed table: each of :data:`PROVIDER_IDS`, and :data:`URL_PROVIDER`, found by
    ``url_pattern``, with the same models and prices."""
    providers = [
        Provider(id=pid, name=pid, api_pattern=rf"https://{pid}\.invalid", models=_models())
        for pid in PROVIDER_IDS
    ]
    providers.append(Provider(id=URL_PROVIDER, name=URL_PROVIDER, api_pattern=url_pattern, models=_models()))
    return data_snapshot.DataSnapshot(providers=providers, from_auto_update=False)


@pytest.fixture
def fixed_prices() -> Iterator[data_snapshot.DataSnapshot]:
    """Price with :func:`snapshot` for the test's duration."""
    table = snapshot()
    data_snapshot.set_custom_snapshot(table)
    try:
        yield table
    finally:
        data_snapshot.set_custom_snapshot(None)


def usd(*terms: tuple[int, Decimal]) -> Decimal:
    """The sum of ``tokens x price per million`` terms, as the table computes it."""
    return sum((Decimal(tokens) * price / PER_MTOK for tokens, price in terms), Decimal(0))
