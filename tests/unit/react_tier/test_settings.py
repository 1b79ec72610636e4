"""Agent settings, the tool registry, operator-added tools and the `suiqa ask` command."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from react_tier.cli import register
from react_tier.errors import AgentInputError
from react_tier.settings import AgentSettings
from react_tier.tools import SearchKnowledgeTool, ToolContext, ToolInputError, build_tools
from react_tier.web_search import WebSearchTool
from suiqa.settings import SettingsError


def test_settings_env_yaml_and_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("SUIQA_REACT_MAX_STEPS", "3")
    monkeypatch.setenv("SUIQA_REACT_AGENT_LLM__MODEL", "qwen2.5-7b-instruct")
    config = tmp_path / "agent.yaml"
    config.write_text("deadline_s: 12\nmax_steps: 9\ndomain_llm:\n  base_url: http://domain:8000\n  model: d\n"
                      "tools: [search_knowledge]\n", encoding="utf-8")
    settings = AgentSettings.load(config, draft_first=False)
    assert settings.max_steps == 3                       # env beats YAML
    assert settings.deadline_s == 12 and settings.tools == ["search_knowledge"]
    assert settings.agent_llm.model == "qwen2.5-7b-instruct"
    assert settings.agent_llm.base_url == "http://127.0.0.1:8001/v1"  # the rest of the endpoint keeps defaults
    assert settings.domain_llm.base_url == "http://domain:8000/v1"    # bare host:port gets /v1
    assert settings.draft_first is False


@pytest.mark.parametrize("overrides, where", [
    ({"max_steps": 0}, "max_steps: Input should be greater"),
    ({"agent_llm": {"base_url": "ftp://x", "model": "m"}}, "agent_llm.base_url"),
    ({"tools": ["search_knowledge", "search_knowledge"]}, "tools"),
    ({"extra_tools": [{"path": "not a path"}]}, "extra_tools.0.path"),
    ({"unknown_field": 1}, "unknown_field: Extra inputs"),
])
def test_bad_settings_are_rejected_in_one_line(overrides, where):
    with pytest.raises(SettingsError, match=f"^invalid AgentSettings: .*{where}") as err:
        AgentSettings.load(**overrides)
    assert "\n" not in str(err.value)


def test_hosted_endpoint_path_is_kept():
    settings = AgentSettings.load(agent_llm={"base_url": "https://dashscope.aliyuncs.com/compatible-mode/v1/",
                                             "model": "qwen-plus"})
    assert settings.agent_llm.base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"


def test_default_tools_and_operator_tools():
    assert list(build_tools(AgentSettings.load())) == ["ask_sui_expert", "search_knowledge", "lookup_poem"]
    tools = build_tools(AgentSettings.load(tools=["search_knowledge"], extra_tools=[
        {"path": "react_tier.web_search:WebSearchTool", "kwargs": {"endpoint": "http://127.0.0.1:1/search"}}]))
    assert list(tools) == ["search_knowledge", "web_search"]
    assert '"query"' in tools["web_search"].describe()


@pytest.mark.parametrize("overrides, message", [
    ({"tools": ["google"]}, "unknown tool"),
    ({"extra_tools": [{"path": "no_such_module:Tool"}]}, "cannot be imported"),
    ({"extra_tools": [{"path": "tests.unit.react_tier.helpers:NotATool"}]}, "not a react_tier.tools.Tool"),
    ({"extra_tools": [{"path": "tests.unit.react_tier.helpers:SlowTool", "kwargs": {"bogus": 1}}]},
     "bad kwargs"),
    ({"extra_tools": [{"path": "react_tier.web_search:WebSearchTool", "kwargs": {"endpoint": "ftp://x"}}]},
     "bad kwargs"),
    ({"tools": ["search_knowledge"], "extra_tools": [{"path": "react_tier.tools:SearchKnowledgeTool"}]}, "two tools"),
])
def test_bad_tool_config_is_a_clear_error(overrides, message):
    with pytest.raises(AgentInputError, match=message):
        build_tools(AgentSettings.load(**overrides))


def test_argument_coercion():
    tool = SearchKnowledgeTool()
    assert tool.coerce_args("杨素") == {"query": "杨素"}
    assert tool.coerce_args({"query": "杨素", "k": "3", "extra": 1}) == {"query": "杨素", "k": 3}
    with pytest.raises(ToolInputError, match="整数"):
        tool.coerce_args({"query": "x", "k": "many"})
    with pytest.raises(ToolInputError, match="缺少参数"):
        tool.coerce_args({"k": 2})


async def test_web_search_tool_over_http(server):
    server.reset()
    server.search_results = [{"title": "隋朝", "url": "https://example.org/sui", "content": "隋朝（581年—618年）"}]
    tool = WebSearchTool(endpoint=server.base_url.removesuffix("/v1") + "/search", k=1)
    result = await tool.run({"query": "隋朝"}, ToolContext())
    assert "[https://example.org/sui] 隋朝：隋朝（581年—618年）" == result.text
    assert result.sources[0].source == "web" and server.requests[-1]["search"]["q"] == "隋朝"


def test_suiqa_ask_json(server):
    server.reset()
    server.script("agent", "Thought: 知道了\nFinal Answer: 隋文帝杨坚。")
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test root"""

    register(app)
    outcome = CliRunner().invoke(app, ["ask", "隋朝是谁建立的？", "--json", "--no-draft",
                                       "--agent-url", server.base_url, "--agent-model", "agent"])
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout)
    assert result["answer"] == "隋文帝杨坚。" and result["finish_reason"] == "stop"
    assert server.requests_for("agent")[0]["model"] == "agent"


def test_example_config_loads():
    from pathlib import Path

    import react_tier

    settings = AgentSettings.load(Path(react_tier.__file__).with_name("agent.example.yaml"))
    assert settings.max_steps == 5 and settings.agent_llm.model == "qwen-agent"
    assert list(build_tools(settings)) == ["ask_sui_expert", "search_knowledge", "lookup_poem"]
