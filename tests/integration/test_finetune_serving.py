"""CI end-to-end of the PEFT path on the tiny domain model, with two vLLM starts of our own (one at a time):

1. data -> LoRA (a few steps) -> merge -> converted back to InternLM2 -> served with the production domain profile
   (`cpu-tiny`: InternLM2ForCausalLM, our config class) -> a chat request succeeds;
2. the unmerged adapter on the Llama-layout base with `--enable-lora --lora-modules sui=...` -> answers as `sui`;
   the same server's base model (Llama layout) gives the same greedy tokens as the shared InternLM2 domain server,
   which checks the layout conversion end to end inside vLLM.
"""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration
OWN_PORTS = range(8100, 8110)
PROMPT = [{"role": "user", "content": "《从军行》的作者是谁？"}]


def _own_port() -> int:
    from suiqa.net import port_in_use

    for port in OWN_PORTS:
        if not port_in_use("127.0.0.1", port):
            return port
    raise RuntimeError(f"no free port in {OWN_PORTS}")


def _chat(base_url: str, model: str, max_tokens: int = 8) -> dict:
    resp = httpx.post(
        f"{base_url}/v1/chat/completions",
        timeout=120,
        json={
            "model": model,
            "messages": PROMPT,
            "max_tokens": max_tokens,
            "temperature": 0,
            "logprobs": True,
        },
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _tokens(reply: dict) -> list[str]:
    return [t["token"] for t in reply["choices"][0]["logprobs"]["content"]]


def test_merged_model_served_as_internlm2(finetuned):
    from serving.config import load_profile
    from serving.launcher import VLLMServer

    profile = load_profile(
        "cpu-tiny",
        role="domain",
        port=_own_port(),
        model=str(finetuned["merged"]),
        served_model_name=["internlm2-chat-sui-ft"],
    )
    with VLLMServer(profile) as server:
        reply = _chat(server.base_url, "internlm2-chat-sui-ft")
    assert reply["model"] == "internlm2-chat-sui-ft"
    assert reply["usage"]["completion_tokens"] > 0


def test_unmerged_adapter_served_with_enable_lora(finetuned, domain_server):
    from serving.config import load_profile
    from serving.launcher import VLLMServer

    profile = load_profile(
        "cpu-tiny",
        role="domain",
        port=_own_port(),
        model=str(finetuned["base_llama"]),
        served_model_name=["sui-base-llama"],
        trust_remote_code=False,
        lora_modules={"sui": str(finetuned["adapter"])},
        max_lora_rank=8,
    )
    assert "--enable-lora" in profile.command()
    with VLLMServer(profile) as server:
        models = {m["id"]: m for m in httpx.get(f"{server.base_url}/v1/models", timeout=10).json()["data"]}
        adapter_reply = _chat(server.base_url, "sui")
        base_reply = _chat(server.base_url, "sui-base-llama")
    assert models["sui"]["parent"] == "sui-base-llama"
    assert adapter_reply["model"] == "sui" and adapter_reply["usage"]["completion_tokens"] > 0
    # Llama layout (converted) vs the original InternLM2 checkpoint, both in vLLM: same greedy tokens.
    internlm2_reply = _chat(domain_server.base_url, domain_server.profile.api_model_name)
    assert _tokens(base_reply) == _tokens(internlm2_reply)
