"""README promises that had no test of their own (see tests/README.md for the whole promise -> test map): the API
parameter table (docs/api.md since issue 26, linked from README) matches the request model, the refused-parameter
list matches the code, one environment name per setting with a one-line error naming the refused prefix, and
generated state under $SUIQA_HOME (default var/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployments.config import ApiSettings
from deployments.protocol import _REFUSED, ChatCompletionRequest, StreamOptions
from suiqa import paths
from suiqa.errors import SuiqaError

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
API_DOC = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")


def test_readme_links_the_api_page():
    assert "(docs/api.md)" in README


def _api_table() -> dict[str, str]:
    """{first cell: second cell} of the parameter table in docs/api.md, "The pipeline API"."""
    section = API_DOC.split("# The pipeline API", 1)[1]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| parameter"))
    table = []
    for line in lines[start + 1:]:  # the rows up to the end of this table (other tables follow in the section)
        if not line.startswith("| "):
            break
        table.append(line)
    return {r.split(" | ")[0][2:]: r.split(" | ")[1] for r in table if not r.startswith("| ---")}


def _names(cell: str) -> list[str]:
    return re.findall(r"`([a-z_.]+)`", cell)


def test_every_parameter_readme_names_is_a_request_field():
    fields = set(ChatCompletionRequest.model_fields) | {f"stream_options.{f}" for f in StreamOptions.model_fields}
    roles = {"system", "developer", "user", "assistant", "tool", "tool_calls", "none", "text", "messages",
             "extra_body"}  # words of the table that are not parameters
    named = {name for cell in _api_table() for name in _names(cell)}
    assert named - fields - roles == set()
    assert {"max_completion_tokens", "stop", "sui_events", "sui_max_steps", "top_k", "n"} <= named


def test_readme_states_the_message_cap_the_model_enforces():
    """Issue #25, item 4: the 64-message cap was enforced but not in README."""
    from deployments.protocol import MAX_MESSAGES

    row = next(cell for key, cell in _api_table().items() if "`assistant`" in key)
    assert f"at most {MAX_MESSAGES} messages" in row
    messages = [{"role": "user", "content": "q"}] * (MAX_MESSAGES + 1)
    with pytest.raises(ValueError, match=f"at most {MAX_MESSAGES} items"):
        ChatCompletionRequest(model="m", messages=messages)


def test_readme_lists_every_refused_parameter_and_the_code_refuses_each():
    refused_row = next(cell for cell in _api_table() if "`tools`" in cell)
    listed = set(_names(refused_row)) - {"none", "text"}
    assert set(_REFUSED) <= listed
    for name in set(_REFUSED):
        with pytest.raises(ValueError, match=name if name != "parallel_tool_calls" else "function calling"):
            ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "q"}], **{name: "x"})


def test_the_outer_prefix_of_a_nested_tier_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("SUIQA_API_AGENT__DEADLINE_S", "99")
    with pytest.raises(SuiqaError) as info:
        ApiSettings.load()
    message = str(info.value)
    assert "\n" not in message and "SUIQA_API_AGENT__*" in message and "SUIQA_REACT_*" in message


def test_generated_state_lives_under_suiqa_home(monkeypatch, tmp_path):
    monkeypatch.delenv("SUIQA_HOME", raising=False)
    assert paths.state_dir() == paths.REPO_ROOT / "var"
    monkeypatch.setenv("SUIQA_HOME", str(tmp_path / "h"))
    assert paths.models_dir() == tmp_path / "h" / "models" and paths.logs_dir().is_dir()
