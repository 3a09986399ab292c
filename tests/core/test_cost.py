"""``response.cost``: each provider's usage, through its real wire format from the emulator,
priced by genai-prices at a fixed table (tests/support/prices.py); what has no price says
why; a cancelled or failed stream is priced from the usage reported before its end."""

from __future__ import annotations

import re
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

import streamwrap
from streamwrap import Cost, CostItem, EndEvent, Usage
from streamwrap._cost import PriceRef, price
from streamwrap._registry import _BUILTIN, builtin_wrapper
from streamwrap.testing import Emulator, Fault, Reply
from tests.support.prices import (
    CACHE_WRITE,
    CACHED,
    CHANGED,
    INPUT,
    NO_REASONING_PRICE,
    OUTPUT,
    REASONING,
    TIERED,
    URL_PROVIDER,
    fixed_prices,
    snapshot,
    usd,
)
from tests.support.providers import PROVIDERS, Provider, make_model

__all__ = ["fixed_prices"]  # (a fixture: pytest finds it by this import)

# One reading of 1000 tokens in (200 of them from the cache), 500 out (100 of them
# reasoning), as each wire format reports it.
_OPENAI_CHAT = {
    "prompt_tokens": 1000,
    "completion_tokens": 500,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 200},
    "completion_tokens_details": {"reasoning_tokens": 100},
}
_GEMINI_USAGE = {
    "promptTokenCount": 1000,
    "candidatesTokenCount": 400,
    "thoughtsTokenCount": 100,
    "cachedContentTokenCount": 200,
    "totalTokenCount": 1500,
}
_CACHED_AND_REASONING = usd((800, INPUT), (200, CACHED), (400, OUTPUT), (100, REASONING))
USAGE_SHAPES: dict[str, tuple[dict[str, Any], Decimal]] = {
    "openai_chat": (_OPENAI_CHAT, _CACHED_AND_REASONING),
    "zhipuai_chat": (_OPENAI_CHAT, _CACHED_AND_REASONING),
    "azure_openai_chat": (_OPENAI_CHAT, _CACHED_AND_REASONING),
    "litellm_chat": (_OPENAI_CHAT, _CACHED_AND_REASONING),
    "openai_responses": (
        {
            "input_tokens": 1000,
            "output_tokens": 500,
            "total_tokens": 1500,
            "input_tokens_details": {"cached_tokens": 200},
            "output_tokens_details": {"reasoning_tokens": 100},
        },
        _CACHED_AND_REASONING,
    ),
    # Gemini counts thoughts apart from the answer: streamwrap's output holds both.
    "gemini_chat": (_GEMINI_USAGE, _CACHED_AND_REASONING),
    # Vertex AI reports as the Gemini API does.
    "vertex_gemini_chat": (_GEMINI_USAGE, _CACHED_AND_REASONING),
    # Anthropic counts the uncached input apart from the cache's reads and writes.
    "anthropic_chat": (
        {
            "input_tokens": 600,
            "cache_read_input_tokens": 200,
            "cache_creation_input_tokens": 200,
            "output_tokens": 500,
        },
        usd((600, INPUT), (200, CACHED), (200, CACHE_WRITE), (500, OUTPUT)),
    ),
    # Bedrock's Converse counts as Anthropic does, in its own names.
    "bedrock_chat": (
        {
            "inputTokens": 600,
            "cacheReadInputTokens": 200,
            "cacheWriteInputTokens": 200,
            "outputTokens": 500,
            "totalTokens": 1500,
        },
        usd((600, INPUT), (200, CACHED), (200, CACHE_WRITE), (500, OUTPUT)),
    ),
}
PRICED = [PROVIDERS[t].param() for t in USAGE_SHAPES]
UNPRICED = [PROVIDERS[t].param() for t in ("dashscope_chat", "ollama_chat")]


def _price_provider(emu: Emulator, row: Provider) -> str:
    """The genai-prices id the row's wrapper declares (the tests point it at the emulator,
    whose URL no table knows, so the test names it, as a user behind a proxy would)."""
    declared = type(make_model(emu, row)).price_provider_id
    assert declared is not None, f"{row.model_type} declares no price_provider_id"
    return declared


