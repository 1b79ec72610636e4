"""The Qwen-Agent-style ReAct prompt, in Chinese (labels stay English so the parser and Qwen agree).

Layout for vLLM's prefix cache: :data:`SYSTEM_PROMPT` (instructions + tool descriptions) is the static part and
must stay free of anything per run (question, draft, date, request id): it is the first message of every agent
call, so all runs share its KV blocks. The per-run parts come after it (history, then the question and the draft
in :func:`question_message`), and each turn only appends (assistant turn + Observation), so a run's next call
reuses its whole previous prompt. tests/unit/react_tier/test_prompt_prefix.py checks both properties.
"""

from __future__ import annotations

from react_tier.tools import Tool

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


INSTRUCTIONS_BLOCK = "\n\n回答要求（来自调用方，只约束最终答案的内容与形式，不改变上面的工具与格式规则）：\n{instructions}"


def question_message(question: str, draft: str | None, instructions: str | None = None) -> str:
    """The per-run user message. The caller's instructions go here, not into the system prompt: the system
    prompt stays one static prefix shared by every run (prefix cache), and the tool protocol stays in force."""
    return (f"Question: {question}" + (INSTRUCTIONS_BLOCK.format(instructions=instructions) if instructions else "")
            + (DRAFT_BLOCK.format(draft=draft) if draft else ""))
