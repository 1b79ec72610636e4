"""The page's event handling, kept pure (no Streamlit, no HTTP) so it is tested without a browser.

The pipeline API streams Server-Sent Events (deployments/serving_chat.py):

* ``data: {chat.completion.chunk}`` — the first carries ``delta.role``, then ``delta.content`` pieces, then a final
  chunk with ``finish_reason`` and the pipeline's extras in ``sui`` (request_id, finish_reason
  stop|length|max_steps|deadline|degraded, citations, steps, draft, per-tier usage, grounding), optionally a usage
  chunk with ``choices: []``;
* ``event: sui.step`` + ``data: {"type": "step_started", "index": n}`` / ``{"type": "step_finished", "step": {...}}``
  when the request says ``"sui_events": true`` (the official client drops named events, so the page parses the
  SSE itself);
* ``data: {"error": {message, type, code}}`` when the pipeline fails after the 200 status line went out;
* ``data: [DONE]``.

:class:`SSEParser` turns lines into events; :func:`apply` folds one event into a :class:`TurnView` (one question
and its answer); :func:`apply_exception` records a failure of the HTTP exchange (down, too slow, HTTP 4xx/5xx);
:func:`banners` says what the page must warn about. Times are caller-supplied monotonic seconds, so tests drive
the clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

STEP_EVENT = "sui.step"
FINISH_REASONS = ("stop", "length", "max_steps", "deadline", "degraded")


# --- SSE framing ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SSEEvent:
    event: str = "message"
    data: str = ""


class SSEParser:
    """Incremental parser of the text/event-stream format (WHATWG HTML §9.2.6), fed one line at a time (line
    terminator already stripped). A blank line dispatches the event; ``data`` lines are joined with newlines;
    comment lines (``:``) and ``id``/``retry`` fields are ignored."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def flush(self) -> SSEEvent | None:
        """The event pending at the end of the stream (a server that did not send the final blank line)."""
        return self._dispatch()

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(event=self._event or "message", data="\n".join(self._data))
        self._event, self._data = "", []
        return event


# --- view state ----------------------------------------------------------------------------------------------------

@dataclass
class StepView:
    index: int
    running: bool = True
    thought: str = ""
    tool: str | None = None
    tool_input: Any = None
    observation: str | None = None
    latency_s: float | None = None
    error: str | None = None
    forced: bool = False

    @classmethod
    def finished(cls, step: dict[str, Any]) -> StepView:
        return cls(index=int(step.get("index", 0)), running=False, thought=step.get("thought") or "",
                   tool=step.get("tool"), tool_input=step.get("tool_input"), observation=step.get("observation"),
                   latency_s=step.get("latency_s"), error=step.get("error"), forced=bool(step.get("forced")))

    @property
    def title(self) -> str:
        if self.running:
            return f"Step {self.index}: running…"
        what = f"{self.tool}" if self.tool else ("answer" if not self.error else "turn")
        tail = f" — {self.latency_s:.2f} s" if self.latency_s is not None else ""
        flags = (" (forced)" if self.forced else "") + (" ⚠ error" if self.error else "")
        return f"Step {self.index}: {what}{flags}{tail}"

    @property
    def input_text(self) -> str:
        if self.tool_input is None:
            return ""
        if isinstance(self.tool_input, str):
            return self.tool_input
        return json.dumps(self.tool_input, ensure_ascii=False)


@dataclass
class CitationView:
    id: str
    source: str = ""
    title: str = ""
    text: str | None = None  # the passage; older APIs send only id/source/title

    @property
    def label(self) -> str:
        parts = [f"[{self.id}]", self.title or "(untitled)"]
        if self.source:
            parts.append(f"({self.source})")
        return " ".join(parts)


ErrorKind = Literal["down", "slow", "http", "stream"]


@dataclass
class ErrorView:
    kind: ErrorKind
    message: str
    status: int | None = None


@dataclass
class Banner:
    level: Literal["error", "warning", "info"]
    title: str
    text: str = ""


@dataclass
class TurnView:
    """One question and everything the API said about its answer."""

    question: str
    started_at: float
    answer: str = ""
    steps: dict[int, StepView] = field(default_factory=dict)
    citations: list[CitationView] = field(default_factory=list)
    finish_reason: str | None = None
    request_id: str | None = None
    draft: str | None = None
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    total_usage: dict[str, int] | None = None
    grounding: dict[str, Any] | None = None
    error: ErrorView | None = None
    first_event_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    got_final_chunk: bool = False
    done: bool = False

    @property
    def ok(self) -> bool:
        """A complete answer that can go into the conversation history."""
        return self.done and self.error is None and self.got_final_chunk

    @property
    def ordered_steps(self) -> list[StepView]:
        return [self.steps[i] for i in sorted(self.steps)]

    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started_at

    def total_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