@pytest.mark.parametrize("row", PRICED)
def test_each_providers_usage_is_priced(emu: Emulator, fixed_prices: Any, row: Provider) -> None:
    raw, expected = USAGE_SHAPES[row.model_type]
    model = make_model(emu, row, price_provider=_price_provider(emu, row))
    # (stream_usage: GLM reports usage unasked, and streamwrap does not ask it)
    emu.script(Reply(text="priced words", usage=raw, stream_usage=True))
    response = model.call_sync("hello")
    assert response.text == "priced words"
    cost = response.cost
    assert cost is not None, response.cost_unavailable_reason
    assert cost.amount == expected
    assert cost.currency == "USD" and cost.partial is False
    assert sum((item.amount for item in cost.items), Decimal(0)) == cost.amount
    assert response.cost_unavailable_reason is None


@pytest.mark.parametrize("row", UNPRICED)
def test_a_provider_without_prices_says_so(emu: Emulator, fixed_prices: Any, row: Provider) -> None:
    model = make_model(emu, row)
    emu.script(Reply(text="free?", usage=(10, 5)))
    response = model.call_sync("hello")
    assert response.usage.source == "provider"
    assert response.cost is None
    reason = response.cost_unavailable_reason or ""
    # Ollama's is pointed at the emulator: no provider of the table serves that URL.
    assert f"no prices for {model.provider}" in reason or "no provider in genai-prices" in reason, reason
    assert "'price_provider'" in reason


def test_the_breakdown_names_each_kind_of_token(emu: Emulator, fixed_prices: Any) -> None:
    emu.script(Reply(text="x", usage=_OPENAI_CHAT))
    cost = make_model(emu, price_provider="openai").call_sync("hello").cost
    assert cost is not None
    assert cost.items == (
        CostItem("input", 800, INPUT, usd((800, INPUT))),
        CostItem("cached_input", 200, CACHED, usd((200, CACHED))),
        CostItem("output", 400, OUTPUT, usd((400, OUTPUT))),
        CostItem("reasoning", 100, REASONING, usd((100, REASONING))),
    )
    assert (cost.model, cost.price_provider, cost.source) == ("standard", "openai", "genai-prices")
    import genai_prices

    assert cost.version == genai_prices.__version__ and cost.prices_updated_at is None
    assert str(cost) == (
        "$0.00322 = input 800 x $1/MTok + cached input 200 x $0.1/MTok + output 400 x $4/MTok"
        f" + reasoning 100 x $8/MTok (standard at openai, genai-prices {genai_prices.__version__})"
    )
    assert "Decimal('0.00322')" in repr(cost)
    as_dict = cost.as_dict()
    assert as_dict["amount"] == "0.00322" and as_dict["items"][1]["kind"] == "cached_input"


def test_reasoning_without_a_price_of_its_own_is_output(emu: Emulator, fixed_prices: Any) -> None:
    emu.script(Reply(text="x", usage=_OPENAI_CHAT, model=NO_REASONING_PRICE))
    cost = make_model(emu, price_provider="openai").call_sync("hello").cost
    assert cost is not None
    # No cache price either: the cached tokens are input at the input price.
    assert cost.items == (
        CostItem("input", 1000, INPUT, usd((1000, INPUT))),
        CostItem("output", 500, OUTPUT, usd((500, OUTPUT))),
    )


def test_a_tier_applies_to_all_input_once_the_input_passes_it(emu: Emulator, fixed_prices: Any) -> None:
    emu.script(Reply(text="x", usage=(1500, 10), model=TIERED))
    cost = make_model(emu, price_provider="openai").call_sync("hello").cost
    assert cost is not None
    assert cost.items[0] == CostItem("input", 1500, Decimal(2), usd((1500, Decimal(2))))
    assert cost.amount == usd((1500, Decimal(2)), (10, OUTPUT))


def test_a_call_is_priced_at_the_prices_of_its_time(emu: Emulator, fixed_prices: Any) -> None:
    emu.script(Reply(text="x", usage=(1000, 1000), model=CHANGED))
    cost = make_model(emu, price_provider="openai").call_sync("hello").cost
    assert cost is not None
    assert cost.amount == usd((2000, Decimal(2)))  # the prices since 2001
    assert abs((datetime.now(UTC) - cost.priced_at).total_seconds()) < 3600
    # The same usage in 2000 had the old prices: the table's history, by the call's time.
    usage = Usage.reported(1000, 1000)
    then = price(usage, [CHANGED], PriceRef(provider_id="openai"), datetime(2000, 6, 1, tzinfo=UTC))
    assert isinstance(then, Cost) and then.amount == usd((2000, Decimal(1)))


def test_an_openai_compatible_server_is_found_by_its_url(emu: Emulator) -> None:
    from genai_prices import data_snapshot

    data_snapshot.set_custom_snapshot(snapshot(url_pattern=re.escape(emu.openai_base_url)))
    try:
        emu.script(Reply(text="x", usage=(1000, 0)))
        cost = make_model(emu).call_sync("hello").cost  # no price_provider: the base_url tells
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert cost is not None and cost.price_provider == URL_PROVIDER
    assert cost.amount == usd((1000, INPUT))


