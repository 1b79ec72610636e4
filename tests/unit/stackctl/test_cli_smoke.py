"""Smoke tests of the `suiqa` commands README lists that no other test runs (each does its work on the tiny models,
the committed results or a temp dir; `--help` is not enough). The commands that start servers (`serve`, `up`,
`bench run/suite/overhead`) are run by the integration tests, `finetune xtuner` by `make test-xtuner`; see
tests/README.md for the whole map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from stackctl.cli import app

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Invoke the CLI with $SUIQA_HOME in a temp dir (no stack state, no index)."""
    monkeypatch.setenv("SUIQA_HOME", str(tmp_path / "home"))

    def invoke(*args: str, code: int = 0):
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == code, (args, result.output, result.exception)
        return result.output

    return invoke


def test_serve_profiles_lists_the_bundled_profiles(run):
    names = run("serve", "profiles").split()
    assert {"cpu-tiny", "cpu-tiny-agent", "gpu-internlm2-1_8b", "gpu-qwen2_5-1_5b-agent"} <= set(names)


def test_serve_agent_prints_the_vllm_command(run):
    out = run("serve", "agent", "--print-command", "--port", "8311")
    assert "vllm.entrypoints.openai.api_server" in out and "8311" in out and "qwen-agent" in out


def test_serve_config_emits_a_serve_deploy_yaml(run):
    config = yaml.safe_load(run("serve-config", "--profile", "cpu-tiny"))
    application = config["applications"][0]
    assert application["import_path"] == "deployments.app:app_builder" and application["args"]["agent"]


def test_status_and_down_without_a_stack(run):
    assert "no stack is up" in run("status", code=1)
    assert "nothing was running" in run("down")


def test_models_build_tiny_is_idempotent(run, tiny_models):
    out = run("models", "build-tiny", "--out", str(tiny_models["domain"].parent))
    assert str(tiny_models["domain"]) in out and str(tiny_models["agent"]) in out


def test_finetune_data_writes_both_formats(run, tmp_path):
    run("finetune", "data", "--out", str(tmp_path / "ft"))
    stats = json.loads((tmp_path / "ft" / "stats.json").read_text())
    assert stats["stats"]["pairs"] == stats["stats"]["train"] + stats["stats"]["val"] > 1000
    first = json.loads((tmp_path / "ft" / "train.chat.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert [m["role"] for m in first["messages"]][-2:] == ["user", "assistant"]
    assert json.loads((tmp_path / "ft" / "val.alpaca.json").read_text(encoding="utf-8"))[0]["output"]


def test_finetune_convert_round_trips_the_tiny_model(run, tiny_models, tmp_path):
    run("finetune", "convert", str(tiny_models["domain"]), str(tmp_path / "llama"), "--to", "llama")
    assert json.loads((tmp_path / "llama" / "config.json").read_text())["model_type"] == "llama"
    run("finetune", "convert", str(tmp_path / "llama"), str(tmp_path / "back"), "--to", "internlm2")
    assert json.loads((tmp_path / "back" / "config.json").read_text())["model_type"] == "internlm2"


def test_bench_compare_two_committed_result_sets(run, tmp_path):
    results = sorted((REPO / "benchmarks" / "results" / "h200" / "engine").glob("*/summary.json"))[:2]
    assert len(results) == 2
    run("bench", "compare", *map(str, results), "--out", str(tmp_path / "cmp"), "--title", "smoke")
    assert "smoke" in (tmp_path / "cmp" / "report.md").read_text(encoding="utf-8")
    assert len(json.loads((tmp_path / "cmp" / "comparison.json").read_text())) >= 1


@pytest.mark.slow
def test_kb_build_search_poem_get(monkeypatch):
    """On the session's index cache (built once, shared with the KB contract test)."""
    runner = CliRunner()
    for args in (["kb", "build"], ["kb", "search", "隋文帝去世", "-k", "3", "--json"],
                 ["kb", "poem", "空梁落燕泥", "--json"], ["kb", "get", "suishu:卷1:0"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    assert json.loads(result.output)["id"] == "suishu:卷1:0"
