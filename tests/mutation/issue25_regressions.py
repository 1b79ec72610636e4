"""Issue #25's six hand-made bugs that `make test-fast` did not catch, each applied alone to a CLEAN CHECKOUT
(it edits files in place and restores them): the fast unit tests must fail on every one. From the repository
root: python -m tests.mutation.issue25_regressions
"""
from tests.mutation.handmade import run_cases

CASES = [
    ("admission slot not released when the app raises", "deployments/middleware.py",
     "            try:\n                await self.app(scope, receive, send)\n            finally:\n"
     "                gate.admission.leave(ticket)\n",
     "            await self.app(scope, receive, send)\n            gate.admission.leave(ticket)\n"),
    ("token bucket never advances its timestamp", "deployments/auth.py", "        self.stamp = now\n", ""),
    ("search_knowledge no longer clamps k to 1-10", "react_tier/tools.py",
     'k = max(1, min(int(args.get("k") or ctx.search_k), 10))', 'k = int(args.get("k") or ctx.search_k)'),
    ("the run state records each tier's vLLM API key", "stackctl/stack.py",
     'tiers = {role: p.model_dump(mode="json", exclude={"api_key"}) for role, p in profiles.items()}',
     'tiers = {role: {**p.model_dump(mode="json"), "api_key": p.api_key and p.api_key.get_secret_value()} '
     'for role, p in profiles.items()}'),
    ("a client disconnect no longer closes the agent's event stream", "deployments/serving_chat.py",
     "            with contextlib.suppress(RuntimeError):  # (already closing itself: "
     '"generator is already running")\n                await events.aclose()\n', ""),
    ("a successful upstream call not reported to the breaker", "react_tier/llm.py",
     "        breaker.success()  # answered (a stream: its headers came)\n", ""),
]
if __name__ == "__main__":
    run_cases(CASES, ["tests/unit"], "hand-made bug (issue #25)", 900)