def test_an_unknown_model_has_no_cost(emu: Emulator, fixed_prices: Any) -> None:
    emu.script(Reply(text="x", usage=(10, 5), model="no-such-model"))
    response = make_model(emu, model_name="nor-this-one", price_provider="openai").call_sync("hello")
    assert response.cost is None
    reason = response.cost_unavailable_reason or ""
    # Both the model that answered and the one asked for were looked up.
    assert "no-such-model" in reason and "nor-this-one" in reason, reason


def test_an_unknown_provider_has_no_cost(emu: Emulator, fixed_prices: Any) -> None:
    emu.script(Reply(text="x", usage=(10, 5)))
    response = make_model(emu, price_provider="no-such-provider").call_sync("hello")
    assert response.cost is None
    assert "no-such-provider" in (response.cost_unavailable_reason or "")


def test_estimated_usage_is_not_priced(emu: Emulator, fixed_prices: Any) -> None:
    emu.script(Reply(text="no usage from this server", stream_usage=False))
    response = make_model(emu, price_provider="openai").call_sync("hello")
    assert response.usage.source == "estimated"
    assert response.cost is None
    assert "estimated" in (response.cost_unavailable_reason or "")


def test_without_genai_prices_the_reason_says_how_to_install_it(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # (find_spec: not installed)
    emu.script(Reply(text="x", usage=(10, 5)))
    response = make_model(emu, price_provider="openai").call_sync("hello")
    assert response.cost is None
    assert 'pip install "streamwrap[cost]"' in (response.cost_unavailable_reason or "")


def test_a_cancelled_stream_is_priced_from_the_usage_reported_before(
    emu: Emulator, fixed_prices: Any
) -> None:
    raw, _ = USAGE_SHAPES["anthropic_chat"]
    model = make_model(emu, "anthropic_chat", price_provider="anthropic")
    # Anthropic reports the input (and an early output count of 1) as the stream starts.
    emu.script(Reply(text=["one ", "two ", "three"], usage=raw, fault=Fault.stall_after(1, 30)))
    response = model.call_sync("hello")
    for _ in response.stream_sync():
        break
    response.close()
    assert response.finish_reason == "cancelled"
    cost = response.cost
    assert cost is not None, response.cost_unavailable_reason
    assert cost.partial is True
    assert cost.amount == usd((600, INPUT), (200, CACHED), (200, CACHE_WRITE), (1, OUTPUT))
    assert "partial" in str(cost)


def test_a_failed_stream_is_priced_from_the_usage_reported_before(emu: Emulator, fixed_prices: Any) -> None:
    raw, _ = USAGE_SHAPES["anthropic_chat"]
    model = make_model(emu, "anthropic_chat", price_provider="anthropic")
    emu.script(Reply(text=["one ", "two ", "three"], usage=raw, fault=Fault.drop_after(1)))
    response = model.call_sync("hello")
    with pytest.raises(streamwrap.StreamError):
        _ = response.text
    cost = response.cost
    assert cost is not None, response.cost_unavailable_reason
    assert cost.partial is True
    assert cost.amount == usd((600, INPUT), (200, CACHED), (200, CACHE_WRITE), (1, OUTPUT))


def test_a_failed_stream_without_reported_usage_has_no_cost(emu: Emulator, fixed_prices: Any) -> None:
    # OpenAI reports usage in the last chunk only: a stream cut before has an estimate.
    emu.script(Reply(text=["one ", "two ", "three"], fault=Fault.drop_after(1)))
    response = make_model(emu, price_provider="openai").call_sync("hello")
    with pytest.raises(streamwrap.StreamError):
        _ = response.text
    assert response.usage.source == "estimated"
    assert response.cost is None and "estimated" in (response.cost_unavailable_reason or "")


def test_the_cost_is_computed_once_when_asked_not_per_chunk(
    emu: Emulator, fixed_prices: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamwrap._cost as cost_module

    calls: list[object] = []
    real = cost_module.price

    def counting(*args: Any, **kwargs: Any) -> Cost | str:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(cost_module, "price", counting)
    ends: list[EndEvent] = []
    ended = threading.Event()

    def record(event: Any) -> None:
        if isinstance(event, EndEvent):
            ends.append(event)
            ended.set()

    model = make_model(emu, price_provider="openai", response_callback=record)
    emu.script(Reply(text=[f"w{i} " for i in range(50)], usage=(10, 50)))
    response = model.call_sync("hello")
    assert len(list(response.stream_sync())) == 51
    response.wait()
    assert calls == []  # nobody asked
    first = response.cost
    assert first is not None and response.cost is first
    assert response.cost_unavailable_reason is None
    # The sinks' end event gives the same, without pricing again.
    assert ended.wait(10)
    assert ends[-1].cost is first
    assert len(calls) == 1


def test_nothing_is_fetched(emu: Emulator, fixed_prices: Any) -> None:
    emu.script(Reply(text="x", usage=(10, 5)))
    assert make_model(emu, price_provider="openai").call_sync("hello").cost is not None
    assert not [t for t in threading.enumerate() if t.name.startswith("genai_prices")]


def test_every_declared_price_provider_is_in_the_bundled_table() -> None:
    from genai_prices.data import providers
    from genai_prices.data_snapshot import find_provider_by_id

    declared = {}
    for model_type in _BUILTIN:
        wrapper = builtin_wrapper(_BUILTIN[model_type].partition(":")[2])
        if wrapper is not None and wrapper.price_provider_id is not None:
            declared[model_type] = wrapper.price_provider_id
    assert declared  # (a test that finds nothing to check would pass for nothing)
    for model_type, pid in declared.items():
        # LiteLLM is no provider of the table: genai-prices reads the provider from the
        # model name ("openai/gpt-4o-mini").
        if pid != "litellm":
            assert find_provider_by_id(providers, pid) is not None, (model_type, pid)


def test_the_bundled_table_gives_genai_prices_own_figure(emu: Emulator) -> None:
    import genai_prices

    emu.script(Reply(text="x", usage=_OPENAI_CHAT, model="gpt-4o-mini-2024-07-18"))
    response = make_model(emu, model_name="gpt-4o-mini", price_provider="openai").call_sync("hello")
    cost = response.cost
    assert cost is not None, response.cost_unavailable_reason
    table = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=1000, cache_read_tokens=200, output_tokens=500, output_reasoning_tokens=100
        ),
        "gpt-4o-mini-2024-07-18",
        provider_id="openai",
        genai_request_timestamp=cost.priced_at,
    )
    assert cost.amount == table.total_price and cost.model == table.model.id
    assert sum((item.amount for item in cost.items), Decimal(0)) == cost.amount


