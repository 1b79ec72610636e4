"""FastAPI routes of the pipeline API (routes only; the work is in serving_chat.OpenAIServingChat).

``create_app(chat)`` builds the app around one handler: the Serve replica builds it after its constructor
(``__serve_build_asgi_app__``), the route tests build it around a fake agent with FastAPI's TestClient — no module
global, no Ray needed to test a route.

The middleware around the routes (request id, counting, tracing, the guard) and its order are
deployments/middleware.py's; every error here is deployments/errors.py's ``error_response``, with Retry-After on
a 429/503 from the one setting ``admission.retry_after_s`` (the guard's too).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments import middleware
from deployments.admission import Gate
from deployments.auth import KeyRing
from deployments.config import AdmissionSettings
from deployments.errors import ApiError, classify_exception, error_response
from deployments.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ErrorResponse,
    ModelCard,
    ModelList,
    ModelMeta,
)
from deployments.request_context import RequestContext, reject
from deployments.request_schema import publish as publish_request
from deployments.request_schema import publish_responses
from deployments.responses_protocol import ResponsesRequest
from deployments.serving_chat import OpenAIServingChat
from deployments.serving_responses import OpenAIServingResponses

router = APIRouter()
_ERROR_DOCS = {
    400: "Invalid request (parameter named in `error.param`); never 422",
    401: "Missing or wrong API key",
    404: "Unknown model",
    413: "Request body larger than `admission.max_body_bytes`",
    429: "Per-key limit or admission limit reached (Retry-After)",
    502: "An upstream LLM tier answered badly",
    503: "Starting up, draining, or the LLM tiers are down (Retry-After)",
    504: "The request exceeded the pipeline's time limit",
}


# One event of the stream (OpenAPI 3.1: a text/event-stream schema describes each event, as schemathesis reads
# it)
SSE_EVENT = {
    "type": "object", "required": ["event", "data"],
    "properties": {"event": {"enum": ["message", "sui.step"]}, "data": {"type": "string"}},
    "description": "`data`: a ChatCompletionChunk as JSON (the last with `sui`; with include_usage one more "
                   "with `usage`), an OpenAI-format error if the run fails midway, then `[DONE]`. With "
                   "sui_events, `event: sui.step` events carry each step as it starts and ends."}
RESPONSES_SSE_EVENT = {
    "type": "object", "required": ["event", "data"],
    "properties": {"event": {"enum": [
        "response.created", "response.in_progress", "response.output_item.added", "response.output_item.done",
        "response.content_part.added", "response.content_part.done", "response.output_text.delta",
        "response.output_text.done", "response.completed", "response.incomplete", "error", "response.failed"]},
        "data": {"type": "string"}},
    "description": "`data`: the event (openai.types.responses.ResponseStreamEvent) as JSON, its `type` the "
                   "SSE event's name; the last is response.completed (response.incomplete when cut at "
                   "max_output_tokens), or `error` then response.failed if the run fails midway."}


def _errors(*codes: int) -> dict:
    return {code: {"model": ErrorResponse, "description": _ERROR_DOCS[code]} for code in codes}


class ReadyStatus(BaseModel):
    status: str
    upstreams: dict[str, bool] | None = None
    error: str | None = None

def _chat(request: Request) -> OpenAIServingChat:
    chat = getattr(request.app.state, "chat", None)
    if chat is None:
        raise ApiError(503, "the API is starting up")
    return chat


def _retry_after(request: Request) -> dict[str, str]:
    return {"Retry-After": str(request.app.state.retry_after_s)}


def _error(request: Request, status: int, message: str, param: str | None = None) -> JSONResponse:
    return error_response(status, message, param, _retry_after(request) if status in (429, 503) else None)


@router.post("/v1/chat/completions", response_model=None, responses={
    200: {"model": ChatCompletionResponse,
          "description": "The answer (JSON), or SSE chunks when `stream` is true",
          "content": {"text/event-stream": {"schema": SSE_EVENT}}},
    **_errors(400, 401, 404, 413, 429, 502, 503, 504)})
async def create_chat_completion(body: ChatCompletionRequest, request: Request):
    return await _answer(_chat(request), body, request)


@router.post("/v1/responses", response_model=None, responses={
    200: {"description": "The Response (JSON), or its events (SSE) when `stream` is true",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}},
                      "text/event-stream": {"schema": RESPONSES_SSE_EVENT}}},
    **_errors(400, 401, 404, 413, 429, 502, 503, 504)})
async def create_response(body: ResponsesRequest, request: Request):
    """OpenAI's Responses API over the same pipeline (docs/responses.md): the agent's steps as `reasoning` and
    `mcp_call` items, the answer as a `message` whose text cites its sources (annotations)."""
    return await _answer(OpenAIServingResponses(_chat(request)), body, request)


async def _answer(handler: OpenAIServingChat | OpenAIServingResponses, body: BaseModel, request: Request):
    """One answer: SSE when the body asks for a stream, else JSON; every failure an OpenAI-format error."""
    request_id = RequestContext.of(request.scope).request_id
    try:
        if body.stream:
            lines = await handler.stream(body, request_id)
            return StreamingResponse(lines, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        response = await handler.create(body, request_id)
    except Exception as exc:  # noqa: BLE001 - every failure leaves as an OpenAI-format error
        err = classify_exception(exc)
        return _error(request, err.status, err.message, err.param)
    return JSONResponse(response if isinstance(response, dict) else response.model_dump(exclude_none=True))


@router.get("/v1/models", responses=_errors(401, 503))
async def list_models(request: Request) -> ModelList:
    settings = _chat(request).settings
    return ModelList(data=[ModelCard(id=settings.served_model_name,
                                     sui=ModelMeta(profile=settings.profile, tiny_models=settings.tiny_models))])


@router.get("/health")
async def health() -> dict:
    """Liveness: the API process answers."""
    return {"status": "ok"}


@router.get("/ready", response_model=ReadyStatus,
            responses={503: {"model": ReadyStatus, "description": "Not ready (draining, or an upstream is down)"}})
async def ready(request: Request):
    """Readiness: not draining, and each upstream LLM tier serves the model the stack needs (cached briefly)."""
    gate = getattr(request.app.state, "gate", None)
    if gate is not None and gate.draining:
        return _not_ready(request, {"status": "draining"})
    try:
        upstreams = await _chat(request).check_upstreams()
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001
        return _not_ready(request, {"status": "unavailable",
                                    "error": f"upstream check: {type(exc).__name__}: {exc}"})
    if not all(upstreams.values()):
        return _not_ready(request, {"status": "unavailable", "upstreams": upstreams})
    return JSONResponse({"status": "ready", "upstreams": upstreams})


def _not_ready(request: Request, body: dict) -> JSONResponse:
    """/ready's 503, always with Retry-After (every 503 of the API has one; the upstream one lacked it)."""
    return JSONResponse(body, status_code=503, headers=_retry_after(request))


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document with what the API really accepts and returns: the chat request as the server accepts
    it (deployments/request_schema.py), no 422 (a refused body is a 400), Bearer auth on /v1 when keys are
    configured."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schemas = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        chat = getattr(app.state, "chat", None)
        if chat is not None:
            settings = chat.settings
            publish_request(schema, settings.served_model_name, settings.agent.limits,
                            settings.agent.agent_llm.max_tokens)
            publish_responses(schema, settings.served_model_name, settings.agent.limits)
        gate = getattr(app.state, "gate", None)
        if gate is not None and gate.keys:
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, item in schema["paths"].items():
            for operation in item.values():
                operation.get("responses", {}).pop("422", None)
                if path.startswith("/v1/") and gate is not None and gate.keys:
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(chat: OpenAIServingChat | None, echo_request_id: bool = True, keys: KeyRing | None = None,
               tracer: Any = None) -> FastAPI:
    """The API around ``chat`` (None: every route but /health answers 503 "starting up"). ``echo_request_id``:
    set X-Request-Id on responses (off under Ray Serve, whose proxy does it). ``keys``: the API keys (None or
    empty: an open API; deployments.app refuses that unless the settings allow it). ``tracer``: an
    OpenTelemetry tracer for the requests' server spans (deployments/tracing.py; None: no tracing)."""
    app = FastAPI(title="Sui QA pipeline API", version="0.2.0")
    app.state.chat = chat
    app.state.retry_after_s = (chat.settings.admission if chat is not None else AdmissionSettings()).retry_after_s
    app.include_router(router)
    app.state.gate = Gate(chat.settings, keys or KeyRing([])) if chat is not None else None
    middleware.install(app, metrics=getattr(chat, "metrics", None), gate=app.state.gate,
                       echo_request_id=echo_request_id, tracer=tracer)
    app.openapi = lambda: _openapi(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = loc[0] if loc and first.get("type") != "json_invalid" else None
        where = ".".join(loc)
        message = first.get("msg", "invalid request").removeprefix("Value error, ")
        if first.get("type") == "extra_forbidden":
            message = f"unsupported parameter {where!r}"
        elif first.get("type") == "json_invalid":
            message, where = "the request body is not valid JSON", ""
            reject("invalid_json")
        return _error(request, 400, f"{where}: {message}" if where else message, param=param)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(request, exc.status, exc.message, param=exc.param)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # unknown route (404), wrong method (405, with Allow), unparsable JSON body (400): same error format
        message = {400: f"the request body is not valid JSON ({exc.detail})",
                   404: f"no route {request.method} {request.url.path}",
                   405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code)
        if exc.status_code == 400:
            reject("invalid_json")
        response = _error(request, exc.status_code, message or str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    return app
