"""OpenTelemetry spans and metrics of streamed calls, printed to the console.

Needs ``pip install "streamwrap[openai,otel]" opentelemetry-sdk``. streamwrap records
nothing until the application configures an OpenTelemetry SDK, as here; then every call is
one ``chat {model}`` span (GenAI semantic conventions) from the call to the end of its
stream, a child of the span current at the call, and the GenAI client metrics.

Runs offline against the provider emulator from ``streamwrap.testing``.
"""

import asyncio

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import streamwrap
from streamwrap.testing import Emulator, Fault, Reply

# The application's SDK: spans printed as JSON as each ends (use a BatchSpanProcessor and
# an OTLP exporter in production); metrics read once, at the end of this script.
resource = Resource.create({"service.name": "observability-example"})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(tracer_provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader], resource=resource))


async def main() -> None:
    tracer = trace.get_tracer("example")
    with Emulator() as emu:
        emu.script(
            Reply(text="Streams end when they end, and so do their spans.", usage=(12, 11), delay=0.02),
            Reply(text=[f"word{i} " for i in range(20)], fault=Fault.stall_after(5, 30.0)),
        )
        model = streamwrap.load_model(
            {
                "model_type": "openai_chat",
                "model_name": "gpt-4o-mini",
                "stream": True,
                "base_url": emu.openai_base_url,
                "generate_args": {"temperature": 0.2},
            }
        )
        with tracer.start_as_current_span("answer the user"):
            # One whole stream: the span ends with it, with the usage the provider reported.
            response = await model("Say something about spans.")
            print("reply:", await response.aread())
            # A stream left early: its span ends when the loop is left, as "cancelled".
            response = await model("Say a lot.")
            async for _is_last, text in response.stream:
                if len(text.split()) >= 2:
                    break
            await response.await_done()
            print("left early after:", response.partial_text)
        await model.aclose()

    data = reader.get_metrics_data()
    assert data is not None
    for scope in data.resource_metrics[0].scope_metrics:
        for metric in scope.metrics:
            counts = [point.count for point in metric.data.data_points]
            print(f"{metric.name} ({metric.unit}): {sum(counts)} observation(s)")


if __name__ == "__main__":
    asyncio.run(main())
