"""The front door: a pure-ASGI middleware that Ray Serve's HTTP proxy runs (one proxy per node), in front of the
replicas. Two jobs, both because the proxy answers without waiting for a replica:

- ``GET /health`` is answered here: liveness of the API's front door, the process that accepts the connections.
  Ray Serve counts every request inside a replica against ``max_ongoing_requests``, so a /health that went to a
  full replica would queue behind agent runs or be refused. A replica's own liveness is Ray's job
  (``check_health``, replicas restarted on failure); whether the pipeline can answer is ``/ready``.
- Ray's own error answers (the 429 + Retry-After of a full deployment — ``backpressure_config`` — a 503 when no
  replica is available, a 408/500 of the proxy) come as plain text; here they get OpenAI's error format, like the
  replicas' own errors. Their status and headers stay Ray's.
- A client's ``X-Request-Id`` is checked here, on every route (/health too): Ray's proxy takes it as the
  request id and echoes it on the response, so a malformed one (not 1-64 of ``[A-Za-z0-9._-]``, or sent twice)
  gets its 400 here, with an id of the door's own, before the proxy sees it. Before (issue #25) the replica
  refused it but the proxy echoed the client's value on that 400, and the door's /health accepted and echoed
  any value.

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
import re
import uuid
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROXY_ENV = {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "deployments.front_door:proxy_middlewares"}
HEALTH_PATH = "/health"  # the API's route prefix is "/" (ApiSettings checks it)
HEALTH_BODY = b'{"status":"ok"}'  # as the replica's own /health writes it
REQUEST_ID = b"x-request-id"
REQUEST_ID_RULE = "X-Request-Id must be 1-64 characters of letters, digits, '-', '_', '.' (one header)"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # fullmatch: `$` would let a trailing newline through


def client_request_ids(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    return [value.decode("latin-1") for name, value in headers if name == REQUEST_ID]


def request_id_error(given: list[str]) -> str | None:
    """Why the client's X-Request-Id header(s) are refused (None: absent, or one valid value)."""
    if len(given) > 1 or any(_VALID_REQUEST_ID.fullmatch(value) is None for value in given):
        return REQUEST_ID_RULE
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


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
            return
        given = client_request_ids(scope["headers"])
        problem = request_id_error(given)
        if problem is not None:
            await _send_error(send, 400, problem, param="X-Request-Id", request_id=new_request_id())
        elif scope["path"] == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            await self._health(scope, send, given[0] if given else new_request_id())
        else:
            await self.app(scope, receive, _openai_errors(send))

    @staticmethod
    async def _health(scope: Scope, send: Send, request_id: str) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(HEALTH_BODY)).encode()),
                   (REQUEST_ID, request_id.encode("latin-1"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": HEALTH_BODY if scope["method"] == "GET" else b""})


async def _send_error(send: Send, status: int, message: str, *, param: str | None, request_id: str) -> None:
    from deployments.protocol import error_body

    body = json.dumps(error_body(status, message, param), ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (REQUEST_ID, request_id.encode("latin-1"))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
