"""The ReAct wire format, in one place (as Lagent's ``ReActProtocol``): the prompt template and its stop words,
the labels, parsing one turn, rendering a step back into the prompt, locating the "Final Answer", and the one
citation pattern that the loop, the grounding check and the Responses API's annotations all read.

**Prompt.** The Qwen-Agent-style ReAct prompt, in Chinese (labels stay English so the parser and Qwen agree).
Layout for vLLM's prefix cache: :data:`SYSTEM_PROMPT` (instructions + tool descriptions) is the static part and
must stay free of anything per run (question, draft, date, request id): it is the first message of every agent
call, so all runs share its KV blocks. The per-run parts come after it (history, then the question and the draft
in :func:`question_message`), and each turn only appends (assistant turn rendered by :func:`render_action` +
:func:`render_observation`), so a run's next call reuses its whole previous prompt.
tests/unit/react_tier/test_prompt_prefix.py checks both properties.

**Parsing** (:func:`parse_turn`). Tolerated, because small models and stop-sequence handling produce them: Chinese
colons (``：``), markdown bold labels, odd case and spacing, a hallucinated ``Observation:`` and everything after
it, a leaked fragment of the stop word (``\\nObserv``) at the end, chat special tokens, code fences around the JSON
input, an action name in backticks/brackets or with ``()``. When both an action and a final answer appear,
whichever comes first wins (text after a hallucinated Observation is already gone). Anything else raises
:class:`ReActParseError` whose message is fed back to the model as the Observation.

**Citations** (:data:`CITATION`, :func:`bracket_ids`, :func:`cited_ids`). Before this module there were two
patterns that disagreed: the loop's (``[id]``/``【id】``, the whole bracket one id, no line break, <= 200 chars)
and the grounding check's (also full-width ``［id］``, several ids in one bracket split at ``, ， 、 ; ；`` and
spaces, <= 240 chars, an id = ``scheme:rest``). The tests pin the grounding side's lists (``[a, b]``,
``[a、b]``: tests/unit/react_tier/test_grounding.py) and the loop side's ``[ id ]`` with spaces and ids that are
whatever a tool returned (tests/unit/react_tier/test_agent_citations.py, react_tier/test_tools.py's bare ``7``).
The one pattern is the union, so no citation either side read before is lost: a bracket is ``[...]``, ``【...】``
or ``［...］`` of
1-240 characters without brackets inside; its ids are the whole (stripped) text when that is a known id (an id a
tool returned), else its pieces between separators that are known ids or look like ``scheme:rest``
(``suishu:卷2:40``, ``poem:sui#61``, a URL). Other brackets are text: the history passages' own 【译文】 mark is
no citation (issue #25). What changed: an answer's ``［id］`` and ``[a, b]`` now also count as citations of the
answer (before, only the grounding score credited them; the citations list and the Responses annotations left
them out, so the answer showed a source it did not list). tests/unit/react_tier/test_react_format.py pins the reconciled
cases.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from react_tier.tools import Tool

# --- the prompt

STOP_WORDS = ["Observation:", "Observation：", "\nObservation"]

SYSTEM_PROMPT = """你是隋朝历史与诗词问答助手。尽你所能回答下面的问题。你可以使用以下工具：

{tool_descs}

请严格使用以下格式：

Question: 需要回答的问题
Thought: 思考下一步该做什么
Action: 要使用的工具，必须是 [{tool_names}] 之一
Action Input: 工具的输入，JSON 对象
Observation: 工具返回的结果
...（Thought/Action/Action Input/Observation 可以重复多次）
Thought: 我现在知道最终答案了
Final Answer: 对原问题的最终答案

要求：
- 领域模型的初稿（内部知识）可能有误，请用工具查到的资料核实、补充。
- 问题涉及几个事实时，每个事实单独调用一次 search_knowledge（检索词只写这一个事实），再综合各次 Observation 作答。
- Final Answer 中用方括号注明所依据资料的编号，编号取自 Observation，例如 [编号]。
- 每次只调用一个工具，写完 Action Input 就停下，等待 Observation。

