"""Parse one ReAct turn of the agent model (Thought / Action / Action Input, or Final Answer).

Tolerated, because small models and stop-sequence handling produce them: Chinese colons (``：``), markdown bold
labels, odd case and spacing, a hallucinated ``Observation:`` and everything after it, a leaked fragment of the
stop word (``\\nObserv``) at the end, chat special tokens, code fences around the JSON input, an action name in
backticks/brackets or with ``()``. When both an action and a final answer appear, whichever comes first wins
(text after a hallucinated Observation is already gone). Anything else raises :class:`ReActParseError` whose
message is fed back to the model as the Observation.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

_LABELS = {"thought": "Thought", "action": "Action", "action_input": "Action Input",
           "observation": "Observation", "final_answer": "Final Answer", "question": "Question"}
# "Action Input" must be tried before "Action"; labels may be bold (**Action:**) and use a full-width colon.
_LABEL_RE = re.compile(
    r"\**\s*(?<![A-Za-z])(?P<label>final\s*answer|action\s*input|action|thought|observation|question)\s*\**\s*[:：]\s*\**",
    re.IGNORECASE)
_SPECIAL_TOKENS_RE = re.compile(r"<\|[a-z_]+\|>|</s>|✿\w+✿")
# A trailing fragment of the stop word "Observation:" that leaked (split tokens): "\nObserv", " Obs", "\nO"...
_LEAKED_STOP_RE = re.compile(r"(?:^|(?<=[\s}\]\"'。.]))Ob(?:s(?:e(?:r(?:v(?:a(?:t(?:i(?:o(?:n)?)?)?)?)?)?)?)?)?\s*$")
_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


class ReActParseError(ValueError):
    """The output is not a usable ReAct turn; ``str(exc)`` is the feedback for the model (Chinese)."""


@dataclass(frozen=True)
class ReActTurn:
    thought: str = ""
    action: str | None = None
    action_input: str | None = None
    final_answer: str | None = None


def _canonical(label: str) -> str:
    return re.sub(r"\s+", "_", label.strip().lower()).replace("finalanswer", "final_answer").replace(
        "actioninput", "action_input")


def clean_output(text: str) -> str:
    """Drop special tokens, a hallucinated Observation (and all after it) and a leaked stop-word fragment."""
    text = _SPECIAL_TOKENS_RE.sub("", text)
    for i, match in enumerate(_LABEL_RE.finditer(text)):
        # a hallucinated tool result, or a new "Question:" after the turn (one opening the output is kept)
        if _canonical(match["label"]) == "observation" or (_canonical(match["label"]) == "question" and i > 0):
            text = text[:match.start()]
            break
    text = text.rstrip()
    return _LEAKED_STOP_RE.sub("", text).rstrip() if len(text) > 1 else text


def parse_turn(text: str, tool_names: list[str] | None = None) -> ReActTurn:
    """Parse one model output; ``tool_names`` (if given) validates the action name."""
    text = clean_output(text)
    if not text.strip():
        raise ReActParseError("输出为空。请按格式输出 Thought、Action、Action Input，或 Final Answer。")
    marks = [(_canonical(m["label"]), m.start(), m.end()) for m in _LABEL_RE.finditer(text)]
    fields: dict[str, str] = {}
    first_at: dict[str, int] = {}
    for i, (label, _start, end) in enumerate(marks):
        stop = marks[i + 1][1] if i + 1 < len(marks) else len(text)
        if label not in fields:  # a repeated label starts a second action: keep the first only
            fields[label], first_at[label] = text[end:stop].strip(), _start
    thought = fields.get("thought", "")
    if not marks:
        raise ReActParseError("没有找到 Action 或 Final Answer。请先写 Thought:，再写 Action: 和 Action Input:，"
                              "或直接写 Final Answer:。")
    if "final_answer" in fields and first_at["final_answer"] < first_at.get("action", len(text)):
        answer = fields["final_answer"]
        if not answer:
            raise ReActParseError("Final Answer 为空。请写出最终答案。")
        return ReActTurn(thought=thought, final_answer=answer)
    if "action" not in fields:
        raise ReActParseError("缺少 Action。请写 Action: 工具名，然后写 Action Input:，或写 Final Answer:。")
    action = fields["action"].strip().strip("`[]【】\"' ").removesuffix("()").strip()
    action = action.splitlines()[0].strip() if action else action
    if not action:
        raise ReActParseError("Action 为空。请写出要调用的工具名。")
    if tool_names is not None and action not in tool_names:
        raise ReActParseError(f"工具 {action!r} 不存在。Action 必须是 [{', '.join(tool_names)}] 之一。")
    if "action_input" not in fields:
        raise ReActParseError(f"Action {action} 缺少 Action Input。请在下一行写 Action Input: 及 JSON 参数。")
    return ReActTurn(thought=thought, action=action, action_input=fields["action_input"])


def parse_action_input(raw: str) -> dict[str, Any] | str:
    """JSON object (also in code fences or Python-dict style) -> dict; anything else -> the plain string.

    Raises ReActParseError for something that looks like JSON but is broken (e.g. truncated output).
    """
    text = _FENCE_RE.sub("", raw.strip()).strip()
    if not text.startswith("{"):
        return text.strip("\"'")
    for loader in (json.loads, ast.literal_eval):
        try:
            value = loader(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    raise ReActParseError(f"Action Input 不是合法的 JSON 对象：{text[:80]}。请输出完整的 JSON，例如 "
                          '{"query": "隋炀帝 运河"}。')


def has_labels(text: str) -> bool:
    return _LABEL_RE.search(text) is not None


def final_answer_prefix(partial: str, holdback: int = 12) -> str:
    """The part of a still-streaming output that is surely Final Answer text (for answer deltas).

    Empty until a ``Final Answer:`` label appears before any action; the last ``holdback`` characters are held
    back while the label may still be followed by a leaked stop word or special token.
    """
    partial = _SPECIAL_TOKENS_RE.sub("", partial)
    marks = list(_LABEL_RE.finditer(partial))
    for i, mark in enumerate(marks):
        label = _canonical(mark["label"])
        if label == "final_answer":
            if i + 1 < len(marks):
                return partial[mark.end():marks[i + 1].start()].strip()
            return partial[mark.end():max(mark.end(), len(partial) - holdback)].lstrip()
        if label in ("action", "action_input", "observation"):
            return ""
    return ""
