"""The HTTP client's own spans nest under the call's, and the GenAI client metrics."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor

from streamwrap.testing import Emulator, Fault, Reply
from tests.support import providers

from .conftest import Telemetry

pytestmark = pytest.mark.anyio

TEXT = [f"w{i} " for i in range(8)]
make_model = partial(providers.make_model, model_name="m")


@pytest.fixture
def httpx_instrumented(otel: Telemetry) -> Iterator[None]:
    # httpx, and httpx2 (the openai SDK's from its version 3 on): one instrumentation each.
    instrumentors = [HTTPXClientInstrumentor(), HTTPX2ClientInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=otel.tracer_provider)
    yield
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


@pytest.mark.parametrize("model_type", ["openai_chat", "anthropic_chat"])
async def test_the_http_request_is_a_child_of_the_call(
    emu: Emulator, otel: Telemetry, httpx_instrumented: None, model_type: str
) -> None:
    # openai_chat sends through the openai SDK's client (httpx2 under openai 3, httpx
    # before), anthropic_chat through streamwrap's own httpx client.
    model = providers.make_model(emu, model_type)
    emu.script(Reply(text=TEXT))
    with trace.get_tracer("app").start_as_current_span("app") as app:
        await (await model("hi")).aread()
    chat = otel.one_chat_span()
    http = [s for s in otel.spans.get_finished_spans() if s.name == "POST"]
    assert len(http) == 1, [s.name for s in otel.spans.get_finished_spans()]
    assert http[0].parent is not None and http[0].parent.span_id == chat.context.span_id
    assert chat.parent is not None and chat.parent.span_id == app.get_span_context().span_id
    assert http[0].context.trace_id == app.get_span_context().trace_id


async def test_retries_are_child_spans_of_the_call_with_httpx(
    emu: Emulator, otel: Telemetry, httpx_instrumented: None
) -> None:
    model = make_model(emu, max_retries=1)
    emu.script(Reply(status=503, headers={"Retry-After": "0"}), Reply(text="ok"))
    await (await model("hi")).aread()
    chat = otel.one_chat_span()
    http = [s for s in otel.spans.get_finished_spans() if s.name == "POST"]
    assert len(http) == 2
    assert all(s.parent is not None and s.parent.span_id == chat.context.span_id for s in http)


async def test_the_client_metrics(emu: Emulator, otel: Telemetry) -> None:
    model = make_model(emu)
    # A pause after four chunks: the stream arrives in two network reads at least, however
    # busy the machine (a per-chunk gap needs two).
    stream = Reply(text=TEXT, usage=(11, 8), model="emulator-7", fault=Fault.stall_after(4, 0.3))
    emu.script(stream, Reply(status=500))
    response = await model("hi")
    await response.aread()
    with pytest.raises(Exception):  # noqa: B017 (any error: the metric is what is checked)
        await model("again")
    found = otel.metrics()
    assert otel.metric_units() == {
        "gen_ai.client.operation.duration": "s",
        "gen_ai.client.token.usage": "{token}",
        "gen_ai.client.operation.time_to_first_chunk": "s",
        "gen_ai.client.operation.time_per_output_chunk": "s",
    }
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "m",
        "server.address": "127.0.0.1",
        "server.port": int(emu.url.rsplit(":", 1)[1]),
    }
    ok = {**common, "gen_ai.response.model": "emulator-7"}
    durations = {frozenset(p.attributes.items()): p for p in found["gen_ai.client.operation.duration"]}
    assert set(durations) == {
        frozenset(ok.items()),
        frozenset({**common, "error.type": "streamwrap.ServerError"}.items()),
    }
    assert durations[frozenset(ok.items())].sum >= response.duration  # from the call, not the send
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in found["gen_ai.client.token.usage"]}
    assert tokens == {"input": 11, "output": 8}
    (ttfc,) = found["gen_ai.client.operation.time_to_first_chunk"]
    assert dict(ttfc.attributes) == ok and ttfc.sum == pytest.approx(response.time_to_first_token)
    (per_chunk,) = found["gen_ai.client.operation.time_per_output_chunk"]
    # One gap per network read with content after the first one (reads may carry several
    # chunks: never more gaps than chunks).
    assert 1 <= per_chunk.count <= response.chunk_count - 1
    assert per_chunk.sum <= response.duration - response.time_to_first_token
    # The conventions' bucket advice.
    assert list(durations[frozenset(ok.items())].explicit_bounds)[:3] == [0.01, 0.02, 0.04]
    assert list(found["gen_ai.client.token.usage"][0].explicit_bounds)[:3] == [1, 4, 16]


async def test_a_non_streaming_call_records_no_chunk_metrics(emu: Emulator, otel: Telemetry) -> None:
    model = make_model(emu, stream=False)
    emu.script(Reply(text=TEXT, usage=(3, 8)))
    await (await model("hi")).aread()
    found = otel.metrics()
    assert "gen_ai.client.operation.duration" in found
    assert "gen_ai.client.operation.time_to_first_chunk" not in found
    assert "gen_ai.client.operation.time_per_output_chunk" not in found


async def test_without_an_sdk_a_call_has_no_telemetry(emu: Emulator, no_sdk: None) -> None:
    model = make_model(emu)
    emu.script(Reply(text=TEXT))
    response = await model("hi")
    await response.aread()
    assert response._ch.telemetry is None


def test_streamwrap_never_imports_opentelemetry() -> None:
    # Telemetry is looked for, never loaded: a program that does not use OpenTelemetry
    # does not pay for its import, even where it is installed.
    program = textwrap.dedent(
        """
        import sys
        import streamwrap
        from streamwrap.testing import Emulator, Fault, Reply

        with Emulator() as emu:
            emu.script(Reply(text="ok"))
            model = streamwrap.load_model({"model_type": "anthropic_chat", "model_name": "m",
                                           "base_url": emu.anthropic_base_url, "api_key": "k"})
            assert model.call_sync("hi").text == "ok"
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def _unused(_: Any) -> None: ...
