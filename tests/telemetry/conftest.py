"""The OpenTelemetry SDK, configured for one test at a time, with in-memory exporters.

An application configures its SDK once per process (``set_tracer_provider`` refuses a
second one); a test suite needs a fresh one per test, and none outside these tests (the
rest of the suite runs without telemetry, as most applications do). So the fixture resets
the API's globals afterwards, as OpenTelemetry's own test utilities do
(``opentelemetry.test.globals_test``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


@dataclass
class Telemetry:
    """What the application's SDK received."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def chat_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name.startswith("chat ")]

    def one_chat_span(self) -> ReadableSpan:
        spans = self.chat_spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def metrics(self) -> dict[str, list[Any]]:
        """Metric name → its data points (with ``.attributes``, ``.count``, ``.sum``)."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def metric_units(self) -> dict[str, str]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            m.name: m.unit or "" for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
        }


def _reset_globals() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    metrics_internal._PROXY_METER_PROVIDER = metrics_internal._ProxyMeterProvider()


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    """An SDK with in-memory span and metric exporters, set as the application's."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    _reset_globals()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    try:
        yield Telemetry(spans, reader, tracer_provider)
    finally:
        _reset_globals()
        tracer_provider.shutdown()
        meter_provider.shutdown()


@pytest.fixture
def no_sdk() -> Iterator[None]:
    """OpenTelemetry imported, but no SDK configured: the API's proxies."""
    _reset_globals()
    yield
    _reset_globals()
