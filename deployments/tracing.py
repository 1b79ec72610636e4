"""OpenTelemetry traces of the pipeline: one span tree per request, off by default (``ApiSettings.tracing``).

    POST /v1/chat/completions   (server span: the request id, the status; a client's `traceparent` is its parent)
    └─ agent.run                 (finish reason, steps, answer tokens)
       ├─ llm.call domain        (the draft; X-Request-Id, tokens)  ── vLLM's own `llm_request` span
       ├─ react.step 0           ├─ tool search_knowledge
       ├─ react.step 1           ├─ llm.call agent  ── vLLM's span   └─ tool ...
       └─ ...

The ingress span is this module's ASGI middleware; the rest come from react_tier's span seam
(react_tier/hooks.py: the library stays free of OpenTelemetry) implemented by :class:`OtelAgentHooks`, which
also hands each LLM call's ``traceparent`` to react_tier's client, so a vLLM started with
``--otlp-traces-endpoint`` (ServingProfile.otlp_traces_endpoint) puts its spans under that call. Spans leave
through a BatchSpanProcessor (a background thread, batches of 512) over OTLP/HTTP: a slow or absent collector
costs the requests nothing but dropped spans. Overhead measured on vs off: benchmarks/results/tracing/.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.config import TracingSettings
from deployments.request_context import RequestContext
from react_tier.hooks import AgentHooks, Note

PROPAGATOR = TraceContextTextMapPropagator()  # W3C traceparent/tracestate, what vLLM reads
_KINDS = {"llm.call": SpanKind.CLIENT}
NOT_FAILURES = (GeneratorExit, asyncio.CancelledError)  # a reader that stopped early, a client that left


def tracer_provider(settings: TracingSettings, processor: SpanProcessor | None = None) -> TracerProvider:
    """A provider of its own (not the global one: vLLM in the same process, or tests, keep theirs) exporting
    to ``settings.otlp_endpoint`` in batches (``processor`` replaces that, for tests)."""
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}),
                              sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)))
    provider.add_span_processor(processor or BatchSpanProcessor(
        OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=settings.export_timeout_s)))
    return provider


@contextlib.contextmanager
def traced(tracer: Tracer, name: str, attributes: dict[str, Any], kind: SpanKind = SpanKind.INTERNAL,
           context: Any = None) -> Iterator[Any]:
    """A current span around the body: an exception marks it failed (a cancellation or an early close does
    not: they are how streams end)."""
    with tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes,
                                      record_exception=False, set_status_on_exception=False) as span:
        try:
            yield span
        except NOT_FAILURES:
            raise
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
            raise


class OtelAgentHooks(AgentHooks):
    """react_tier's span seam as OpenTelemetry spans; the upstream headers carry the current span."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    @contextlib.contextmanager
    def span(self, name: str, attributes: dict[str, Any]) -> Iterator[Note]:
        label = attributes.get("sui.tier") or attributes.get("sui.tool")
        if name == "react.step":
            label = attributes.get("sui.step")
        with traced(self.tracer, f"{name} {label}" if label is not None else name, attributes,
                    _KINDS.get(name, SpanKind.INTERNAL)) as span:
            yield lambda found: span.set_attributes({k: v for k, v in found.items() if v is not None})

    def upstream_headers(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier)
        return carrier


class TracingMiddleware:
    """The request's server span (pure ASGI, so streams pass untouched): parent from the client's
    ``traceparent``; the request id (``sui.request_id``), method, route and status as attributes. Install it
    where deployments/middleware.py puts it: inside RequestIdMiddleware (the id is known), outside the guard."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app, self.tracer = app, tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"],
                      "sui.request_id": RequestContext.of(scope).request_id}
        with traced(self.tracer, f"{scope['method']} {scope['path']}", attributes, SpanKind.SERVER,
                    PROPAGATOR.extract(headers)) as span:

            async def send_and_note(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, send_and_note)
