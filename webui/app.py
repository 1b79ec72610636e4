"""The Streamlit page (``streamlit run webui/app.py``; `suiqa webui` starts it). Rendering only: the stream is read
by webui.client, folded by webui.events. The page talks to nothing but the pipeline API.

While a request runs the page polls the reader thread every 0.25 s, so the elapsed time and the "slow" banner
update even before the first byte; the answer is redrawn at most every 0.1 s (tiny models stream hundreds of
deltas a second, and each redraw is a websocket message to the browser).
"""

from __future__ import annotations

import time

import streamlit as st

from webui import events as ev
from webui.client import RequestOptions, StreamReader, list_models, make_client, stream_events
from webui.settings import WebUISettings

POLL_S = 0.25
REDRAW_S = 0.1
DEFAULT_MODEL = "sui-react"


@st.cache_resource
def defaults() -> WebUISettings:
    return WebUISettings.load()


@st.cache_data(ttl=10, show_spinner=False)
def probe(endpoint: str, api_key: str, connect_timeout_s: float) -> tuple[list[dict], ev.ErrorView | None]:
    """``GET /v1/models``: the model cards (tiny-models flag), or why the API cannot be used right now."""
    try:
        return list_models(make_client(endpoint, api_key, timeout_s=10, connect_timeout_s=connect_timeout_s)), None
    except Exception as exc:  # noqa: BLE001 - shown as a banner
        return [], ev.error_of(exc, endpoint, 10)


def sidebar(cfg: WebUISettings) -> dict:
    with st.sidebar:
        st.header("Connection")
        endpoint = st.text_input("Endpoint (OpenAI base URL)", value=cfg.endpoint, key="endpoint").strip()
        api_key = st.text_input("API key (sent as Bearer)", value=cfg.api_key.get_secret_value(), type="password",
                                key="api_key")
        st.header("Answer")
        max_steps = st.number_input("Max steps", 1, 20, cfg.max_steps, key="max_steps")
        max_tokens = st.number_input("Max tokens", 1, 8192, cfg.max_tokens, key="max_tokens")
        temperature = st.slider("Temperature", 0.0, 2.0, float(cfg.temperature), 0.05, key="temperature")
        system_prompt = st.text_area("System prompt (optional)", value=cfg.system_prompt, key="system_prompt")
        if st.button("New conversation", key="new_chat"):
            st.session_state.turns = []
    return {"endpoint": endpoint, "api_key": api_key, "system_prompt": system_prompt,
            "options": RequestOptions(max_steps=int(max_steps), max_tokens=int(max_tokens),
                                      temperature=float(temperature))}


def show_banner(banner: ev.Banner) -> None:
    body = f"**{banner.title}** — {ev.md_escape(banner.text)}" if banner.text else f"**{banner.title}**"
    {"error": st.error, "warning": st.warning, "info": st.info}[banner.level](body)


def html(css_class: str, text: str) -> None:
    st.markdown(ev.html_block(css_class, text), unsafe_allow_html=True)


def render_turn(turn: ev.TurnView, slow_after_s: float, now: float) -> None:
    for banner in ev.banners(turn, now, slow_after_s):
        show_banner(banner)
    if turn.steps:
        with st.expander(f"Agent steps ({len(turn.steps)})", expanded=True):
            for step in turn.ordered_steps:
                html("sui-step", step.title)
                if step.thought:
                    html("sui-thought", f"Thought: {step.thought}")
                if step.tool:
                    html("sui-input", f"{step.tool}({step.input_text})")
                if step.observation:
                    html("sui-observation", step.observation)
                if step.error:
                    html("sui-step-error", f"error: {step.error}")
    if turn.answer:
        html("sui-answer", turn.answer + ("" if turn.done else " ▌"))
    elif not turn.done:
        st.caption(f"waiting for the answer… {now - turn.started_at:.0f} s")
    if turn.citations:
        with st.expander(f"Sources ({len(turn.citations)})", expanded=True):
            for citation in turn.citations:
                html("sui-citation", citation.label)
                if citation.text:
                    html("sui-passage", citation.text)
                else:
                    st.caption("(this API version sends no passage text)")
    if turn.done:
        html("sui-footer", ev.timings_line(turn))


CSS = """<style>
.sui-step {font-weight: 600; margin-top: .4rem}
.sui-thought {font-size: .9rem}
.sui-input {font-family: monospace; font-size: .85rem; background: #f4f4f4; padding: .1rem .4rem}
.sui-observation, .sui-passage {border-left: 3px solid #d9a441; padding: .2rem .6rem; font-size: .9rem;
  color: #444; white-space: normal}
.sui-citation {font-weight: 600}
.sui-answer {font-size: 1.05rem; line-height: 1.6}
.sui-step-error {color: #b00020; font-size: .85rem}
.sui-footer {font-size: .8rem; color: #777}
</style>"""


def ask(question: str, conf: dict, cfg: WebUISettings, model: str) -> ev.TurnView:
    turns: list[ev.TurnView] = st.session_state.turns
    messages = ev.conversation(turns, question, conf["system_prompt"])
    turn = ev.TurnView(question=question, started_at=time.monotonic())
    with st.chat_message("user"):
        html("sui-question", question)
    with st.chat_message("assistant"):
        box = st.empty()
        client = make_client(conf["endpoint"], conf["api_key"], cfg.request_timeout_s, cfg.connect_timeout_s)
        reader = StreamReader(stream_events(client, model, messages, conf["options"]))
        drawn_at = 0.0
        try:
            while not turn.done:
                item = reader.get(POLL_S)
                now = time.monotonic()
                if item is not None:
                    if item.event is not None:
                        ev.apply(turn, item.event, item.at)
                    elif item.error is not None:
                        ev.apply_exception(turn, item.error, item.at, conf["endpoint"], cfg.request_timeout_s)
                    elif item.end:
                        ev.finish(turn, item.at)
                if turn.done or now - drawn_at >= REDRAW_S:
                    with box.container():
                        render_turn(turn, cfg.slow_after_s, now)
                    drawn_at = now
        finally:
            reader.close()
    return turn


def main() -> None:
    st.set_page_config(page_title="Sui QA · 隋朝问答", page_icon="🏯")
    cfg = defaults()
    st.markdown(CSS, unsafe_allow_html=True)
    st.session_state.setdefault("turns", [])
    conf = sidebar(cfg)
    st.title("隋朝问答 · Sui dynasty QA")
    models, down = probe(conf["endpoint"], conf["api_key"], cfg.connect_timeout_s)
    if down is not None:
        show_banner(ev.Banner("error", ev.ERROR_TITLES[down.kind],
                              (f"HTTP {down.status}: " if down.status else "") + down.message))
    if note := ev.tiny_models_note(models):
        st.info(note)
    model = cfg.model or (models[0]["id"] if models else DEFAULT_MODEL)
    now = time.monotonic()
    for turn in st.session_state.turns:
        with st.chat_message("user"):
            html("sui-question", turn.question)
        with st.chat_message("assistant"):
            render_turn(turn, cfg.slow_after_s, now)
    if question := st.chat_input("Ask about the Sui dynasty, e.g. 隋炀帝为什么开凿大运河？"):
        turn = ask(question, conf, cfg, model)
        st.session_state.turns.append(turn)
        if turn.error is not None:
            probe.clear()  # the next redraw re-checks the API


main()
