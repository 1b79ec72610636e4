"""A real OTLP/HTTP traces receiver for tests, built on the protocol's own package (``opentelemetry-proto``): no
collector package exists here (Debian ships none). It takes what an OTLP exporter sends — the pipeline's
(deployments/tracing.py) and vLLM's own (``--otlp-traces-endpoint``, OTLP/HTTP protobuf) — answers as a
collector does (200, an ``ExportTraceServiceResponse``; 400 for a body that does not parse; 415 for JSON, which
it does not take) and keeps every span, flattened, with the service that sent it."""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

PATH = "/v1/traces"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@dataclass
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    kind: int
    attributes: dict[str, Any]
    status_code: int
    start_ns: int
    end_ns: int


@dataclass
class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` serves on a free loopback port; ``receiver.endpoint`` is the URL."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    refused: int = 0

    def __enter__(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != PATH or "protobuf" not in self.headers.get("Content-Type", ""):
                    receiver.refused += 1
                    self.send_response(404 if self.path != PATH else 415)
                    self.end_headers()
                    return
                try:
                    request = ExportTraceServiceRequest.FromString(body)
                except DecodeError:
                    receiver.refused += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver._keep(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _keep(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            attrs = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(ReceivedSpan(
                        service=attrs.get("service.name", ""), name=span.name, trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(), parent_id=span.parent_span_id.hex(), kind=span.kind,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        status_code=span.status.code, start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano))
        with self._lock:
            self.spans.extend(found)

    def wait_for(self, predicate, timeout_s: float = 30.0) -> list[ReceivedSpan]:
        """The spans once ``predicate(spans)`` holds (AssertionError after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            assert time.monotonic() < deadline, f"OTLP receiver: condition not met; got {[s.name for s in spans]}"
            time.sleep(0.05)
