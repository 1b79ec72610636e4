"""Measure one streamed OpenAI-compatible completion: TTFT, inter-token latency, TPOT, E2E, tokens.

Pure Python (no Locust, no HTTP client): the Locust user feeds the SSE lines it reads, with the time each arrived,
into a :class:`StreamMeter`; unit tests feed scripted lines. Also builds the request bodies.

Definitions (all in milliseconds, from the moment the request was sent):

- TTFT: first chunk that carries generated output (for chat, the role-only opening chunk that vLLM sends before
  any token does not count; an empty-text token chunk does, since random-weight models often decode to "").
- ITL: gaps between successive output chunks (one chunk per token on vLLM; servers that batch tokens into one
  chunk show fewer, longer gaps).
- TPOT: (E2E - TTFT) / (output_tokens - 1), the average time per output token after the first.
- E2E: until the stream ended (``data: [DONE]`` or the connection closed).
- output tokens: ``usage.completion_tokens`` of the final chunk (``stream_options.include_usage``), else the
  number of output chunks.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"


@dataclass
class RequestRecord:
    """One finished (or failed) request, as written to the records file."""

    start: float                 # wall clock (time.time()) when the request was sent
    ok: bool
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    tpot_ms: float | None = None
    output_tokens: int = 0
    prompt_tokens: int | None = None
    output_chunks: int = 0
    max_tokens: int | None = None
    itl_ms: list[float] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["itl_ms"] = [round(v, 3) for v in self.itl_ms]
        return json.dumps(data, ensure_ascii=False)


class StreamError(Exception):
    """The server answered with something that is not a valid completion stream."""


class StreamMeter:
    """Feed it ``(line, perf_counter_time)`` pairs of one SSE response; read the record when done."""

    def __init__(self, sent_at: float, start_wall: float, max_tokens: int | None = None):
        self.sent_at = sent_at
        self.record = RequestRecord(start=start_wall, ok=False, max_tokens=max_tokens)
        self._first_at: float | None = None
        self._last_at: float | None = None
        self._done = False
        self.text_parts: list[str] = []

    def feed(self, line: str, now: float) -> None:
        line = line.strip()
        if not line or line.startswith(":"):
            return  # blank separator or SSE comment / keep-alive
        if not line.startswith("data:"):
            return  # event:/id:/retry: fields carry nothing we measure
        payload = line[5:].strip()
        if payload == "[DONE]":
            self._done = True
            return
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise StreamError(f"invalid JSON in stream: {payload[:120]!r}") from exc
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            raise StreamError(f"server error in stream: {err.get('message', err) if isinstance(err, dict) else err}")
        usage = chunk.get("usage")
        if usage:
            self.record.output_tokens = int(usage.get("completion_tokens") or 0)
            self.record.prompt_tokens = usage.get("prompt_tokens")
        for choice in chunk.get("choices") or []:
            if _is_output(choice):
                self._on_output(now)
                self.text_parts.append(_choice_text(choice))
                break

    def _on_output(self, now: float) -> None:
        if self._first_at is None:
            self._first_at = now
        else:
            self.record.itl_ms.append((now - self._last_at) * 1000.0)
        self._last_at = now
        self.record.output_chunks += 1

    def finish(self, now: float) -> RequestRecord:
        rec = self.record
        rec.e2e_ms = (now - self.sent_at) * 1000.0
        if self._first_at is None:
            rec.ok = False
            rec.error = rec.error or "stream ended without any output chunk"
            return rec
        rec.ttft_ms = (self._first_at - self.sent_at) * 1000.0
        if not rec.output_tokens:
            rec.output_tokens = rec.output_chunks
        if rec.output_tokens > 1:
            rec.tpot_ms = (rec.e2e_ms - rec.ttft_ms) / (rec.output_tokens - 1)
        rec.ok = True
        return rec

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


def _is_output(choice: dict) -> bool:
    if "text" in choice:  # /v1/completions
        return choice.get("text") is not None
    delta = choice.get("delta") or {}
    if "role" in delta and not delta.get("content"):
        return False  # the chat opening chunk: role only, before any token
    return "content" in delta or "reasoning_content" in delta or "tool_calls" in delta


def _choice_text(choice: dict) -> str:
    if "text" in choice:
        return choice.get("text") or ""
    delta = choice.get("delta") or {}
    return delta.get("content") or ""


def parse_max_tokens(spec: str) -> tuple[int, int]:
    """``"128"`` -> (128, 128); ``"64:256"`` -> (64, 256) sampled uniformly per request."""
    try:
        parts = [int(p) for p in str(spec).split(":")]
    except ValueError:
        raise ValueError(f"output length must be N or MIN:MAX (integers), got {spec!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or parts[0] < 1 or parts[1] < parts[0]:
        raise ValueError(f"output length must be N or MIN:MAX with 1 <= MIN <= MAX, got {spec!r}")
    return parts[0], parts[1]


def request_body(api: str, model: str, prompt: str, max_tokens: int, ignore_eos: bool,
                 temperature: float = 0.0, extra: dict | None = None) -> dict:
    """The JSON body of one streamed request (``api`` is ``chat`` or ``completions``)."""
    body: dict = {"model": model, "max_tokens": max_tokens, "temperature": temperature, "stream": True,
                  "stream_options": {"include_usage": True}}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    elif api == "completions":
        body["prompt"] = prompt
    else:
        raise ValueError(f"api must be 'chat' or 'completions', got {api!r}")
    if ignore_eos:
        body["ignore_eos"] = True  # vLLM extension; the HF baseline honours it too
    body.update(extra or {})
    return body


def api_path(api: str) -> str:
    return CHAT_PATH if api == "chat" else COMPLETIONS_PATH


def load_prompts(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        prompts = [line.strip() for line in fh if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ValueError(f"prompt file {path} has no prompts")
    return prompts


def sample_max_tokens(bounds: tuple[int, int], rng: random.Random) -> int:
    lo, hi = bounds
    return lo if lo == hi else rng.randint(lo, hi)


RETRY_AFTER_CAP_S = 60.0  # the openai SDK's own cap on a server's Retry-After (openai/_base_client.py)


def retry_after_s(value: str | None, default: float | None = None) -> float | None:
    """Seconds a refused client waits before its next request: the response's ``Retry-After`` in seconds (RFC 9110;
    the stack sends whole seconds), capped at 60 s as the openai SDK caps it; ``default`` when the header is missing
    or not a number of seconds (an HTTP date is not sent by this stack and is treated as missing)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        seconds = None
    if seconds is None or seconds != seconds or seconds < 0:  # missing, not a number, NaN or negative
        return default
    return min(seconds, RETRY_AFTER_CAP_S)
