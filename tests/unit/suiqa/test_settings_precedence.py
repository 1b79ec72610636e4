"""One precedence on every entry path: CLI flag (or a value the stack computes) > environment > YAML > default.
Each test sets the same field through YAML, the environment and the CLI, and peels the layers off one by one."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from deployments.app import app_builder
from deployments.config import ApiSettings
from deployments.serve_config import serve_config
from react_tier import AgentSettings
from serving.config import load_profile
from stackctl import stack as stack_module
from stackctl.cli import app as cli


@pytest.fixture
def api_yaml(tmp_path):
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump({"request_timeout_s": 11, "agent": {
        "deadline_s": 12, "agent_llm": {"base_url": "http://yaml:1/v1", "model": "yaml-model"},
        "knowledge": {"window_chars": 111}}}))
    return path


def test_agent_settings_yaml_env_cli(api_yaml, tmp_path, monkeypatch):
    agent_yaml = tmp_path / "agent.yaml"
    agent_yaml.write_text("deadline_s: 10\nknowledge: {window_chars: 100}\n")
    assert AgentSettings.load(agent_yaml).deadline_s == 10
    monkeypatch.setenv("SUIQA_REACT_DEADLINE_S", "20")
    monkeypatch.setenv("SUIQA_KB_WINDOW_CHARS", "200")
    settings = AgentSettings.load(agent_yaml)
    assert settings.deadline_s == 20 and settings.knowledge.window_chars == 200  # nested tier: its own env
    settings = AgentSettings.load(agent_yaml, deadline_s=30, knowledge={"window_chars": 300})
    assert settings.deadline_s == 30 and settings.knowledge.window_chars == 300


def test_suiqa_ask_cli_beats_env_beats_yaml(tmp_path, monkeypatch):
    seen = {}

    async def fake_ask(settings, question, as_json):
        seen["settings"] = settings

    monkeypatch.setattr("react_tier.cli._ask", fake_ask)
    config = tmp_path / "agent.yaml"
    config.write_text("max_steps: 2\nagent_llm: {base_url: 'http://yaml:1', model: yaml-model}\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["ask", "问", "-c", str(config)]).exit_code == 0
    assert seen["settings"].max_steps == 2 and seen["settings"].agent_llm.model == "yaml-model"
    monkeypatch.setenv("SUIQA_REACT_MAX_STEPS", "3")
    monkeypatch.setenv("SUIQA_REACT_AGENT_LLM__MODEL", "env-model")
    assert runner.invoke(cli, ["ask", "问", "-c", str(config)]).exit_code == 0
    assert seen["settings"].max_steps == 3 and seen["settings"].agent_llm.model == "env-model"
    assert seen["settings"].agent_llm.base_url == "http://yaml:1/v1"  # the rest of the YAML's sub-model stays
    result = runner.invoke(cli, ["ask", "问", "-c", str(config), "--max-steps", "4", "--agent-model", "cli-model"])
    assert result.exit_code == 0, result.output
    assert seen["settings"].max_steps == 4 and seen["settings"].agent_llm.model == "cli-model"
    assert seen["settings"].agent_llm.base_url == "http://yaml:1/v1"


def test_suiqa_up_api_settings(api_yaml, monkeypatch):
    stack = stack_module.StackSettings(api_config=str(api_yaml), agent_profile=None)
    profiles = stack_module.serving_profiles(stack)
    settings = stack_module.api_settings(stack, profiles)
    assert (settings.request_timeout_s, settings.agent.deadline_s, settings.agent.knowledge.window_chars) == \
        (11, 12, 111)
    monkeypatch.setenv("SUIQA_API_REQUEST_TIMEOUT_S", "21")
    monkeypatch.setenv("SUIQA_REACT_DEADLINE_S", "22")
    monkeypatch.setenv("SUIQA_KB_WINDOW_CHARS", "222")
    monkeypatch.setenv("SUIQA_REACT_AGENT_LLM__MODEL", "env-model")
    settings = stack_module.api_settings(stack, profiles)
    assert (settings.request_timeout_s, settings.agent.deadline_s, settings.agent.knowledge.window_chars) == \
        (21, 22, 222)
    # the endpoints of the servers the stack starts are computed: the top layer, above env and YAML
    assert settings.agent.agent_llm.model == profiles["domain"].served_model_name[-1]
    assert settings.agent.agent_llm.base_url == profiles["domain"].base_url + "/v1"


def test_stack_settings(tmp_path, monkeypatch):
    path = tmp_path / "stack.yaml"
    path.write_text("ray_port: 1111\n")
    assert stack_module.load_stack(str(path)).ray_port == 1111
    monkeypatch.setenv("SUIQA_STACK_RAY_PORT", "2222")
    assert stack_module.load_stack(str(path)).ray_port == 2222
    assert stack_module.load_stack(str(path), ray_port=3333).ray_port == 3333


def test_serving_profile(monkeypatch):
    assert load_profile("cpu-tiny").port == 8000
    monkeypatch.setenv("SUIQA_DOMAIN_PORT", "8100")
    assert load_profile("cpu-tiny").port == 8100
    assert load_profile("cpu-tiny", port=8200).port == 8200
    result = CliRunner().invoke(cli, ["serve", "domain", "--port", "8300", "--print-command"])
    assert "--port 8300" in result.output
    result = CliRunner().invoke(cli, ["serve", "domain", "--print-command"])
    assert "--port 8100" in result.output


def test_serve_deploy_yaml_args_lose_to_the_environment(api_yaml, monkeypatch):
    monkeypatch.setenv("SUIQA_API_API_KEYS", "ci:sk-test-0123456789abcdef")  # the default profile requires keys
    args = serve_config(ApiSettings.load(api_yaml))["applications"][0]["args"]
    bound = app_builder(args)._bound_deployment.init_args[0]
    assert (bound["request_timeout_s"], bound["agent"]["deadline_s"]) == (11, 12)
    monkeypatch.setenv("SUIQA_API_REQUEST_TIMEOUT_S", "31")
    monkeypatch.setenv("SUIQA_REACT_DEADLINE_S", "32")
    bound = app_builder(args)._bound_deployment.init_args[0]
    assert (bound["request_timeout_s"], bound["agent"]["deadline_s"]) == (31, 32)


def test_one_environment_name_per_setting(monkeypatch):
    """The nested agent is reached through its own prefix only: the outer tier's prefix does not reach it."""
    monkeypatch.setenv("SUIQA_API_AGENT__DEADLINE_S", "99")
    with pytest.raises(Exception, match="agent"):
        ApiSettings.load()
    monkeypatch.delenv("SUIQA_API_AGENT__DEADLINE_S")
    monkeypatch.setenv("SUIQA_REACT_DEADLINE_S", "98")
    assert ApiSettings.load().agent.deadline_s == 98
