"""The quality ladder on the real cpu-tiny-shared stack: a second Sui app (the stack's own settings: the real tiny
vLLM, the real knowledge base) is deployed beside the API with ONE run slot and the ladder on, then a burst is
sent. Each deployment pins the ladder so that the step of a queued request does not depend on how fast the tiny
models are: thresholds 0/0/0 make every request that finds the slot taken ``extractive``; 0/0/1000 make it
``no_draft``. The stack's own API keeps the ladder off (the shared tests expect today's 429s)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest

from suiqa.paths import REPO_ROOT
from suiqa.ray_local import RAY_LOCAL_ENV

pytestmark = pytest.mark.integration
PREFIX = "/ladder-probe"
DEPLOY = """
import json, sys, ray
from ray import serve
from deployments.app import build_app
from stackctl.stack import api_settings, load_stack, serving_profiles
ray.init(address=sys.argv[1], log_to_driver=False)
stack = load_stack("cpu-tiny-shared")
base = api_settings(stack, serving_profiles(stack))
settings = base.model_validate({**base.model_dump(), **json.loads(sys.argv[2])})
serve.run(build_app(settings), name="ladder-probe", route_prefix="/ladder-probe")
"""


def deploy(env: dict, ladder: dict) -> None:
    overrides = {"metrics_port": 0, "answer_cache": {"enabled": False},
                 "admission": {"max_in_flight": 1, "max_queue": 8, "queue_timeout_s": 60},
                 # Ray's proxy queue bound (max_in_flight by default) would refuse part of the burst itself
                 "agent_deployment": {"autoscaling": None, "num_replicas": 1, "num_cpus": 0,
                                      "max_queued_requests": 16},
                 "quality_ladder": {"enabled": True, "extractive_max_in_flight": 8, **ladder}}
    driver_env = {**env, **RAY_LOCAL_ENV, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", DEPLOY, f"127.0.0.1:{env['SUIQA_STACK_RAY_PORT']}",
                    json.dumps(overrides)], env=driver_env, cwd=REPO_ROOT, timeout=240, check=True,
                   capture_output=True)


def undeploy(env: dict) -> None:
    script = "import sys, ray; from ray import serve; ray.init(address=sys.argv[1]); serve.delete('ladder-probe')"
    subprocess.run([sys.executable, "-c", script, f"127.0.0.1:{env['SUIQA_STACK_RAY_PORT']}"],
                   env={**os.environ, **env, **RAY_LOCAL_ENV, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT,
                   timeout=120, check=False, capture_output=True)


async def burst(chat: str, n: int) -> list[httpx.Response]:
    body = {"model": "sui-react", "messages": [{"role": "user", "content": "隋炀帝为什么开凿大运河？"}],
            "max_tokens": 24}
    async with httpx.AsyncClient(timeout=180) as http:
        first = await http.post(chat, json=body)  # a finished run: the admission has a mean run time
        assert first.status_code == 200 and first.json()["sui"]["quality"] == "full", first.text
        return list(await asyncio.gather(*(http.post(chat, json=body) for _ in range(n))))


@pytest.fixture
def probe(stack):
    urls, env = stack
    chat = urls["api"].removesuffix("/v1") + f"{PREFIX}/v1/chat/completions"

    def run(ladder: dict, n: int) -> list[dict]:
        deploy(env, ladder)
        try:
            responses = asyncio.run(burst(chat, n))
        finally:
            undeploy(env)
        assert all(r.status_code == 200 for r in responses), [r.text[:200] for r in responses]
        return [r.json()["sui"] for r in responses]

    return run


def test_queued_requests_get_extractive_answers_without_an_llm_call(probe):
    suis = probe({"fewer_steps_after_s": 0, "no_draft_after_s": 0, "extractive_after_s": 0}, 5)
    extractive = [s for s in suis if s["quality"] == "extractive"]
    assert len(extractive) >= 3, [s["quality"] for s in suis]  # the slot is busy for all but the first few
    for sui in extractive:
        assert sui["finish_reason"] == "degraded" and sui.get("draft") is None and sui["citations"]
        assert all(u["calls"] == 0 for u in sui["usage"].values())  # no chat call to either tier
        assert sui["steps"][0]["forced"] and sui["steps"][0]["tool"] == "search_knowledge"
        assert sui["grounding"]["score"] >= 0.5


def test_queued_requests_step_down_to_no_draft(probe):
    suis = probe({"fewer_steps_after_s": 0, "no_draft_after_s": 0, "extractive_after_s": 1000,
                  "fewer_steps": 1}, 3)
    stepped = [s for s in suis if s["quality"] == "no_draft"]
    assert stepped, [s["quality"] for s in suis]
    for sui in stepped:
        assert sui.get("draft") is None and sui["usage"]["domain"]["calls"] == 0  # (None is left out)
        assert len([s for s in sui["steps"] if not s["forced"]]) <= 1  # max_steps 1
