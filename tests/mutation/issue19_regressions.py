"""Issue #19's hand-made regressions, each applied alone to a CLEAN CHECKOUT (it edits files in place and
restores them): the unit tests must fail on every one. Run from the repository root:
    python -m tests.mutation.issue19_regressions
"""
from tests.mutation.handmade import run_cases

CASES = [
    ("question-length off-by-one", "react_tier/request.py", "if len(question) > limits.max_question_chars:", "if len(question) >= limits.max_question_chars:"),
    ("question from the first message", "deployments/protocol.py", "question=self.messages[-1].text()", "question=self.messages[0].text()"),
    ("history-length check deleted", "react_tier/request.py", "if sum(len(turn.content) for turn in self.history) > limits.max_history_chars:", "if False:"),
    ("request id not passed to the agent", "deployments/serving_chat.py", "self.agent.check(request.to_agent_request(request_id))", "self.agent.check(request.to_agent_request())"),
    ("history not passed to the agent", "deployments/protocol.py", "return AgentRequest(question=self.messages[-1].text(), history=turns,", "return AgentRequest(question=self.messages[-1].text(), history=[],"),
    ("extra lines kept in an Action name", "react_tier/react_format.py",
     "action = action.splitlines()[0].strip() if action else action", "action = action"),
    ("citations fall back to every observed id", "react_tier/agent.py",
     "return [self.observed[pid] for pid in ids if pid in self.observed]",
     "return [self.observed[pid] for pid in ids if pid in self.observed] or list(self.observed.values())"),
    ("citations not read from Thoughts", "react_tier/agent.py",
     "texts = [answer, *(step.thought for step in self.steps if not step.forced)]", "texts = [answer]"),
    ("alias expansion matches shorter keys inside longer ones", "react_tier/knowledge/aliases.py", "if not any(taken[start:end]):", "if True:"),
    ("API errors sent with HTTP 200", "deployments/errors.py", "return ErrorJSONResponse(error_body(status, message, param), status_code=status, headers=headers)", "return ErrorJSONResponse(error_body(status, message, param), status_code=200, headers=headers)"),
    ("validation errors returned as 422", "deployments/api_router.py", "return _error(request, 400, f\"{where}: {message}\" if where else message, param=param)", "return _error(request, 422, f\"{where}: {message}\" if where else message, param=param)"),
    ("a full queue returned as 500", "deployments/errors.py", "return ApiError(429, \"the agent tier is at capacity (queue full); retry later\")", "return ApiError(500, \"the agent tier is at capacity (queue full); retry later\")"),
]
TESTS = ["tests/unit/react_tier/test_request.py", "tests/unit/deployments/test_contract_agent.py",
         "tests/unit/deployments/test_api_router.py", "tests/unit/deployments/test_api_router_exact.py",
         "tests/unit/deployments/test_protocol.py", "tests/unit/react_tier/test_parser_exact.py",
         "tests/unit/react_tier/test_parser.py", "tests/unit/react_tier/test_agent_citations.py",
         "tests/unit/react_tier/knowledge/test_text_exact.py", "tests/unit/react_tier/knowledge/test_text.py",
         "tests/unit/react_tier/test_agent.py"]
if __name__ == "__main__":
    run_cases(CASES, TESTS, "regression (issue #19)", 600)
