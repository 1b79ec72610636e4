"""Answer-level evaluation (`make eval-answers`, issue 30): the knowledge base's question sets through the pipeline's
API, each answer scored exactly as the answer-quality canary scores it (react_tier/canary.py: evidence recall@5,
citation validity, grounding), beside the knowledge base's own retrieval recall@5 for the same questions.

    python -m benchmarks.eval_answers [--set dev --set heldout --set heldout30] [--limit N] [--concurrency 4]
        [--out benchmarks/results/answers] [--profile cpu-tiny-shared] [--url URL --api-key KEY]

The stack: the running one (its run state, ``$SUIQA_HOME/run/stack.json``, read as data: benchmarks sit below
stackctl), else this command starts ``suiqa up --profile PROFILE`` (default: the README's offline demo profile) and
stops it again (``suiqa down``) when it is done, also after a failure. Hold /tmp/suiqa-stack.lock around it when it
may start a stack (the make target does). Each question is one ``POST /v1/chat/completions`` with ``sui_cache:
off`` (a cached answer would not be a run); a 429 / 503 with Retry-After is retried twice, and a question that still
fails is a row with its error, scoring 0 and counted (the exit status is then 1).

Per answer (the canary's definitions): **evidence recall@5**: the first 5 distinct passages the run was shown (the
``[id]``s of its tool observations) cover every expected fact of the question (react_tier/knowledge/evaluation.py's
rule); **citation validity**: it cites at least one passage and every cited id is one the run observed and the
knowledge base holds; **grounding**: the answer's grounding score (react_tier/grounding.py). Beside it, **search
recall@5**: what the knowledge base's search alone ranks in its top 5 for the question's text (the rule of
benchmarks/knowledge_bench.py, same index and settings as the stack's agent); a question search found but the run
did not see is the agent's query-writing (or the observation's length limit), and the reverse is what the agent's
own queries added.

Writes ``answers.json`` (every row and every aggregate), ``report.md`` (per set and per shape: the three SLIs, n,
errors, p50/p99 latency, search recall@5) and ``answers.png`` into ``--out``. The report names the models that
served (the stack state's model folders and each vLLM tier's ``/v1/models`` roots) and the exact command. On the
tiny random-weight models the numbers check the plumbing, never quality; with real weights (SUIQA_DOMAIN_MODEL /
SUIQA_AGENT_MODEL, docs/benchmarks.md) the same command is the quality report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.knowledge_bench import QUESTION_SETS
from benchmarks.stats import distribution

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("benchmarks/results/answers")  # relative: the make target runs at the repository root
DEFAULT_PROFILE = "cpu-tiny-shared"  # the README's demo profile: the offline tiny models
SLIS = ("recall_at_5", "citation_validity", "grounding")
RETRIES = 2  # for a 429 / 503 that says when to come back (Retry-After)
TINY_NOTE = ("**Tiny random-weight models**: these numbers check the plumbing (the run, its forced search, the "
             "observed ids, the citations, the scoring), not answer quality. Grounding of a random model's prose is "
             "noise.")


class EvalError(RuntimeError):
    """The evaluation cannot run (no stack and none could be started, a bad question set): a one-line message."""


# ------------------------------------------------------------------------------------------------ question sets

def parse_sets(values: list[str] | None) -> dict[str, Path]:
    """``--set NAME`` (one of QUESTION_SETS) or ``--set NAME=PATH.jsonl``; none given: every known set."""
    if not values:
        return dict(QUESTION_SETS)
    sets: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep:
            sets[name] = Path(path)
        elif name in QUESTION_SETS:
            sets[name] = QUESTION_SETS[name]
        else:
            raise EvalError(f"unknown question set {name!r}: one of {', '.join(QUESTION_SETS)} or NAME=PATH.jsonl")
    return sets


def load_sets(sets: dict[str, Path], limit: int | None) -> dict[str, list]:
    """The questions of each set (the canary's loader: a missing or malformed file is a one-line error), the first
    ``limit`` of each. Question ids must be unique across the sets (each row is one answer)."""
    from react_tier.canary import CanaryError, load_canary_set

    loaded, seen = {}, {}
    for name, path in sets.items():
        try:
            questions = load_canary_set(path)
        except CanaryError as exc:
            raise EvalError(str(exc)) from None
        loaded[name] = questions[:limit] if limit else questions
        for q in loaded[name]:
            if q.id in seen:
                raise EvalError(f"question id {q.id!r} is in both {seen[q.id]} and {name}")
            seen[q.id] = name
    return loaded


# ------------------------------------------------------------------------------------------------ aggregation

def _block(report, search_rank: dict[str, int | None]) -> dict:
    """One group's numbers: the canary's SLIs, latency, search recall@5 of the same questions, and the gap."""
    ids = [r.id for r in report.rows]
    searched = {i for i in ids if search_rank.get(i) is not None and search_rank[i] < 5}
    seen = {r.id for r in report.rows if r.recall_at_5}
    answered = [len(r.observed) for r in report.rows if r.error is None]
    n = len(ids)
    return {**report.slis(), "search_recall_at_5": round(len(searched) / n, 4) if n else 0.0,
            "latency_s": distribution(r.latency_s for r in report.rows),
            "passages_seen": round(sum(answered) / len(answered), 2) if answered else None,
            "search_only": sorted(searched - seen), "agent_only": sorted(seen - searched)}


def summarise_set(questions: list, report, retrieval) -> dict:
    """A set's aggregates: ``all`` and ``by_shape`` blocks (:func:`_block`) and the knowledge base's recall@1/5/10
    of the same questions. ``report``: a CanaryReport over ``questions``; ``retrieval``: their RecallReport."""
    shape = {q.id: q.shape for q in questions}
    ranks = retrieval.first_hit_rank
    return {"questions": len(questions), "seconds": round(report.seconds, 2), "all": _block(report, ranks),
            "by_shape": {s: _block(r, ranks) for s, r in report.grouped(lambda row: shape[row.id]).items()},
            "search": {f"at_{k}": round(retrieval.recall(k), 4) for k in (1, 5, 10)}}


def rows_of(set_name: str, questions: list, report, retrieval, search_top: dict[str, list[str]]) -> list[dict]:
    """Every answer as one row (the canary's QuestionScore + set, shape, question and the search's view)."""
    by_id = {q.id: q for q in questions}
    rows = []
    for row in report.rows:
        rank = retrieval.first_hit_rank.get(row.id)
        q = by_id[row.id]
        rows.append({"set": set_name, "shape": q.shape, "question": q.question, **asdict(row),
                     "search_rank": rank, "search_hit_at_5": rank is not None and rank < 5,
                     "search_top5": search_top.get(q.question, [])})
    return rows


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table_row(name: str, b: dict) -> str:
    lat = b["latency_s"] or {}
    gap = f"{len(b['search_only'])} / {len(b['agent_only'])}"
    return (f"| {name} | {b['questions']} | {b['errors']} | {_f(b['recall_at_5'])} | {_f(b['search_recall_at_5'])} | "
            f"{gap} | {_f(b['passages_seen'], 1)} | {_f(b['citation_validity'])} | {_f(b['grounding'])} | "
            f"{_f(lat.get('p50'))} | {_f(lat.get('p99'))} |")


HEADER = ("| {what} | n | errors | evidence recall@5 (run) | search recall@5 (KB alone) | search-only / run-only | "
          "passages seen | citation validity | grounding | p50 s | p99 s |\n" + "|---" * 11 + "|")


def render_markdown(result: dict) -> str:
    """report.md from answers.json's content."""
    stack, sets = result["stack"], result["sets"]
    lines = ["# Answer-level evaluation (`make eval-answers`)", ""]
    if result["tiny"]:
        lines += [TINY_NOTE, ""]
    limit = f", the first {result['limit']} of each set" if result["limit"] else ""
    how = "started by this run and stopped after it" if stack["started"] else "already up"
    lines += [f"Command: `{result['command']}` ({result['time']}; {result['wall_s']:.0f} s, concurrency "
              f"{result['concurrency']}{limit}).", "",
              f"Stack: profile `{stack.get('profile')}` ({how}), API {stack['api']}.", "", "Models that served:", "",
              "| tier | served names | weights (folder) | random-weight build |", "|---|---|---|---|"]
    for role, tier in stack["models"].items():
        if role == "pipeline":
            continue
        roots = ", ".join(sorted({m.get("root") or "?" for m in tier.get("served") or []})) or tier.get("model", "?")
        names = ", ".join(m["id"] for m in tier.get("served") or []) or ", ".join(tier.get("served_model_name") or [])
        lines.append(f"| {role} | {names} | `{roots}` | {'yes' if tier.get('random_weights') else 'no'} |")
    pipeline = (stack["models"].get("pipeline") or {}).get("served") or []
    lines += [""] + [f"Pipeline API: `{m['id']}` ({json.dumps(m.get('sui') or {})})." for m in pipeline]
    agent = result.get("agent") or {}
    if agent:
        lines += ["", f"What bounds the passages a run sees (the agent's settings): a search shows `search_k` = "
                      f"{agent['search_k']} passages, an observation is cut to `max_observation_chars` = "
                      f"{agent['max_observation_chars']} characters, `max_steps` = {agent['max_steps']}, forced first "
                      f"search: {'yes' if agent['always_search_first'] else 'no'}. \"passages seen\" below is the "
                      "mean number of distinct passage ids an answered run was shown (up to 5 counted); where it is "
                      "below 5, search-only questions can be that limit rather than the agent's queries."]
    lines += [""] + [f"Note: {note}" for note in result.get("notes", [])] + [""]
    lines += ["Scoring: react_tier/canary.py, as `suiqa canary` (evidence recall@5: the first 5 distinct passages the "
              "run was shown cover every expected fact; citation validity: at least one citation, each observed and "
              "in the knowledge base; grounding: the mean grounding score of the answered questions). Search recall@5: "
              "the knowledge base's own top 5 for the question text (benchmarks/knowledge_bench.py's rule; same index "
              "and settings as the stack's agent). search-only / run-only: questions whose evidence only the search "
              "alone / only the run found in its first 5. Errors score 0 on recall and citations and count in n; "
              "latency is the request's, errors included.", "", "## Per set", "", HEADER.format(what="set")]
    for name, s in sets.items():
        lines.append(_table_row(name, s["all"]))
    lines += ["", "Knowledge base alone, recall@1 / @5 / @10: " + "; ".join(
        f"{name} {s['search']['at_1']:.3f} / {s['search']['at_5']:.3f} / {s['search']['at_10']:.3f}"
        for name, s in sets.items()) + "."]
    for name, s in sets.items():
        lines += ["", f"## {name} by shape", "", HEADER.format(what="shape")]
        lines += [_table_row(shape, b) for shape, b in s["by_shape"].items()]
        if s["all"]["search_only"]:
            lines += ["", f"Search alone had the evidence in its top 5, the run did not see it: "
                          f"{', '.join(s['all']['search_only'])}."]
        if s["all"]["agent_only"]:
            lines += ["", f"The run saw evidence the search alone did not rank in its top 5: "
                          f"{', '.join(s['all']['agent_only'])}."]
    errors = [r for r in result["rows"] if r["error"]]
    lines += ["", "## Errors", ""]
    lines += [f"- {r['set']} {r['id']}: {r['error']}" for r in errors] or ["None: every question was answered."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """One panel per set: per shape (and all) the run's evidence recall@5 beside the search's, citation validity
    and grounding."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = result["sets"]
    bars = [("search_recall_at_5", "search recall@5 (KB alone)"), ("recall_at_5", "evidence recall@5 (run)"),
            ("citation_validity", "citation validity"), ("grounding", "grounding")]
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4), sharey=True, squeeze=False)
    for ax, (name, s) in zip(axes[0], sets.items(), strict=True):
        groups = [*s["by_shape"].items(), ("ALL", s["all"])]
        width = 0.8 / len(bars)
        for i, (key, label) in enumerate(bars):
            ax.bar([x + i * width for x in range(len(groups))], [b[key] for _, b in groups], width, label=label)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(groups))],
                      [f"{g}\n(n={b['questions']})" for g, b in groups], fontsize=8)
        ax.set_title(f"{name}: {s['all']['questions']} questions, {s['all']['errors']} errors", fontsize=9)
        ax.set_ylim(0, 1.05)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(bars), fontsize=8)
    title = "answer-level evaluation" + (" - TINY RANDOM MODELS: plumbing check, not quality" if result["tiny"]
                                         else "")
    fig.suptitle(f"{title}\n{result['command']}", fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # the legend below the panels, clear of the bars
    fig.savefig(path, dpi=110)


# ------------------------------------------------------------------------------------------------ the stack

def read_state() -> dict | None:
    from suiqa.paths import run_dir

    path = run_dir() / "stack.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _stack_cli(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """`suiqa ARGS` as a process (benchmarks do not import stackctl); its log goes to our stderr."""
    return subprocess.run([sys.executable, "-m", "stackctl.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                          text=True, timeout=timeout)


def start_stack(profile: str) -> dict:
    print(f"[eval-answers] no stack is up: suiqa up --profile {profile}", file=sys.stderr)
    up = _stack_cli("up", "--profile", profile, "--json", timeout=900)
    state = read_state()
    if up.returncode != 0 or not state or "urls" not in state:
        stop_stack()
        raise EvalError(f"`suiqa up --profile {profile}` failed (exit {up.returncode}); its log is above")
    return state


def stop_stack() -> None:
    down = _stack_cli("down", timeout=300)
    print(f"[eval-answers] suiqa down: exit {down.returncode}", file=sys.stderr)


def api_settings(state: dict | None, api_config: str | None):
    """The stack's ApiSettings as its replicas load them: its API profile (recorded in the run state by `suiqa
    up`) under the environment (SUIQA_API_* / SUIQA_REACT_* / SUIQA_KB_*)."""
    from deployments.config import PROFILES_DIR, ApiSettings
    from suiqa.settings import resolve_profile

    name = api_config or (state or {}).get("api_config")
    return ApiSettings.load(resolve_profile(name, PROFILES_DIR, "API") if name else None)


def api_key_for(explicit: str | None, settings) -> str | None:
    """--api-key, else SUIQA_CANARY_API_KEY (as `suiqa canary`), else the first key the API itself is configured
    with (SUIQA_API_API_KEYS / its key file), else none (the open demo profile)."""
    if explicit:
        return explicit
    if os.environ.get("SUIQA_CANARY_API_KEY"):
        return os.environ["SUIQA_CANARY_API_KEY"]
    from deployments.auth import KeyRing

    ring = KeyRing.from_settings(settings)
    return ring.keys[0].secret.decode() if ring else None


def served_models(state: dict | None, api: str, api_key: str | None) -> dict[str, dict]:
    """What served: the pipeline's /v1/models, each vLLM tier's model folder (run state) and its /v1/models
    (id + root), and whether each is a random-weight build."""
    from serving.config import ServingProfile
    from suiqa.models import is_random_build

    def models_of(url: str, key: str | None) -> list[dict]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        resp = httpx.get(f"{url}/models", headers=headers, timeout=10)
        resp.raise_for_status()
        return [{k: m.get(k) for k in ("id", "root", "sui") if m.get(k) is not None} for m in resp.json()["data"]]

    out: dict[str, dict] = {}
    try:
        out["pipeline"] = {"served": models_of(api, api_key)}
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        out["pipeline"] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    for role, server in ((state or {}).get("servers") or {}).items():
        profile = ServingProfile.model_validate(server)
        tier: dict[str, Any] = {"model": profile.model_path, "served_model_name": profile.served_model_name}
        url = ((state or {}).get("urls") or {}).get(f"vllm_{role}")
        if url:
            try:
                tier["served"] = models_of(url, os.environ.get(f"SUIQA_{role.upper()}_API_KEY"))
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                tier["error"] = f"{type(exc).__name__}: {exc}"[:200]
        roots = {m.get("root") for m in tier.get("served") or [] if m.get("root")} or {profile.model_path}
        tier["random_weights"] = any(is_random_build(root) for root in roots)
        out[role] = tier
    return out


# ------------------------------------------------------------------------------------------------ the run

async def ask_all(api: str, model: str, api_key: str | None, questions: list, kb, concurrency: int,
                  timeout_s: float, progress=None, transport: httpx.AsyncBaseTransport | None = None):
    """The canary's run_canary over HTTP, ``concurrency`` questions in flight (``transport``: tests only)."""
    from react_tier.canary import run_canary

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, headers=headers, limits=limits, transport=transport) as http:
        async def ask(question: str) -> dict:
            body = {"model": model, "sui_cache": "off", "messages": [{"role": "user", "content": question}]}
            for attempt in range(RETRIES + 1):
                resp = await http.post(f"{api}/chat/completions", json=body)
                retry_after = resp.headers.get("retry-after")
                if resp.status_code in (429, 503) and retry_after and attempt < RETRIES:
                    await asyncio.sleep(min(float(retry_after), 30.0))
                    continue
                if resp.status_code != 200:
                    raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:160]}")
                return resp.json()["sui"]
            raise AssertionError("unreachable")

        return await run_canary(questions, ask, kb, progress=progress, concurrency=concurrency)


def evaluate_set(name: str, questions: list, kb, target: dict, args) -> tuple[dict, list[dict]]:
    """The run's answers and the search alone for one set: (aggregates, rows)."""
    from tqdm import tqdm

    from react_tier.knowledge.evaluation import evaluate

    top: dict[str, list[str]] = {}

    def search(query: str, k: int):
        found = kb.search(query, k)
        top[query] = [p.id for p in found[:5]]
        return found

    retrieval = evaluate(kb, questions, ks=(1, 5, 10), search=search)
    with tqdm(total=len(questions), desc=name, unit="q", disable=None) as bar:
        report = asyncio.run(ask_all(target["api"], target["model"], target["api_key"], questions, kb,
                                     args.concurrency, args.timeout, progress=lambda: bar.update(1)))
    if len(report.rows) != len(questions):  # run_canary gives every question a row; never report fewer
        raise AssertionError(f"{name}: {len(report.rows)} rows for {len(questions)} questions")
    return summarise_set(questions, report, retrieval), rows_of(name, questions, report, retrieval, top)


def run(args, argv: list[str]) -> dict:
    from react_tier.knowledge import KnowledgeBase

    paths = parse_sets(args.set)
    sets = load_sets(paths, args.limit)  # a bad set: one line, before a stack starts
    started_at, t0 = datetime.now(UTC), time.perf_counter()
    state = None if args.url else read_state()
    started = False
    if args.url is None and (state is None or "urls" not in state):
        if state is not None:
            raise EvalError("a stack is partly up (no URLs in its run state): `suiqa down` first")
        state, started = start_stack(args.profile), True
    try:
        settings = api_settings(state, args.api_config)
        api = args.url or state["urls"]["api"]
        key = api_key_for(args.api_key, settings)
        target = {"api": api.rstrip("/"), "api_key": key,
                  "model": ((state or {}).get("urls") or {}).get("model") or settings.served_model_name}
        models = served_models(state, target["api"], key)
        kb = KnowledgeBase.load(settings.agent.knowledge, progress=sys.stderr.isatty())
        results, rows = {}, []
        for name, questions in sets.items():
            results[name], set_rows = evaluate_set(name, questions, kb, target, args)
            rows += set_rows
    finally:
        if started:
            stop_stack()
    notes = []
    if state is None:
        notes.append("no run state (--url): the vLLM tiers' models are not known here, only the pipeline's.")
    elif os.environ.get("SUIQA_AGENT_MODEL") and "agent" not in (state.get("servers") or {}):
        notes.append("SUIQA_AGENT_MODEL is set, but this stack serves the agent role from the domain process "
                     "(a shared profile): the agent ran on the domain model. Use --profile gpu or cpu-tiny.")
    if state is not None and not state.get("api_config") and not args.api_config:
        notes.append("the run state names no API profile: the knowledge settings are the defaults + environment.")
    tiers = [m for role, m in models.items() if role != "pipeline"]
    pipeline_tiny = any((m.get("sui") or {}).get("tiny_models") for m in models["pipeline"].get("served") or [])
    return {"command": "python -m benchmarks.eval_answers" + (" " + shlex.join(argv) if argv else ""),
            "time": started_at.isoformat(timespec="seconds"), "wall_s": round(time.perf_counter() - t0, 1),
            "concurrency": args.concurrency, "limit": args.limit,
            "tiny": any(m.get("random_weights") for m in tiers) or (not tiers and pipeline_tiny),
            "stack": {"profile": (state or {}).get("profile"), "started": started, "api": target["api"],
                      "api_config": args.api_config or (state or {}).get("api_config"), "models": models},
            "agent": {k: getattr(settings.agent, k) for k in ("always_search_first", "search_k",
                                                              "max_observation_chars", "max_steps")},
            "knowledge": {"index": str(kb.index_dir),
                          "settings": json.loads(settings.agent.knowledge.model_dump_json(
                              exclude={"data_dir", "cache_dir"}))},
            "notes": notes, "question_sets": {name: str(path) for name, path in paths.items()},
            "sets": results, "rows": rows}


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "answers.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    (out / "report.md").write_text(render_markdown(result), encoding="utf-8")
    plot(result, out / "answers.png")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", help=f"a question set: {', '.join(QUESTION_SETS)} or NAME=PATH.jsonl "
                    "(repeatable; default: all three)")
    ap.add_argument("--limit", type=int, default=None, help="the first N questions of each set")
    ap.add_argument("--concurrency", type=int, default=4, help="questions in flight (default 4)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    ap.add_argument("--profile", default=DEFAULT_PROFILE, help="stack profile to start when none is up "
                    "(default %(default)s: the tiny models; gpu or cpu-tiny for SUIQA_DOMAIN_MODEL/SUIQA_AGENT_MODEL)")
    ap.add_argument("--url", default=None, help="the pipeline API's /v1 URL (default: the running stack's)")
    ap.add_argument("--api-key", default=None, help="bearer key (default: SUIQA_CANARY_API_KEY, else the API's "
                    "first configured key)")
    ap.add_argument("--api-config", default=None, help="API profile for the knowledge settings (default: the "
                    "one the running stack recorded)")
    ap.add_argument("--timeout", type=float, default=180.0, help="per request, seconds (default %(default)s)")
    args = ap.parse_args(argv)
    if args.concurrency < 1 or (args.limit is not None and args.limit < 1):
        ap.error("--concurrency and --limit must be >= 1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        result = run(args, argv)
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write(result, args.out)
    for name, s in result["sets"].items():
        a = s["all"]
        print(f"{name:10s} n={a['questions']:3d} errors={a['errors']}  evidence recall@5 {a['recall_at_5']:.3f} "
              f"(search alone {a['search_recall_at_5']:.3f})  citation validity {a['citation_validity']:.3f}  "
              f"grounding {a['grounding']:.3f}")
    print(f"wrote {args.out}/answers.json, report.md, answers.png" + ("  (tiny random models: a plumbing check, "
                                                                        "not quality)" if result["tiny"] else ""))
    errors = sum(s["all"]["errors"] for s in result["sets"].values())
    if errors:
        print(f"{errors} questions failed (their rows and errors are in answers.json and report.md)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
