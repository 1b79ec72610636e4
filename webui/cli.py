"""`suiqa webui`: start the web chat (Streamlit) against the running stack's API.

The endpoint comes from the stack's run state (``$SUIQA_HOME/run/stack.json``, what `suiqa status` prints) unless
given. By default Streamlit runs in the background in its own process group, recorded in
``$SUIQA_HOME/run/webui.json`` (pid, pgid, url) so `suiqa down` stops it with the rest; ``--foreground`` keeps it in
the terminal instead. Start-up to a healthy page takes ~3-5 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer

APP = Path(__file__).with_name("app.py")
STATE_FILE = "webui.json"


def register(app: typer.Typer) -> None:
    app.command("webui")(webui)


def webui(
    port: int | None = typer.Option(None, help="Streamlit port (default 8501, or SUIQA_WEBUI_PORT)."),
    host: str | None = typer.Option(None, help="Bind address (default 127.0.0.1)."),
    endpoint: str | None = typer.Option(None, help="The pipeline API's OpenAI base URL; default: the running "
                                                   "stack's (`suiqa status`)."),
    foreground: bool = typer.Option(False, "--foreground", help="Run in this terminal instead of the background."),
    wait_s: float = typer.Option(60, help="How long to wait for the page to answer."),
) -> None:
    """Start the web chat against the running stack; prints its URL. `suiqa down` stops it."""
    from suiqa.errors import SuiqaError
    from webui.settings import WebUISettings

    found = endpoint or stack_endpoint()
    settings = WebUISettings.load(port=port, host=host, endpoint=found)
    if found is None:
        typer.echo(f"note: no stack is up (`suiqa up`); the page will use {settings.endpoint} and say when it "
                   "cannot reach it", err=True)
    running = read_state()
    if running and _alive(running["pgid"]):
        raise SuiqaError(f"the web UI already runs at {running['url']} (pid {running['pid']}; `suiqa down` "
                         "stops it)")
    from suiqa.net import port_in_use

    if port_in_use(settings.host, settings.port):
        raise SuiqaError(f"port {settings.port} on {settings.host} is in use; pick another with --port")
    cmd = streamlit_command(settings)
    env = webui_env(settings)
    url = f"http://{settings.host}:{settings.port}"
    if foreground:
        typer.echo(f"web UI: {url} (API {settings.endpoint}); Ctrl-C stops it")
        raise typer.Exit(subprocess.call(cmd, env=env))
    from suiqa.paths import logs_dir, run_dir

    log_path = logs_dir() / "webui.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    state = {"pid": proc.pid, "pgid": proc.pid, "url": url, "endpoint": settings.endpoint, "log": str(log_path)}
    (run_dir() / STATE_FILE).write_text(json.dumps(state))
    try:
        wait_healthy(url, proc, wait_s, log_path)
    except BaseException:
        stop()
        raise
    typer.echo(f"web UI: {url} (API {settings.endpoint}; log {log_path}; `suiqa down` stops it)")


def stack_endpoint() -> str | None:
    """The running stack's API base URL, from the run state `suiqa up` wrote (None when no stack is up)."""
    from suiqa.paths import run_dir

    path = run_dir() / "stack.json"
    if not path.is_file():
        return None
    return (json.loads(path.read_text()).get("urls") or {}).get("api")


def streamlit_command(settings) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless=true",
            f"--server.port={settings.port}", f"--server.address={settings.host}",
            "--browser.gatherUsageStats=false", "--server.fileWatcherType=none", "--global.developmentMode=false",
            "--client.toolbarMode=minimal"]


def webui_env(settings) -> dict[str, str]:
    """The page reads its defaults from SUIQA_WEBUI_* (the same settings model); the repo must be importable
    (Streamlit puts only the script's folder on sys.path)."""
    from suiqa.paths import REPO_ROOT

    env = {**os.environ, "SUIQA_WEBUI_ENDPOINT": settings.endpoint}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    """Streamlit's own health route answers 200, or a one-line error (it exited, or it is too slow)."""
    from suiqa.net import wait_http_ok

    wait_http_ok(f"{url}/_stcore/health", timeout_s, 0.3, proc=proc, log=log_path)


def read_state() -> dict | None:
    from suiqa.paths import run_dir

    path = run_dir() / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop() -> bool:
    """Stop the background web UI (what `suiqa down` does through the run state). True if one was running."""
    from suiqa.net import stop_recorded
    from suiqa.paths import run_dir

    return stop_recorded(run_dir() / STATE_FILE, grace_s=10) is not None