@pytest.mark.parametrize(
    ("config", "loaded"),
    [
        ({"model_type": "openai_chat", "model_name": "gpt-4o-mini", "api_key": "sk-x"}, True),
        # A base_url is looked up in the table: it may be a provider's.
        ({"model_type": "openai_chat", "model_name": "m", "base_url": "http://127.0.0.1:9/v1"}, True),
        # A provider the table has no prices for: nothing to load.
        ({"model_type": "dashscope_chat", "model_name": "qwen-max", "api_key": "sk-x"}, False),
    ],
    ids=["priced", "by-url", "unpriced"],
)
def test_prepare_loads_the_price_table_only_where_a_cost_may_follow(
    config: dict[str, Any], loaded: bool
) -> None:
    import json
    import subprocess

    code = (
        "import json, sys, streamwrap\n"
        f"model = streamwrap.load_model(json.loads({json.dumps(json.dumps(config))}))\n"
        "before = 'genai_prices.data' in sys.modules\n"
        "model.prepare()\n"
        "print(json.dumps([before, 'genai_prices.data' in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, loaded]


@pytest.mark.parametrize(
    ("base_url", "model", "provider_id"),
    [
        ("https://api.deepseek.com/v1", "deepseek-chat", "deepseek"),
        ("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile", "groq"),
        ("https://openrouter.ai/api/v1", "openai/gpt-4o-mini", "openrouter"),
    ],
)
def test_openai_compatible_providers_are_priced_by_their_base_url(
    base_url: str, model: str, provider_id: str
) -> None:
    # The bundled table, as openai_chat pointed at each one sees it: the wrapper's price
    # source is the base_url (no price_provider), and the figure is genai-prices' own.
    import genai_prices

    ref = streamwrap.load_model(
        {"model_type": "openai_chat", "model_name": model, "base_url": base_url, "api_key": "sk-x"}
    )._prices()
    assert ref == PriceRef(api_url=base_url)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    cost = price(Usage.reported(1000, 100), [model], ref, when)
    assert isinstance(cost, Cost), cost
    table = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, output_tokens=100),
        model,
        provider_api_url=base_url,
        genai_request_timestamp=when,
    )
    assert (cost.price_provider, cost.amount) == (provider_id, table.total_price)
