"""FastAPI routes of the pipeline API (routes only; the work is in serving_chat.OpenAIServingChat)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments.protocol import ChatCompletionRequest, ModelCard, ModelList, error_body
from deployments.serving_chat import ApiError, OpenAIServingChat, classify_exception

router = APIRouter()
REQUEST_ID_HEADER = "X-Request-Id"
# The chat handler of this process. Set by the ingress replica's constructor; one ingress replica per process.
# (Serve serves a copy of the FastAPI app, so app.state set in the constructor is not the served app's state.)
_chat: OpenAIServingChat | None = None


def install_handler(chat: OpenAIServingChat) -> None:
    global _chat
    _chat = chat


def _handler(request: Request) -> OpenAIServingChat:
    if _chat is None:
        raise ApiError(503, "the API is starting up")
    return _chat


def _request_id(request: Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if given.isascii() and 0 < len(given) <= 64 and given.replace("-", "").isalnum() \
        else uuid.uuid4().hex


def _error(status: int, message: str, request_id: str | None = None, param: str | None = None) -> JSONResponse:
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return JSONResponse(error_body(status, message, param), status_code=status, headers=headers)


@router.post("/v1/chat/completions")
async def create_chat_completion(body: ChatCompletionRequest, request: Request):
    chat = _handler(request)
    request_id = _request_id(request)
    try:
        if body.stream:
            lines = await chat.stream(body, request_id)
            return StreamingResponse(lines, media_type="text/event-stream",
                                     headers={REQUEST_ID_HEADER: request_id, "Cache-Control": "no-cache"})
        response = await chat.create(body, request_id)
    except Exception as exc:  # noqa: BLE001 - every failure leaves as an OpenAI-format error
        err = classify_exception(exc)
        chat.count_response(err.status)
        return _error(err.status, err.message, request_id, err.param)
    return JSONResponse(response.model_dump(exclude_none=True), headers={REQUEST_ID_HEADER: request_id})


@router.get("/v1/models")
async def list_models(request: Request) -> ModelList:
    return ModelList(data=[ModelCard(id=_handler(request).settings.served_model_name)])


@router.get("/health")
async def health() -> dict:
    """Liveness: the API process answers."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request):
    """Readiness: both upstream LLM tiers answer."""
    try:
        upstreams = await _handler(request).agent.check_upstreams()
    except Exception as exc:  # noqa: BLE001
        return JSONResponse({"status": "unavailable", "error": f"upstream check: {type(exc).__name__}: {exc}"},
                            status_code=503)
    ok = all(upstreams.values())
    return JSONResponse({"status": "ready" if ok else "unavailable", "upstreams": upstreams},
                        status_code=200 if ok else 503)


def create_app() -> FastAPI:
    app = FastAPI(title="Sui QA pipeline API", version="0.1.0")
    app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = first.get("msg", "invalid request")
        return _error(400, f"{where}: {message}" if where else message, param=where or None)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, param=exc.param)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # unknown route (404), wrong method (405), unparsable JSON body (400): same error format
        message = {404: f"no route {request.method} {request.url.path}",
                   405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code)
        return _error(exc.status_code, message or str(exc.detail))

    return app
