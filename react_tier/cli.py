"""`suiqa ask "问题"`: run the ReAct knowledge-fill agent once against the configured endpoints."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)


def ask(
    question: str = typer.Argument(..., help="The question, e.g. \"隋朝大运河是谁主持开凿的？\""),
    as_json: bool = typer.Option(False, "--json", help="Print the whole result (answer, citations, steps) as JSON."),
    config: Path | None = typer.Option(None, "--config", "-c", help="AgentSettings YAML file."),
    domain_url: str | None = typer.Option(None, help="Domain (InternLM2) endpoint, e.g. http://127.0.0.1:8000/v1"),
    domain_model: str | None = typer.Option(None, help="Domain model name."),
    agent_url: str | None = typer.Option(None, help="Agent (Qwen) endpoint, e.g. http://127.0.0.1:8001/v1"),
    agent_model: str | None = typer.Option(None, help="Agent model name."),
    max_steps: int | None = typer.Option(None, help="Agent steps before a forced answer."),
    deadline_s: float | None = typer.Option(None, help="Total time budget in seconds."),
    draft: bool | None = typer.Option(None, "--draft/--no-draft", help="Ask the domain model first."),
    search_first: bool | None = typer.Option(None, "--search-first/--no-search-first",
                                                help="Search the knowledge base before the first agent turn."),
) -> None:
    """Answer a question with the ReAct agent; prints the answer, citations and steps."""
    import asyncio

    from react_tier.settings import AgentSettings

    endpoints = {field: {k: v for k, v in (("base_url", url), ("model", model)) if v}
                 for field, url, model in (("domain_llm", domain_url, domain_model),
                                           ("agent_llm", agent_url, agent_model))}
    settings = AgentSettings.load(config, max_steps=max_steps, deadline_s=deadline_s, draft_first=draft,
                                  always_search_first=search_first,
                                  **{field: values for field, values in endpoints.items() if values})
    asyncio.run(_ask(settings, question, as_json))


async def _ask(settings, question: str, as_json: bool) -> None:
    import logging

    from rich.console import Console

    from react_tier.agent import ReActAgent
    from react_tier.results import AnswerDelta, Done, StepFinished

    logging.getLogger("httpx2").setLevel(logging.WARNING)  # the openai client's HTTP library: one line per call
    console = Console(stderr=as_json, highlight=False)
    agent = ReActAgent.from_settings(settings)
    try:
        answering = False
        async for event in agent.stream(question):
            if as_json:
                if isinstance(event, Done):
                    print(event.result.model_dump_json(indent=2))
                continue
            if isinstance(event, StepFinished):
                step = event.step
                what = f"{step.tool}({step.tool_input})" if step.tool else ("turn" if step.error else "answer")
                status = f"[red]{step.error}[/red]" if step.error else "ok"
                console.print(f"[dim]step {step.index}: {what} — {status} ({step.latency_s:.2f}s)[/dim]")
            elif isinstance(event, AnswerDelta):
                if not answering:
                    console.print("[bold]Answer:[/bold] ", end="")
                    answering = True
                console.print(event.text, end="", markup=False)
            elif isinstance(event, Done):
                result = event.result
                console.print()
                for citation in result.citations:
                    console.print(f"  [{citation.id}] {citation.title} ({citation.source})", markup=False)
                usage = ", ".join(f"{tier} {u.prompt_tokens}+{u.completion_tokens} tok/{u.calls} calls"
                                  for tier, u in result.usage.items())
                console.print(f"[dim]finish_reason={result.finish_reason}; {usage}[/dim]")
    finally:
        await agent.aclose()
