"""The front door: a pure-ASGI middleware that Ray Serve's HTTP proxy runs (one proxy per node), in front of the
replicas. Two jobs, both because the proxy answers without waiting for a replica:

- ``GET /health`` is answered here: liveness of the API's front door, the process that accepts the connections.
  Ray Serve counts every request inside a replica against ``max_ongoing_requests``, so a /health that went to a
  full replica would queue behind agent runs or be refused. A replica's own liveness is Ray's job
  (``check_health``, replicas restarted on failure); whether the pipeline can answer is ``/ready``.
- Ray's own error answers (the 429 + Retry-After of a full deployment — ``backpressure_config`` — a 503 when no
  replica is available, a 408/500 of the proxy) come as plain text; here they get OpenAI's error format, like the
  replicas' own errors. Their status and headers stay Ray's.

Why the proxy sheds capacity at all: the deployment's ``max_ongoing_requests`` is the replica's admission capacity
(runs + queue, ``ApiSettings.deployment_options``), so a request beyond what every replica can take is refused by
the proxy itself — measured on the 2-core stack (40 concurrent requests against 4 runs + 8 queued, 4 bursts each):
on Ray's own latency histogram 116 of 116 refusals within 100 ms (108 within 50 ms), against 4 of 112 when the busy
replica refused them; on the H200 (320 clients) 429s p50 5 ms and /health p50 1.8 ms, against 27 ms and 7.8 ms
with the replicas refusing (benchmarks/results/soak/h200/NOTES.md, leases 3 and 4). The replica's admission still orders its queue and refuses what would
only time out there, and per-key limits stay in the replica (they need the key ring).

Installed through Ray's hook ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` (:data:`PROXY_ENV`), set in the Ray
head's environment (the proxy inherits it): ``stackctl`` and the GPU benchmark do, and the RayService does on every
Ray container (k8s/base/rayservice.yaml, checked by tests/k8s).
"""

from __future__ import annotations

import json
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROXY_ENV = {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "deployments.front_door:proxy_middlewares"}
HEALTH_PATH = "/health"  # the API's route prefix is "/" (ApiSettings checks it)
HEALTH_BODY = b'{"status":"ok"}'  # as the replica's own /health writes it
REQUEST_ID = b"x-request-id"


def proxy_middlewares() -> list:
    """Ray's proxy callback: the middlewares the proxy wraps its ASGI app in."""
    from starlette.middleware import Middleware

    return [Middleware(FrontDoor)]


class FrontDoor:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"] == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            await self._health(scope, send)
        else:
            await self.app(scope, receive, _openai_errors(send))

    @staticmethod
    async def _health(scope: Scope, send: Send) -> None:
        request_id = dict(scope["headers"]).get(REQUEST_ID) or uuid.uuid4().hex.encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(HEALTH_BODY)).encode()),
                   (REQUEST_ID, request_id)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": HEALTH_BODY if scope["method"] == "GET" else b""})


def _openai_errors(send: Send) -> Send:
    """``send`` that turns a plain-text error response (Ray's own) into OpenAI's error format; every other
    response passes through untouched, chunk by chunk."""
    held: list[Message] = []  # the start message and body chunks of a plain-text error, until its last chunk

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] >= 400 and _plain_text(message.get("headers", ())):
                held.append(message)
                return
        elif held and message["type"] == "http.response.body":
            held.append(message)
            if message.get("more_body", False):
                return
            start, text = held[0], b"".join(m.get("body", b"") for m in held[1:]).decode(errors="replace")
            held.clear()
            await _send_as_openai_error(send, start, text.strip())
            return
        await send(message)

    return sender


def _plain_text(headers) -> bool:
    return any(name == b"content-type" and value.startswith(b"text/plain") for name, value in headers)


async def _send_as_openai_error(send: Send, start: Message, text: str) -> None:
    from deployments.protocol import error_body

    status = start["status"]
    message = f"the API is at capacity; retry later ({text})" if status == 429 else text or f"HTTP {status}"
    body = json.dumps(error_body(status, message), ensure_ascii=False).encode()
    headers = [(k, v) for k, v in start["headers"] if k not in (b"content-type", b"content-length")]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
