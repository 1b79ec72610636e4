"""What reading one streamed agent turn costs the Serve replica's CPU, by reader and by tokens per SSE chunk.

The H200 profile of issue 17 (benchmarks/results/h200/report.md, "What bounds the Ray tier") found the replicas
pinned at ~90% of a core at 10.7 agent runs/s, most of it in the openai SDK building a typed
``ChatCompletionChunk`` per streamed token. Two levers, measured here without a GPU or a network:

- the reader: ``typed`` = ``client.chat.completions.create(stream=True)`` (what react_tier/llm.py did);
  ``dicts`` = ``LLMClient.stream`` as shipped (the SDK's generic ``post(..., cast_to=object)``: same HTTP, SSE
  decoding and errors, a ``dict`` per chunk);
- tokens per chunk: vLLM's ``--stream-interval N`` (serving profile field ``stream_interval``).

Each turn is served by an in-process ``httpx.MockTransport`` that yields vLLM's SSE events one read at a time
(role chunk, N-token content chunks with continuous usage stats, the finish chunk, the usage chunk, ``[DONE]``),
so the figure is the client side only: what one replica spends per turn before any agent logic. CPU seconds by
``time.process_time`` over ``--turns`` turns, best and median of ``--passes`` passes.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.stream_reader [--tokens 128] [--turns 200] [--passes 5]

Writes benchmarks/results/stream_reader/{results.json, report.md, stream_reader.png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai

from react_tier.llm import LLMClient, TextDelta
from react_tier.settings import LLMEndpointSettings

RESULTS = Path(__file__).with_name("results") / "stream_reader"
TOKEN = "隋"  # one token of text per generated token


def sse_events(tokens: int, per_chunk: int) -> list[bytes]:
    """The SSE events of one vLLM chat stream with continuous usage stats, ``per_chunk`` tokens per chunk."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "qwen-agent"}

    def event(choices: list, usage: dict | None) -> bytes:
        body = {**base, "choices": choices, **({"usage": usage} if usage is not None else {})}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()

    prompt = 900
    out = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                   "finish_reason": None}], {"prompt_tokens": prompt, "completion_tokens": 0,
                                             "total_tokens": prompt})]
    sent = 0
    while sent < tokens:
        n = 1 if sent == 0 else min(per_chunk, tokens - sent)  # vLLM sends the first token at once
        sent += n
        out.append(event([{"index": 0, "delta": {"content": TOKEN * n}, "logprobs": None, "finish_reason": None}],
                         {"prompt_tokens": prompt, "completion_tokens": sent, "total_tokens": prompt + sent}))
    out.append(event([{"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": "length"}],
                     {"prompt_tokens": prompt, "completion_tokens": sent, "total_tokens": prompt + sent}))
    out.append(event([], {"prompt_tokens": prompt, "completion_tokens": sent, "total_tokens": prompt + sent}))
    return out + [b"data: [DONE]\n\n"]


def _transport(events: list[bytes]) -> httpx.MockTransport:
    async def body():
        for item in events:  # one read per event, as a socket delivers them at vLLM's pace
            yield item

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return httpx.MockTransport(handler)


def _client(events: list[bytes]) -> LLMClient:
    client = LLMClient("agent", LLMEndpointSettings(base_url="http://vllm.invalid:8001", model="qwen-agent"))
    client.http = httpx.AsyncClient(transport=_transport(events))
    client.client = openai.AsyncOpenAI(base_url=client.settings.base_url, api_key="EMPTY", max_retries=0,
                                       http_client=client.http)
    return client


async def _typed_turn(client: LLMClient, messages: list[dict]) -> int:
    stream = await client.client.chat.completions.create(
        model="qwen-agent", messages=messages, max_tokens=128, stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True})
    text = ""
    async with stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
    return len(text)


