"""The web chat end to end in a real browser: the stack from `suiqa up --profile cpu-tiny-shared`, the page from
`suiqa webui`, headless Chromium from Debian's `chromium` package driven by Playwright for Python (no browser
download). Asks a question and checks that steps render while the answer is still running, that the streamed
answer, the steps and the citations (with their passages, or the id/title placeholder where the API sends no
text) render; then stops the API with `suiqa down` and checks the error banner. Screenshots go to
var/test-artifacts/webui/ (webui/screenshot.png in the README is the answer screenshot of a run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SUIQA = [sys.executable, "-m", "stackctl.cli"]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "var" / "test-artifacts" / "webui"
QUESTION = "隋炀帝为什么开凿大运河？"
ANSWER_TIMEOUT_S = 240


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_webui(env: dict[str, str], *args: str) -> dict:
    """`suiqa webui` in the background; returns its run state (pid, url)."""
    out = subprocess.run([*SUIQA, "webui", "--port", str(free_port()), *args], env=env, check=False, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    state = json.loads((Path(env["SUIQA_HOME"]) / "run" / "webui.json").read_text())
    assert state["url"] in out.stdout
    return state


def stop_webui(state: dict) -> None:
    from suiqa.net import stop_process_group

    stop_process_group(state["pgid"], grace_s=10)


@pytest.fixture(scope="module")
def web(stack):
    """The page as `make demo-web` starts it: endpoint read from the stack's run state."""
    urls, env = stack
    state = start_webui(env)
    assert state["endpoint"] == urls["api"]
    yield state
    stop_webui(state)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the set-up must install Debian's `chromium` package")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.goto(url)
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=60_000)
    return page


def ask(page, question: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")


def answered(page, question: str) -> tuple:
    """Ask and wait for the complete answer; returns (the assistant message, the most steps seen while it ran)."""
    ask(page, question)
    message = page.get_by_test_id("stChatMessage").last
    steps_while_running, deadline = 0, time.monotonic() + ANSWER_TIMEOUT_S
    while message.locator(".sui-footer").count() == 0:  # the footer shows once the answer is complete
        text = message.inner_text()
        if time.monotonic() > deadline:
            page.screenshot(path=str(ARTIFACTS / "timeout.png"), full_page=True)
            pytest.fail(f"no complete answer after {ANSWER_TIMEOUT_S} s; the page shows:\n{text[-1500:]}")
        steps_while_running = max(steps_while_running, message.locator(".sui-step").count())
        time.sleep(0.1)
    return message, steps_while_running


def readme_screenshot(page, message, path: Path) -> None:
    """A small PNG for the README: the whole conversation in one tall viewport (Streamlit scrolls inside the
    page, so a full-page screenshot would show only the viewport), scaled to 80% and quantised to 64 colours."""
    from PIL import Image

    size = page.viewport_size
    page.set_viewport_size({"width": 1100, "height": 2400})
    time.sleep(1)
    box = message.bounding_box()
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    image = Image.open(path).convert("RGB")
    image = image.crop((0, 0, image.width, min(image.height, int(box["y"] + box["height"]) + 24)))
    image = image.resize((int(image.width * 0.8), int(image.height * 0.8)), Image.LANCZOS)
    image.quantize(colors=64).save(path, optimize=True)


def test_a_question_streams_steps_and_the_answer(stack, web, browser):
    urls, _ = stack
    page = open_page(browser, web["url"])
    cards = httpx.get(urls["api"] + "/models", timeout=30).json()["data"]
    tiny = (cards[0].get("sui") or {}).get("tiny_models")
    message, steps_while_running = answered(page, QUESTION)
    page.screenshot(path=str(ARTIFACTS / "answer-full.png"), full_page=True)
    readme_screenshot(page, message, ARTIFACTS / "screenshot.png")
    assert steps_while_running >= 1, "no step was shown before the answer completed"
    assert page.get_by_test_id("stAlertContentError").count() == 0, page.get_by_test_id("stAlert").all_inner_texts()
    answer = message.locator(".sui-answer").inner_text().strip()
    assert answer and "▌" not in answer
    steps = message.locator(".sui-step").all_inner_texts()
    assert steps and steps[0].startswith("Step ") and not any("running" in s for s in steps)
    footer = message.locator(".sui-footer").inner_text()
    assert "first token" in footer and "total" in footer and f"{len(steps)} step" in footer
    if "finish_reason=degraded" in footer:
        assert message.get_by_text("Degraded answer").count() == 1
    if tiny is not None:  # the models card carries the flag (new API): the page says so exactly when it is set
        assert page.get_by_text("random-weight tiny models").count() == (1 if tiny else 0)


def test_citations_render_with_their_passages(stack, web, browser):
    page = open_page(browser, web["url"])
    message, _ = answered(page, QUESTION)
    footer = message.locator(".sui-footer").inner_text()
    citations = message.locator(".sui-citation").all_inner_texts()
    assert citations, f"the API sent no citations for this answer ({footer})"
    assert all(c.startswith("[") for c in citations)
    page.screenshot(path=str(ARTIFACTS / "citations.png"), full_page=True)
    passages = message.locator(".sui-passage").all_inner_texts()
    placeholders = message.get_by_text("(this API version sends no passage text)").count()
    assert len(passages) + placeholders == len(citations) and all(p.strip() for p in passages)


def test_with_the_api_stopped_the_page_shows_the_error_banner(stack, web, browser, tmp_path):
    """Stops the session's shared stack: this module is the last one that uses it (files run in name order), and
    the session fixture's own `suiqa down` then finds nothing left and checks that no process remains."""
    urls, env = stack
    # A second page in its own SUIQA_HOME, so `suiqa down` (which also stops the stack's own page) leaves it up.
    own = start_webui({**env, "SUIQA_HOME": str(tmp_path)}, "--endpoint", urls["api"])
    try:
        down = subprocess.run([*SUIQA, "down"], env=env, check=False, cwd=REPO, capture_output=True, text=True,
                              timeout=180)
        assert down.returncode == 0, down.stderr
        assert not (Path(env["SUIQA_HOME"]) / "run" / "webui.json").exists(), "suiqa down did not stop the web UI"
        time.sleep(1)
        assert not _alive(web["pid"]), "suiqa down left the web UI running"
        page = open_page(browser, own["url"])
        ask(page, QUESTION)
        banner = page.get_by_test_id("stChatMessage").nth(1).get_by_test_id("stAlert")
        banner.first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "api-down.png"), full_page=True)
        text = banner.first.inner_text()
        assert "The API is down" in text and urls["api"] in text, text
    finally:
        stop_webui(own)