# --- folding -------------------------------------------------------------------------------------------------------

def apply(turn: TurnView, event: SSEEvent, now: float) -> TurnView:
    """Fold one SSE event into the turn (in place; returned for chaining)."""
    if turn.done:
        return turn
    turn.first_event_at = turn.first_event_at if turn.first_event_at is not None else now
    if event.data.strip() == "[DONE]":
        return finish(turn, now)
    try:
        payload = json.loads(event.data)
    except json.JSONDecodeError:
        return _fail(turn, ErrorView("stream", f"the API sent an unreadable event: {event.data[:120]!r}"), now)
    if not isinstance(payload, dict):
        return _fail(turn, ErrorView("stream", f"the API sent an unexpected event: {event.data[:120]!r}"), now)
    if event.event == STEP_EVENT:
        _apply_step(turn, payload)
    elif "error" in payload:
        err = payload["error"] if isinstance(payload["error"], dict) else {"message": str(payload["error"])}
        code = err.get("code")
        status = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else None
        _fail(turn, ErrorView("stream", str(err.get("message") or "the pipeline failed"), status), now)
    else:
        _apply_chunk(turn, payload, now)
    return turn


def _apply_step(turn: TurnView, payload: dict[str, Any]) -> None:
    if payload.get("type") == "step_started":
        index = int(payload.get("index", len(turn.steps) + 1))
        turn.steps.setdefault(index, StepView(index=index))
    elif payload.get("type") == "step_finished" and isinstance(payload.get("step"), dict):
        step = StepView.finished(payload["step"])
        turn.steps[step.index] = step


def _apply_chunk(turn: TurnView, chunk: dict[str, Any], now: float) -> None:
    for choice in chunk.get("choices") or []:
        text = (choice.get("delta") or {}).get("content")
        if text:
            turn.first_token_at = turn.first_token_at if turn.first_token_at is not None else now
            turn.answer += text
        if choice.get("finish_reason"):
            turn.got_final_chunk = True
            turn.finish_reason = turn.finish_reason or choice["finish_reason"]
    if chunk.get("usage"):
        turn.total_usage = chunk["usage"]
    if isinstance(chunk.get("sui"), dict):
        apply_extras(turn, chunk["sui"])


def apply_extras(turn: TurnView, sui: dict[str, Any]) -> TurnView:
    """The pipeline's ``sui`` extras (final chunk or non-streamed response). Tolerates absent/new fields."""
    if sui.get("finish_reason"):
        turn.finish_reason = sui["finish_reason"]
    turn.request_id = sui.get("request_id") or turn.request_id
    turn.draft = sui.get("draft") or turn.draft
    turn.usage = sui.get("usage") or turn.usage
    turn.grounding = sui.get("grounding") if isinstance(sui.get("grounding"), dict) else turn.grounding
    citations = sui.get("citations")
    if isinstance(citations, list):
        turn.citations = [CitationView(id=str(c.get("id", "?")), source=str(c.get("source") or ""),
                                       title=str(c.get("title") or ""),
                                       text=c.get("text") if isinstance(c.get("text"), str) else None)
                          for c in citations if isinstance(c, dict)]
    steps = sui.get("steps")
    if isinstance(steps, list) and steps:  # the final word: covers steps whose events were missed
        turn.steps = {s.index: s for s in (StepView.finished(x) for x in steps if isinstance(x, dict))}
    return turn


def finish(turn: TurnView, now: float) -> TurnView:
    """The stream ended (``[DONE]`` or end of body). A stream that ends without its final chunk is an error."""
    if turn.done:
        return turn
    if not turn.got_final_chunk and turn.error is None:
        return _fail(turn, ErrorView("stream", "the answer stream ended before its final chunk"), now)
    turn.done, turn.finished_at = True, now
    for step in turn.steps.values():
        step.running = False
    return turn


def _fail(turn: TurnView, error: ErrorView, now: float) -> TurnView:
    turn.error = turn.error or error
    turn.done, turn.finished_at = True, now
    for step in turn.steps.values():
        step.running = False
    return turn


def apply_exception(turn: TurnView, exc: BaseException, now: float, endpoint: str = "",
                    timeout_s: float | None = None) -> TurnView:
    """Record a failed HTTP exchange."""
    return _fail(turn, error_of(exc, endpoint, timeout_s), now)


def error_of(exc: BaseException, endpoint: str = "", timeout_s: float | None = None) -> ErrorView:
    """Classify a failure by the openai client's exception types: down, too slow, or an HTTP error status. Once
    the body streams, a read timeout or a dropped connection comes as the HTTP library's own exception."""
    import httpx2  # the openai client's HTTP library: mid-stream failures surface as its exceptions, unwrapped
    import openai

    where = endpoint or "the API"
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
        return ErrorView("slow", f"no answer from {where}" + (f" within {timeout_s:g} s" if timeout_s else ""))
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        why = f"{type(cause).__name__}: {cause}" if cause else exc.message
        return ErrorView("down", f"cannot reach {where} ({why})")
    if isinstance(exc, openai.APIStatusError):
        return ErrorView("http", status_error_message(exc), exc.status_code)
    if isinstance(exc, httpx2.TransportError):
        return ErrorView("stream", f"the connection to {where} broke mid-answer ({type(exc).__name__}: {exc})")
    return ErrorView("stream", f"{type(exc).__name__}: {exc}")


