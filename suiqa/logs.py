"""Structured logs with the request id in every line: one JSON object per event, on one line.

Why JSON lines: a request crosses the ingress, the agent, the tools and two vLLM tiers; `grep <request id>` or
`jq 'select(.request_id=="...")'` over the replica logs must give its whole story (accepted, each step, each upstream
call with its latency and status, finish). Why a ``ContextVar`` for the id: the agent runs each request in its own
asyncio task, and a task copies the context it is created in, so a value set where a request starts reaches every
log line and every upstream call of that request, and only of that request, without passing it down by hand.

Split of jobs: libraries (react_tier, deployments) log through the stdlib ``logging`` with an event name as the
message and fields in ``extra``; this module only formats (``JsonFormatter``) and is wired once by the process that
owns the output (the Serve replica, the CLI): :func:`configure_json_logging`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("suiqa_request_id", default=None)
REQUEST_ID_HEADER = "X-Request-Id"  # the one spelling: the ingress reads and answers it, upstream calls send it

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and becomes a JSON field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def current_request_id() -> str | None:
    return REQUEST_ID.get()


@contextlib.contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Bind ``request_id`` to the current context (and the tasks created inside it) for the ``with`` block."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` from the context unless the call gave one in ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "event", "request_id", **extra}``; exceptions as ``exc`` (one line)."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
        }
        for key, value in vars(record).items():  # (private attributes, e.g. Ray's _ray_timestamp_ns, stay out)
            if key not in _STANDARD and key not in body and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info).replace("\n", " | ")
        return json.dumps(body, ensure_ascii=False, default=str)


_HANDLER_MARK = "_suiqa_json"


def configure_json_logging(loggers: tuple[str, ...] = ("",), *, level: int | str = logging.INFO,
                           path: str | Path | None = None, stream: TextIO | None = None) -> logging.Handler:
    """One JSON-lines handler (a file when ``path`` is given, else ``stream``/stderr) on each of ``loggers``;
    idempotent (a second call replaces the handler it installed before). Returns the handler."""
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    setattr(handler, _HANDLER_MARK, True)
    for name in loggers:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(handler)
        logger.setLevel(level)
        if name:
            logger.propagate = False  # one line per event, not one more through the root's handlers
    return handler


def read_json_lines(path: str | Path, offset: int = 0) -> list[dict[str, Any]]:
    """The JSON objects of a log file (lines that are not JSON are skipped): for tests and tools. ``offset``: start
    at this byte, e.g. the file's size taken before, to read only what was appended since."""
    with Path(path).open("rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", errors="replace")
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            item = json.loads(line)
            if isinstance(item, dict):
                out.append(item)
    return out