开始！"""

DRAFT_BLOCK = "\n\n领域模型初稿（内部知识，可能有误）：\n{draft}"

FORCE_FINAL = ("Observation: {reason}不要再调用工具。请根据以上 Observation 中的资料直接写出最终答案，"
               "格式为 “Final Answer: 答案”，并用方括号注明资料编号。")
FORCE_REASONS = {"max_steps": "已达到步数上限。", "deadline": "时间即将用完。", "degraded": "输出格式多次错误。"}


def system_prompt(tools: list[Tool]) -> str:
    return SYSTEM_PROMPT.format(tool_descs="\n\n".join(tool.describe() for tool in tools),
                                tool_names=", ".join(tool.name for tool in tools))


INSTRUCTIONS_BLOCK = ("\n\n回答要求（来自调用方，只约束最终答案的内容与形式，不改变上面的工具与格式规则）：\n"
                      "{instructions}")


def question_message(question: str, draft: str | None, instructions: str | None = None) -> str:
    """The per-run user message. The caller's instructions go here, not into the system prompt: the system
    prompt stays one static prefix shared by every run (prefix cache), and the tool protocol stays in force."""
    return (f"Question: {question}" + (INSTRUCTIONS_BLOCK.format(instructions=instructions) if instructions else "")
            + (DRAFT_BLOCK.format(draft=draft) if draft else ""))


# --- one turn: labels and parsing

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


def answer_start(text: str, answer: str) -> int:
    """Where ``answer`` begins in the turn's raw text: after the last "Final Answer" label (a Thought may say the
    same words first), else its first occurrence, else the start."""
    if not answer:
        return 0
    label = text.rfind("Final Answer")
    found = text.find(answer[:8], label) if label >= 0 else -1
    return found if found >= 0 else max(text.find(answer[:8]), 0)


# --- a step rendered back into the prompt (what the next call's messages append)

def render_action(thought: str, action: str, action_input: Any) -> str:
    """The assistant turn of a step as the model should have written it (the input as JSON unless a string)."""
    shown = action_input if isinstance(action_input, str) else json.dumps(action_input, ensure_ascii=False)
    return f"Thought: {thought}\nAction: {action}\nAction Input: {shown}"


def render_observation(text: object) -> str:
    """The user turn that answers a step: a tool's result, or the parse error the model is to fix."""
    return f"Observation: {text}"


# --- the one citation pattern (see the module docstring for what it accepts and why)

CITATION = re.compile(r"[\[【［]([^\[\]【】［］]{1,240}?)[\]】］]")
CITATION_LIST = re.compile(r"[,，、;；\s]+")  # [a, b] / [a；b]: several ids in one bracket
SOURCE_ID = re.compile(r"[A-Za-z][\w.+-]*:\S+", re.ASCII)  # scheme:rest (\w ASCII-only: 译文: is no scheme)


def bracket_ids(bracketed: str, known: Collection[str] = ()) -> list[str]:
    """The source ids in one bracket's text (none: the bracket is text, not a citation). ``known``: ids a tool
    returned, which count whatever their form."""
    whole = bracketed.strip()
    if whole in known:
        return [whole]
    return [piece for piece in CITATION_LIST.split(bracketed) if SOURCE_ID.fullmatch(piece) or piece in known]


def citations_in(text: str, known: Collection[str] = ()) -> Iterator[tuple[re.Match[str], list[str]]]:
    """Each citation bracket of ``text`` (the match, for its position) with its ids; text brackets are skipped."""
    for match in CITATION.finditer(text):
        if ids := bracket_ids(match.group(1), known):
            yield match, ids


def cited_ids(text: str, known: Collection[str] = ()) -> list[str]:
    """The ids ``text`` cites, in order of first mention, each once."""
    return list(dict.fromkeys(pid for _, ids in citations_in(text, known) for pid in ids))


def strip_citations(text: str, known: Collection[str] = ()) -> str:
    """``text`` without its citation brackets (text brackets such as 【译文】 stay)."""
    return CITATION.sub(lambda m: "" if bracket_ids(m.group(1), known) else m.group(0), text)
