"""The page's only connection to the world: the pipeline's OpenAI-compatible API through the ``openai`` client.

The official client's ``Stream`` drops named SSE events, so :func:`stream_events` asks for the raw streamed
response (``with_streaming_response``) and parses the lines with :class:`webui.events.SSEParser`; HTTP errors still
arrive as the client's exceptions (APIConnectionError, APITimeoutError, APIStatusError with the API's message).
Retries are off: the page reports a failure at once instead of hiding it behind backoff.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from openai import OpenAI

from webui.events import SSEEvent, SSEParser

# openai>=3 insists on credentials; vLLM's convention for "no key" is the placeholder EMPTY.
NO_KEY = "EMPTY"


@dataclass(frozen=True)
class RequestOptions:
    max_steps: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None


def make_client(endpoint: str, api_key: str, timeout_s: float, connect_timeout_s: float = 5.0) -> OpenAI:
    import httpx2

    return OpenAI(base_url=endpoint, api_key=api_key.strip() or NO_KEY, max_retries=0,
                  timeout=httpx2.Timeout(timeout_s, connect=connect_timeout_s))


def list_models(client: OpenAI) -> list[dict[str, Any]]:
    """``GET /v1/models`` cards as dicts, the pipeline's ``sui`` metadata included."""
    return [card.model_dump() for card in client.models.list().data]


def stream_events(client: OpenAI, model: str, messages: list[dict[str, str]],
                  options: RequestOptions) -> Iterator[SSEEvent]:
    """POST a streamed chat completion with step events and yield its SSE events as they arrive."""
    extra_body: dict[str, Any] = {"sui_events": True}
    if options.max_steps is not None:
        extra_body["sui_max_steps"] = options.max_steps
    kwargs: dict[str, Any] = {}
    if options.max_tokens is not None:
        kwargs["max_tokens"] = options.max_tokens
    if options.temperature is not None:
        kwargs["temperature"] = options.temperature
    with client.chat.completions.with_streaming_response.create(
            model=model, messages=messages, stream=True, extra_body=extra_body, **kwargs) as response:
        parser = SSEParser()
        for line in response.iter_lines():
            if (event := parser.feed(line)) is not None:
                yield event
        if (event := parser.flush()) is not None:
            yield event


@dataclass
class Item:
    """What the reader thread hands to the page: an SSE event, the exception that ended the exchange, or the end."""

    at: float
    event: SSEEvent | None = None
    error: BaseException | None = None
    end: bool = False


class StreamReader:
    """Reads :func:`stream_events` on a thread so the page can tick (elapsed time, the "slow" banner) while it
    waits for the first byte; the page polls :meth:`get`. ``close`` stops reading (the user left or asked again)."""

    def __init__(self, events: Iterator[SSEEvent]):
        self._events = events
        self._queue: queue.Queue[Item] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webui-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._events:
                if self._stop.is_set():
                    break
                self._queue.put(Item(time.monotonic(), event=event))
        except BaseException as exc:  # noqa: BLE001 - handed to the page, which shows it
            self._queue.put(Item(time.monotonic(), error=exc))
        finally:
            self._queue.put(Item(time.monotonic(), end=True))

    def get(self, timeout_s: float) -> Item | None:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