def status_error_message(exc: Any) -> str:
    """The API's own message from an OpenAI-format error body (``{"error": {"message": ...}}``)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))


# --- what the page shows -------------------------------------------------------------------------------------------

ERROR_TITLES = {
    "down": "The API is down",
    "slow": "The API is too slow",
    "http": "The API returned an error",
    "stream": "The answer failed",
}


def banners(turn: TurnView, now: float, slow_after_s: float) -> list[Banner]:
    out: list[Banner] = []
    if turn.error is not None:
        err = turn.error
        status = f"HTTP {err.status}: " if err.status is not None else ""
        out.append(Banner("error", ERROR_TITLES[err.kind], f"{status}{err.message}"))
    waited = (turn.first_token_at if turn.first_token_at is not None else now) - turn.started_at
    if turn.error is None and waited > slow_after_s and (turn.first_token_at is not None or not turn.done):
        verb = "is" if turn.first_token_at is None else "was"
        out.append(Banner("warning", f"The API {verb} slow",
                          f"{'no' if verb == 'is' else 'the first'} answer token after {waited:.0f} s"))
    reason = turn.finish_reason
    if reason == "degraded":
        out.append(Banner("warning", "Degraded answer",
                          "the agent could not finish normally (unusable model output or a failed upstream tier); "
                          "this is its fallback answer (finish_reason=degraded)"))
    elif reason == "deadline":
        out.append(Banner("warning", "Time budget spent",
                          "the agent ran out of time and answered early (finish_reason=deadline)"))
    elif reason == "max_steps":
        out.append(Banner("info", "Step limit reached",
                          "the agent used all its steps and answered with what it had (finish_reason=max_steps)"))
    elif reason == "length":
        out.append(Banner("info", "Answer cut", "the answer hit max tokens (finish_reason=length)"))
    return out


def timings_line(turn: TurnView) -> str:
    parts = [f"finish_reason={turn.finish_reason or ('error' if turn.error else '…')}"]
    if (ttft := turn.ttft_s()) is not None:
        parts.append(f"first token {ttft:.2f} s")
    if (total := turn.total_s()) is not None:
        parts.append(f"total {total:.2f} s")
    parts.append(f"{len(turn.steps)} step{'s' if len(turn.steps) != 1 else ''}")
    for tier, usage in sorted(turn.usage.items()):
        if isinstance(usage, dict):
            parts.append(f"{tier} {usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} tok"
                         f"/{usage.get('calls', 0)} calls")
    if turn.grounding and isinstance(turn.grounding.get("score"), (int, float)):
        parts.append(f"grounding {turn.grounding['score']:.2f}")
    if turn.request_id:
        parts.append(f"request {turn.request_id}")
    return " · ".join(parts)


def conversation(turns: list[TurnView], question: str, system_prompt: str = "") -> list[dict[str, str]]:
    """The multi-turn ``messages`` of the next request: the optional system prompt, every answered turn, the
    question. Failed turns are left out (the API needs user/assistant pairs with a user message last)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for turn in turns:
        if turn.ok:
            messages += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": turn.answer}]
    return [*messages, {"role": "user", "content": question}]


TINY_MODELS_NOTE = ("This stack runs random-weight tiny models: the answer text is noise by design; the steps, "
                    "citations and limits are real.")


# Only what changes inline rendering: escaping '.', '(' etc. would leak backslashes into auto-linked URLs.
_MD_SPECIAL = set("\\`*_[]<>#|~$")


def md_escape(text: str) -> str:
    """Text shown as Markdown literally (random tiny models emit '#', '*', '$' ...)."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def html_block(css_class: str, text: str) -> str:
    """Text as one HTML block with a stable class (the browser test finds answers, steps and passages by it);
    HTML-escaped, so model output is shown literally and cannot inject markup."""
    import html

    body = html.escape(text).replace("\n", "<br>")
    return f'<div class="{css_class}">{body}</div>'


def tiny_models_note(models: list[dict[str, Any]]) -> str | None:
    """One line when ``GET /v1/models`` says the stack serves the tiny random models (``sui.tiny_models``)."""
    for card in models:
        sui = card.get("sui") if isinstance(card, dict) else None
        if isinstance(sui, dict) and sui.get("tiny_models") is True:
            return TINY_MODELS_NOTE
    return None