async def _dicts_turn(client: LLMClient, messages: list[dict]) -> int:
    text = ""
    async for delta in client.stream(messages, max_tokens=128):
        text += delta.text if isinstance(delta, TextDelta) else ""  # TextDeltas, then one Finish
    return len(text)


READERS = {"typed": _typed_turn, "dicts": _dicts_turn}


async def _pass(reader: str, events: list[bytes], turns: int, tokens: int) -> float:
    """CPU seconds per turn over ``turns`` sequential turns (one client, as a replica keeps one)."""
    client = _client(events)
    messages = [{"role": "user", "content": "隋炀帝为什么开凿大运河？"}]
    turn = READERS[reader]
    assert await turn(client, messages) == tokens * len(TOKEN)  # warm-up, and the reader saw every token
    started = time.process_time()
    for _ in range(turns):
        await turn(client, messages)
    spent = time.process_time() - started
    await client.aclose()
    return spent / turns


def measure(tokens: int, intervals: list[int], turns: int, passes: int) -> list[dict]:
    from tqdm import tqdm

    rows = []
    cases = [(reader, n) for n in intervals for reader in READERS]
    for reader, n in tqdm(cases, desc="reader x stream_interval", unit="case", disable=None):
        events = sse_events(tokens, n)
        per_turn = [asyncio.run(_pass(reader, events, turns, tokens)) for _ in range(passes)]
        rows.append({"reader": reader, "stream_interval": n, "chunks": len(events) - 1, "tokens": tokens,
                     "cpu_ms_per_turn_best": round(min(per_turn) * 1000, 3),
                     "cpu_ms_per_turn_median": round(statistics.median(per_turn) * 1000, 3),
                     "passes_ms": [round(p * 1000, 3) for p in per_turn]})
    return rows


def write(rows: list[dict], meta: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=1, ensure_ascii=False) + "\n")
    base = next(r for r in rows if r["reader"] == "typed" and r["stream_interval"] == 1)["cpu_ms_per_turn_median"]
    lines = [f"# Stream reader: replica CPU per streamed agent turn ({meta['tokens']} tokens)", "",
             f"`{meta['command']}` — {meta['date']}, {meta['machine']}. Median (best) of {meta['passes']} passes "
             f"of {meta['turns']} turns; ratios against the typed reader at one token per chunk, same run.", "",
             "| reader | stream_interval | SSE events | CPU ms / turn, median (best) | vs typed, 1 |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['reader']} | {r['stream_interval']} | {r['chunks']} | {r['cpu_ms_per_turn_median']:.2f} "
                     f"({r['cpu_ms_per_turn_best']:.2f}) | {base / r['cpu_ms_per_turn_median']:.1f}x |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    intervals = sorted({r["stream_interval"] for r in rows})
    width = 0.38
    for i, reader in enumerate(READERS):
        values = [next(r["cpu_ms_per_turn_median"] for r in rows
                       if r["reader"] == reader and r["stream_interval"] == n) for n in intervals]
        ax.bar([x + (i - 0.5) * width for x in range(len(intervals))], values, width, label=reader)
    ax.set_xticks(range(len(intervals)), [f"{n} tok/chunk" for n in intervals])
    ax.set_ylabel(f"CPU ms per {meta['tokens']}-token turn")
    ax.set_title("Replica CPU to read one streamed agent turn")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "stream_reader.png", dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128, help="tokens per turn (api-gpu-bench: 128)")
    parser.add_argument("--intervals", default="1,4,8", help="tokens per SSE chunk to compare")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = measure(args.tokens, [int(n) for n in args.intervals.split(",")], args.turns, args.passes)
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "tokens": args.tokens, "turns": args.turns,
            "passes": args.passes, "machine": f"{platform.processor() or platform.machine()}, python "
                                              f"{platform.python_version()}, openai {openai.__version__}",
            "command": " ".join(["python -m benchmarks.stream_reader", *(argv or [])])}
    write(rows, meta, args.out)
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
