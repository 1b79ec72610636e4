"""`make demo`: start the local stack on the embedded offline default, ask one Sui question through the pipeline
API with the official openai client, print the answer, citations and steps, and stop everything."""

from __future__ import annotations

import json
import os
import sys
import time

QUESTION = "隋文帝杨坚是哪一年建立隋朝的？开皇年间有哪些重要的制度？"
SYSTEM = "你是隋史专家：回答简洁，并注明资料编号。"
MAX_TOKENS = 200  # above the tiny agent tier's own per-call cap (96), so the evidence note fits
PROFILE = os.environ.get("SUIQA_DEMO_PROFILE", "cpu-tiny-shared")


def main() -> int:
    from openai import OpenAI

    from stackctl.stack import down, load_stack, up
    from suiqa.errors import SuiqaError

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    print(f"[demo] suiqa up --profile {PROFILE}  (tiny random-weight models: answers are gibberish by design)")
    try:
        urls = up(load_stack(PROFILE))
    except SuiqaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(f"[demo] stack ready in {time.perf_counter() - started:.0f} s:")
        for name, url in urls.items():
            print(f"         {name:12s} {url}")
        client = OpenAI(base_url=urls["api"], api_key="not-needed", max_retries=0, timeout=300)
        t0 = time.perf_counter()
        # a plain OpenAI request: a system message, a token cap, streamed
        stream = client.chat.completions.create(
            model=urls["model"], max_tokens=MAX_TOKENS, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}])
        print(f"\n[demo] system: {SYSTEM}\n[demo] Q: {QUESTION}  (max_tokens={MAX_TOKENS}, streamed)\n[demo] A: ",
              end="", flush=True)
        answer, extras, finish, usage = "", {}, None, None
        for chunk in stream:
            if chunk.choices:
                delta = chunk.choices[0].delta.content or ""
                answer += delta
                print(delta.replace("\n", " "), end="", flush=True)
                finish = chunk.choices[0].finish_reason or finish
                extras = (chunk.model_extra or {}).get("sui") or extras
            usage = chunk.usage or usage
        print(f"\n[demo] {time.perf_counter() - t0:.1f} s; finish_reason={finish} (pipeline: "
              f"{extras.get('finish_reason')})")
        print("[demo] (random weights: the words are noise; the structure, tools and evidence below are real)")
        print(f"\n[demo] draft from the domain model: {str(extras.get('draft'))[:120]!r}")
        print("[demo] steps:")
        for step in extras.get("steps") or []:
            obs = (step.get("observation") or "").replace("\n", " ")[:100]
            print(f"  {step['index']}. tool={step.get('tool')} "
                  f"input={json.dumps(step.get('tool_input'), ensure_ascii=False)[:80]}"
                  f" ({step.get('latency_s', 0):.2f} s){' error=' + step['error'] if step.get('error') else ''}")
            if obs:
                print(f"     observation: {obs}")
        print("[demo] citations: " + (", ".join(c["id"] for c in extras.get("citations") or []) or "none"))
        grounding = extras.get("grounding") or {}
        flagged = {}
        for sentence in grounding.get("flagged") or []:
            flagged[sentence["reason"]] = flagged.get(sentence["reason"], 0) + 1
        print(f"[demo] grounding: score {grounding.get('score')} over {grounding.get('claims')} claim sentences"
              f" (flagged: {flagged or 'none'}; the share of claims backed by a passage they cite)")
        print(f"[demo] usage: {usage.prompt_tokens} prompt tokens upstream, {usage.completion_tokens} answer tokens "
              f"(cap {MAX_TOKENS})")
    finally:
        print(f"[demo] suiqa down: stopped {', '.join(down()) or 'nothing'}")
    print(f"[demo] done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
