"""stackctl/stack.py without starting anything (in the mutation set since issue #25): `suiqa up`'s order,
checks and run state, its clean-up on failure, the Ray head's command, the Serve deployment, the Prometheus
scrape targets and `suiqa down`. Every process, Ray and Serve are fakes; the real stack is
tests/integration's."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import pytest

from stackctl import stack, tier_keys
from suiqa.errors import SuiqaError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SUIQA_HOME", str(tmp_path))
    monkeypatch.setattr(tier_keys, "ITERATIONS", 1000)
    for name in ("SUIQA_DOMAIN_API_KEY", "SUIQA_AGENT_API_KEY", "SUIQA_API_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


class Servers:
    """VLLMServer stand-in: records the profiles started and the order of calls."""

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def __call__(self, profile):
        calls = self.calls

        class Server:
            def start(self):
                calls.append(("vllm start", profile.role, profile.device))
                return self

            def wait_ready(self):
                calls.append(("vllm ready", profile.role))

        return Server()


def _state() -> dict:
    return json.loads(stack._state_path().read_text())


@pytest.fixture
def fake_up(home, monkeypatch):
    """Everything `up` starts, faked; returns the list of calls in order. Each fake also notes what the run
    state said when it was called (``states``: the state `suiqa down` would find if `up` died there)."""
    calls: list = []
    calls_states: list = []
    monkeypatch.setattr(stack, "VLLMServer", Servers(calls))
    monkeypatch.setattr(stack, "port_in_use",
                        lambda host, port: calls_states.append(("port", host, port)) and False)

    def start_ray(s):
        calls.append(("ray", s.ray_port))
        calls_states.append(("ray", _state()))
        return f"127.0.0.1:{s.ray_port}"

    def deploy_app(address, settings):
        calls.append(("deploy", address))
        calls_states.append(("deploy", _state(), settings))

    def load(knowledge, progress):
        calls.append(("kb",))
        calls_states.append(("kb", knowledge, progress))

    monkeypatch.setattr(stack, "start_ray", start_ray)
    monkeypatch.setattr(stack, "deploy_app", deploy_app)
    monkeypatch.setattr(stack, "wait_ready", lambda url, timeout: calls.append(("ready", url, timeout)))
    monkeypatch.setattr(stack, "start_prometheus", lambda s, targets: calls.append(("prometheus", targets))
                        or calls_states.append(("prometheus", s)) or {"url": "http://127.0.0.1:9090"})
    monkeypatch.setattr(stack, "down", lambda: calls.append(("down",)) or [])
    from react_tier.knowledge import KnowledgeBase

    monkeypatch.setattr(KnowledgeBase, "load", staticmethod(load))
    monkeypatch.setattr(stack, "_seen", calls_states, raising=False)
    return calls


class _Stderr(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_up_starts_in_order_and_records_what_it_started(fake_up, home, monkeypatch, tty):
    monkeypatch.setattr(sys, "stderr", _Stderr(tty))  # the knowledge base's progress bars: on a terminal only
    urls = stack.up(stack.load_stack("cpu-tiny", build_tiny_models=False, ready_timeout_s=7))
    assert fake_up == [("vllm start", "domain", "cpu"), ("vllm start", "agent", "cpu"), ("ray", 6390),
                       ("kb",), ("deploy", "127.0.0.1:6390"), ("vllm ready", "domain"),
                       ("vllm ready", "agent"), ("ready", "http://127.0.0.1:8080/ready", 7)]
    local = "http://127.0.0.1"
    assert urls == {"api": f"{local}:8080/v1", "model": "sui-react",
                    "auth": "OPEN (demo profile: no API keys)", "metrics_ray": f"{local}:8090/metrics",
                    "metrics_pipeline": f"{local}:8091/metrics",
                    "vllm_domain": f"{local}:8000/v1", "vllm_agent": f"{local}:8001/v1",
                    "logs_pipeline": str(home / "logs" / "pipeline.jsonl")}
    state = json.loads((home / "run" / "stack.json").read_text())
    assert state["profile"] == "cpu-tiny" and state["ray"] is True and state["urls"] == urls
    assert set(state["servers"]) == {"domain", "agent"} and state["servers"]["agent"]["port"] == 8001
    assert state["api_keys"] == {"domain": None, "agent": None}
    assert Path(state["api_config"]).parts[-3:] == ("deployments", "profiles", "api-cpu-tiny.yaml")  # resolved
    assert stack.status() == state and stack.pipeline_metrics_dir().is_dir()
    seen = {entry[0]: entry[1:] for entry in stack._seen}
    assert [e[1:] for e in stack._seen if e[0] == "port"] == [("127.0.0.1", 8080), ("127.0.0.1", 8091)]
    servers = {"profile": "cpu-tiny", "servers": state["servers"], "api_keys": state["api_keys"]}
    assert seen["ray"] == ({**servers, "ray": False},)  # before the Ray head: `down` must not run `ray stop`
    (at_deploy, settings), = [seen["deploy"]]
    assert at_deploy == {**servers, "ray": True} and settings.served_model_name == "sui-react"
    assert settings.agent.agent_llm.context_tokens == 4096  # the settings up computed, not a default
    knowledge, progress = seen["kb"]
    assert knowledge == settings.agent.knowledge and progress is tty
    tiers = state["servers"].values()
    assert all(isinstance(tier["port"], int) and isinstance(tier["model"], str) for tier in tiers)


def test_up_times_each_phase_in_the_log(fake_up, caplog, monkeypatch):
    import suiqa.models.builder

    monkeypatch.setattr(suiqa.models.builder, "build_models", lambda folder: None)
    with caplog.at_level("INFO", logger="stackctl.stack"):
        stack.up(stack.load_stack("cpu-tiny-shared", prometheus=True))
    phases = [r.getMessage().rsplit(": ", 1)[0] for r in caplog.records if r.getMessage().endswith(" s")]
    assert phases == ["tiny models", "ray head", "knowledge base", "serve app deployed", "vLLM ready",
                      "pipeline /ready", "prometheus ready"]


def test_up_with_keys_says_how_many_and_starts_prometheus_last(fake_up, home, monkeypatch):
    monkeypatch.setenv("SUIQA_API_API_KEYS", "a:sk-a-0123456789abcdef,b:sk-b-0123456789abcdef")
    urls = stack.up(stack.load_stack("cpu-tiny-shared", build_tiny_models=False, prometheus=True))
    assert urls["auth"] == "API keys (2)" and urls["prometheus"] == "http://127.0.0.1:9090"
    assert "vllm_agent" not in urls and fake_up[-1][0] == "prometheus"
    assert [e[1:] for e in stack._seen if e[0] == "port"] == [("127.0.0.1", 8080), ("127.0.0.1", 8091),
                                                              ("127.0.0.1", 9090)]
    assert [e[1].name for e in stack._seen if e[0] == "prometheus"] == ["cpu-tiny-shared"]
    assert list(urls) == ["api", "model", "auth", "metrics_ray", "metrics_pipeline", "vllm_domain",
                          "prometheus", "logs_pipeline"]
    assert fake_up[-1][1] == {"sui-pipeline": ["127.0.0.1:8091"], "vllm-domain": ["127.0.0.1:8000"],
                              "vllm-agent": ["127.0.0.1:8000"], "ray": ["127.0.0.1:8090"]}


def test_without_a_metrics_port_up_neither_checks_nor_lists_it(fake_up, monkeypatch):
    monkeypatch.setenv("SUIQA_API_METRICS_PORT", "0")
    urls = stack.up(stack.load_stack("cpu-tiny", build_tiny_models=False))
    assert "metrics_pipeline" not in urls and "prometheus" not in urls
    assert [e[1:] for e in stack._seen if e[0] == "port"] == [("127.0.0.1", 8080)]


def test_an_open_api_is_said_in_the_log(fake_up, caplog):
    with caplog.at_level("WARNING", logger="stackctl.stack"):
        stack.up(stack.load_stack("cpu-tiny", build_tiny_models=False))
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "the pipeline API is OPEN: profile 'cpu-tiny' requires no API key (demo only; never expose it)"]


def test_gpu_tiers_start_one_after_the_other(fake_up, monkeypatch):
    monkeypatch.setenv("SUIQA_API_API_KEYS", "a:sk-a-0123456789abcdef")
    gpu = stack.load_stack("gpu")
    stack.up(gpu)
    starts = [c for c in fake_up if c[0].startswith("vllm")][:4]
    assert starts == [("vllm start", "domain", "gpu"), ("vllm ready", "domain"),
                      ("vllm start", "agent", "gpu"), ("vllm ready", "agent")]


def test_a_failing_start_stops_everything_and_raises(fake_up, home, monkeypatch):
    def broken(address, settings):
        raise SuiqaError("Ray Serve could not start")

    monkeypatch.setattr(stack, "deploy_app", broken)
    with pytest.raises(SuiqaError, match="could not start"):
        stack.up(stack.load_stack("cpu-tiny", build_tiny_models=False))
    assert fake_up[-1] == ("down",)


@pytest.mark.parametrize(("busy", "message"), [(8080, "API port 8080 is already in use"),
                                               (8091, "pipeline metrics port 8091 is already in use"),
                                               (9090, "Prometheus port 9090 is already in use")])
def test_busy_ports_are_refused_before_anything_starts(fake_up, home, monkeypatch, busy, message):
    monkeypatch.setattr(stack, "port_in_use", lambda host, port: port == busy)
    with pytest.raises(SuiqaError, match=message):
        stack.up(stack.load_stack("cpu-tiny", build_tiny_models=False, prometheus=True))
    assert fake_up == [] and not (home / "run" / "stack.json").exists()


def test_a_second_up_and_missing_keys_are_refused_before_anything_starts(fake_up, home):
    (home / "run").mkdir(exist_ok=True)
    (home / "run" / "stack.json").write_text("{}")
    with pytest.raises(SuiqaError, match=r"^a stack is already up \(run `suiqa down` first\)$"):
        stack.up(stack.load_stack("cpu-tiny", build_tiny_models=False))
    (home / "run" / "stack.json").unlink()
    with pytest.raises(SuiqaError, match="requires API keys"):
        stack.up(stack.load_stack("cpu-tiny", build_tiny_models=False, api_config="api-gpu"))
    assert fake_up == []


def test_limits_the_context_cannot_hold_are_refused_before_anything_starts(fake_up, home, monkeypatch):
    monkeypatch.setenv("SUIQA_REACT_LIMITS__MAX_QUESTION_CHARS", "2000")
    with pytest.raises(SuiqaError, match="4096-token context"):
        stack.up(stack.load_stack("cpu-tiny", build_tiny_models=False))
    assert fake_up == [] and not (home / "run" / "stack.json").exists()


def test_the_tiny_models_are_built_when_asked(fake_up, monkeypatch):
    built = []
    import suiqa.models.builder

    monkeypatch.setattr(suiqa.models.builder, "build_models", lambda folder: built.append(folder))
    stack.up(stack.load_stack("cpu-tiny"))
    assert len(built) == 1 and built[0].name == "models"


def test_the_api_settings_point_at_the_stacks_servers(home):
    s = stack.load_stack("cpu-tiny")
    settings = stack.api_settings(s, stack.serving_profiles(s))
    agent = settings.agent
    assert (agent.domain_llm.base_url, agent.domain_llm.model, agent.domain_llm.context_tokens) == \
        ("http://127.0.0.1:8000/v1", "internlm2-chat-sui", 2048)
    assert (agent.agent_llm.base_url, agent.agent_llm.model, agent.agent_llm.context_tokens) == \
        ("http://127.0.0.1:8001/v1", "qwen-agent", 4096)
    assert settings.profile == "cpu-tiny" and settings.tiny_models is True
    shared = stack.load_stack("cpu-tiny-shared")
    profiles = stack.serving_profiles(shared)
    assert list(profiles) == ["domain"] and profiles["domain"].served_model_name == ["internlm2-chat-sui",
                                                                                      "qwen-agent"]
    agent = stack.api_settings(shared, profiles).agent
    assert agent.agent_llm.base_url == agent.domain_llm.base_url and agent.agent_llm.model == "qwen-agent"
    assert agent.agent_llm.context_tokens == 4096


def test_a_tiers_key_goes_to_the_agents_endpoint(home, monkeypatch):
    monkeypatch.setenv("SUIQA_AGENT_API_KEY", "sk-agent-0123456789abcdef")
    s = stack.load_stack("cpu-tiny")
    agent = stack.api_settings(s, stack.serving_profiles(s)).agent
    assert agent.agent_llm.api_key.get_secret_value() == "sk-agent-0123456789abcdef"
    assert agent.domain_llm.api_key.get_secret_value() == "EMPTY"


def test_load_stack_by_name_or_path(tmp_path):
    assert stack.load_stack("gpu").domain_profile == "gpu-internlm2-1_8b"
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nray_port: 7000\n")
    assert stack.load_stack(str(path)).name == "mine"
    assert stack.load_stack(str(path), ray_port=7001).ray_port == 7001
    with pytest.raises(SuiqaError, match="unknown stack profile 'nope'"):
        stack.load_stack("nope")


class Completed:
    def __init__(self, returncode: int, stdout: str = "", stderr: str = "") -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def test_the_ray_head_command_and_its_log(home, monkeypatch):
    ran = []
    monkeypatch.setattr(stack, "port_in_use", lambda host, port: False)
    monkeypatch.setattr(stack.subprocess, "run",
                        lambda cmd, **kw: ran.append((cmd, kw)) or Completed(0, "ok\n"))
    s = stack.load_stack("cpu-tiny", ray_port=6400, ray_num_cpus=3, ray_metrics_export_port=8099)
    assert stack.start_ray(s) == "127.0.0.1:6400"
    (cmd, kw), = ran
    assert cmd[1:] == ["start", "--head", "--node-ip-address=127.0.0.1", "--port=6400", "--num-cpus=3",
                       "--metrics-export-port=8099", "--include-dashboard=false", "--disable-usage-stats"]
    assert kw["capture_output"] and kw["text"] and kw["timeout"] == 120
    callback = kw["env"]["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"]
    assert callback == "deployments.middleware:proxy_middlewares"
    assert (home / "logs" / "ray-start.log").read_text() == "ok\n"


def test_a_failing_ray_head_is_one_line_with_its_last_line(home, monkeypatch):
    monkeypatch.setattr(stack, "port_in_use", lambda host, port: False)
    monkeypatch.setattr(stack.subprocess, "run",
                        lambda cmd, **kw: Completed(1, "out\n", "first\nlast words\n"))
    with pytest.raises(SuiqaError, match=r"`ray start` failed: last words \(log: .*ray-start.log\)"):
        stack.start_ray(stack.load_stack("cpu-tiny"))
    monkeypatch.setattr(stack.subprocess, "run", lambda cmd, **kw: Completed(1, "only stdout\n", ""))
    with pytest.raises(SuiqaError, match="`ray start` failed: only stdout"):
        stack.start_ray(stack.load_stack("cpu-tiny"))
    monkeypatch.setattr(stack.subprocess, "run", lambda cmd, **kw: Completed(1, "", ""))
    with pytest.raises(SuiqaError, match="`ray start` failed: no output"):
        stack.start_ray(stack.load_stack("cpu-tiny"))
    monkeypatch.setattr(stack, "port_in_use", lambda host, port: True)
    with pytest.raises(SuiqaError, match="port 6390 is in use: is a Ray head already running"):
        stack.start_ray(stack.load_stack("cpu-tiny"))


def test_the_ray_binary_beside_python_else_on_the_path(monkeypatch, tmp_path):
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.setattr(stack.shutil, "which", lambda name: "/usr/bin/ray" if name == "ray" else None)
    assert stack._ray_bin() == "/usr/bin/ray"
    (tmp_path / "bin" / "ray").write_text("")
    assert stack._ray_bin() == str(tmp_path / "bin" / "ray")
    (tmp_path / "bin" / "ray").unlink()
    monkeypatch.setattr(stack.shutil, "which", lambda name: None)
    assert stack._ray_bin() == "ray"


def fake_ray(monkeypatch, calls: list, init_failures: int = 0, run_error: Exception | None = None):
    """Ray and Serve modules recording what deploy_app asks of them."""
    ray = types.ModuleType("ray")
    serve = types.ModuleType("ray.serve")
    failures = [init_failures]

    def init(**kw):
        calls.append(("init", kw))
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("not yet")

    ray.init, ray.shutdown = init, lambda: calls.append(("shutdown",))
    serve.start = lambda **kw: calls.append(("serve.start", kw))

    def run(app, **kw):
        calls.append(("serve.run", app, kw))
        if run_error is not None:
            raise run_error

    serve.run, ray.serve = run, serve
    app_module = types.ModuleType("deployments.app")
    app_module.build_app = lambda settings: ("app of", settings.app_name)
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setitem(sys.modules, "ray.serve", serve)
    monkeypatch.setitem(sys.modules, "deployments.app", app_module)
    monkeypatch.setattr(stack.time, "sleep", lambda s: calls.append(("sleep", s)))


def test_deploy_app_connects_starts_serve_and_runs_the_app(home, monkeypatch):
    from deployments.config import ApiSettings

    calls: list = []
    fake_ray(monkeypatch, calls, init_failures=2)
    monkeypatch.setattr(stack.os, "environ", dict(stack.os.environ))
    stack.deploy_app("127.0.0.1:6390", ApiSettings.load(port=8181))
    inits = [c for c in calls if c[0] == "init"]
    assert len(inits) == 3 and [c for c in calls if c[0] == "sleep"] == [("sleep", 3), ("sleep", 3)]
    kw = inits[0][1]
    assert kw["address"] == "127.0.0.1:6390" and kw["log_to_driver"] is False and kw["logging_level"] == 30
    metrics = str(home / "run" / "pipeline-metrics")
    assert kw["runtime_env"]["env_vars"] == {"OMP_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu",
                                             "SUIQA_HOME": str(home), "PROMETHEUS_MULTIPROC_DIR": metrics}
    assert ("serve.start", {"http_options": {"host": "127.0.0.1", "port": 8181}}) in calls
    run = {"name": "sui-react", "route_prefix": "/", "blocking": False}
    assert ("serve.run", ("app of", "sui-react"), run) in calls
    assert calls[-1] == ("shutdown",)
    from suiqa.ray_local import RAY_LOCAL_ENV

    assert all(stack.os.environ[k] == v for k, v in RAY_LOCAL_ENV.items())


def test_deploy_app_gives_up_on_a_head_it_cannot_reach(home, monkeypatch):
    from deployments.config import ApiSettings

    calls: list = []
    fake_ray(monkeypatch, calls, init_failures=3)
    with pytest.raises(SuiqaError, match="cannot connect to the Ray head at 127.0.0.1:1: not yet"):
        stack.deploy_app("127.0.0.1:1", ApiSettings.load())
    assert len([c for c in calls if c[0] == "init"]) == 3


@pytest.mark.parametrize(("error", "first"), [
    (RuntimeError("replica failed\nTraceback ..."), "replica failed"), (RuntimeError(""), "RuntimeError")])
def test_deploy_app_says_in_one_line_why_serve_gave_up(home, monkeypatch, error, first):
    from deployments.config import ApiSettings

    calls: list = []
    fake_ray(monkeypatch, calls, run_error=error)
    with pytest.raises(SuiqaError) as failed:
        stack.deploy_app("127.0.0.1:6390", ApiSettings.load())
    assert str(failed.value) == (f"Ray Serve could not start 'sui-react': {first} "
                                 "(replica logs: /tmp/ray/session_latest/logs/serve/)")
    assert calls[-1] == ("shutdown",)  # the driver disconnects either way


def test_prometheus_started_with_the_stacks_targets_and_recorded(home, monkeypatch):
    started = []

    class FakePrometheus:
        def __init__(self, config_dir, port, targets, host):
            started.append((config_dir, port, targets, host))
            self.process = types.SimpleNamespace(pid=4242)
            self.url, self.config_file = f"http://{host}:{port}", Path(config_dir) / "prometheus.yml"

        def start(self):
            started.append("start")

        def wait_ready(self):
            started.append("ready")

    import monitoring.prometheus_server

    monkeypatch.setattr(monitoring.prometheus_server, "PrometheusServer", FakePrometheus)
    (home / "run").mkdir(exist_ok=True)
    s = stack.load_stack("cpu-tiny", prometheus_port=9191)
    state = stack.start_prometheus(s, {"ray": ["127.0.0.1:8090"]})
    assert started == [(home / "run" / "prometheus", 9191, {"ray": ["127.0.0.1:8090"]}, "127.0.0.1"), "start",
                       "ready"]
    assert state == {"pid": 4242, "pgid": 4242, "url": "http://127.0.0.1:9191",
                     "config": str(home / "run" / "prometheus" / "prometheus.yml")}
    assert json.loads((home / "run" / "prometheus.json").read_text()) == state


def test_scrape_targets_of_both_tier_layouts(home):
    from deployments.config import ApiSettings

    s = stack.load_stack("cpu-tiny", ray_metrics_export_port=8095)
    targets = stack.scrape_targets(s, stack.serving_profiles(s), ApiSettings.load(metrics_port=8097))
    assert targets == {"sui-pipeline": ["127.0.0.1:8097"], "vllm-domain": ["127.0.0.1:8000"],
                       "vllm-agent": ["127.0.0.1:8001"], "ray": ["127.0.0.1:8095"]}


def test_down_stops_what_up_started_and_forgets_it(home, monkeypatch):
    stopped = []
    import webui.cli

    monkeypatch.setattr(webui.cli, "stop", lambda: True)
    monkeypatch.setattr(stack, "stop_prometheus", lambda: True)
    monkeypatch.setattr(stack, "stop_vllm_servers", lambda: [{"role": "domain"}, {"role": "agent"}])
    def ray_stop(cmd, **kw):
        stopped.append((cmd[1:], kw["timeout"], kw["env"], kw.get("capture_output")))

    monkeypatch.setattr(stack.subprocess, "run", ray_stop)
    (home / "run").mkdir(exist_ok=True)
    (home / "run" / "stack.json").write_text(json.dumps({"profile": "cpu-tiny", "ray": True}))
    stack.pipeline_metrics_dir().mkdir()
    assert stack.down() == ["webui", "prometheus", "ray", "vllm domain", "vllm agent"]
    (args, timeout, env, capture), = stopped
    assert args == ["stop", "--force"] and timeout == 120
    assert "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH" in env
    assert capture is True  # `ray stop`'s chatter stays out of `suiqa down`'s output
    assert not (home / "run" / "stack.json").exists() and not stack.pipeline_metrics_dir().exists()
    assert stack.status() is None


def test_down_without_ray_does_not_stop_it(home, monkeypatch):
    import webui.cli

    monkeypatch.setattr(webui.cli, "stop", lambda: False)
    monkeypatch.setattr(stack, "stop_prometheus", lambda: False)
    monkeypatch.setattr(stack, "stop_vllm_servers", lambda: [])
    monkeypatch.setattr(stack.subprocess, "run", lambda *a, **k: pytest.fail("ray stop without a Ray head"))
    (home / "run").mkdir(exist_ok=True)
    (home / "run" / "stack.json").write_text(json.dumps({"profile": "cpu-tiny", "ray": False}))
    assert stack.down() == []
    assert stack.down() == []  # nothing recorded at all


def test_stop_prometheus_reads_its_record(home):
    (home / "run").mkdir(exist_ok=True)
    assert stack.stop_prometheus() is False


def test_a_phase_logs_its_time(caplog):
    with caplog.at_level("INFO", logger="stackctl.stack"), stack._phase("ray head"):
        pass
    message = caplog.records[-1].getMessage()
    assert message.startswith("ray head: ") and message.endswith(" s")


def test_each_tier_reads_its_own_roles_environment(home, monkeypatch):
    """The tier's role, not its profile file's, names its environment variables (a profile written for the
    other role may serve it)."""
    monkeypatch.setenv("SUIQA_DOMAIN_PORT", "9001")
    monkeypatch.setenv("SUIQA_AGENT_PORT", "9002")
    swapped = stack.StackSettings(domain_profile="cpu-tiny-agent", agent_profile="cpu-tiny",
                                  agent_overrides={"max_num_seqs": 3})
    profiles = stack.serving_profiles(swapped)
    assert (profiles["domain"].port, profiles["agent"].port) == (9001, 9002)
    assert profiles["agent"].max_num_seqs == 3


def test_the_shared_process_answers_to_the_agents_name_last(home, monkeypatch):
    monkeypatch.setenv("SUIQA_AGENT_SERVED_MODEL_NAME", '["my-agent"]')
    shared = stack.StackSettings(agent_profile=None, domain_overrides={"served_model_name": ["a", "b"]})
    profiles = stack.serving_profiles(shared)
    assert profiles["domain"].served_model_name == ["a", "b", "my-agent"]
    assert stack.api_settings(shared, profiles).agent.agent_llm.model == "my-agent"


def test_api_settings_without_an_api_profile_and_with_an_unknown_one(home):
    plain = stack.StackSettings(api_config=None, name="plain")
    settings = stack.api_settings(plain, stack.serving_profiles(plain))
    assert settings.port == 8080 and settings.profile == "plain" and settings.require_api_keys is True
    with pytest.raises(SuiqaError, match=r"^unknown API profile 'nope'; known profiles: api-cpu-tiny"):
        stack.api_settings(stack.StackSettings(api_config="nope"), stack.serving_profiles(plain))


def test_up_empties_the_metrics_directory_of_a_previous_stack(fake_up, home):
    old = stack.pipeline_metrics_dir()
    old.mkdir(parents=True)
    (old / "counter_1.db").write_text("stale")
    stack.up(stack.load_stack("cpu-tiny", build_tiny_models=False))
    assert stack.pipeline_metrics_dir().is_dir() and list(stack.pipeline_metrics_dir().iterdir()) == []


def test_scrape_targets_are_host_and_port_only(home):
    from types import SimpleNamespace

    from deployments.config import ApiSettings

    profiles = {"domain": SimpleNamespace(base_url="https://d.example:8443/"),
                "agent": SimpleNamespace(base_url="http://a.example:8001//")}
    targets = stack.scrape_targets(stack.load_stack("cpu-tiny"), profiles, ApiSettings.load())
    assert targets["vllm-domain"] == ["d.example:8443"] and targets["vllm-agent"] == ["a.example:8001"]


def test_stop_prometheus_stops_its_recorded_process_group(home, monkeypatch):
    seen = []
    monkeypatch.setattr(stack, "stop_recorded",
                        lambda path, grace_s=20: seen.append((path, grace_s)) or {"pgid": 1})
    assert stack.stop_prometheus() is True and seen == [(home / "run" / "prometheus.json", 10)]
    monkeypatch.setattr(stack, "stop_recorded", lambda path, grace_s=20: None)
    assert stack.stop_prometheus() is False


def test_start_ray_checks_its_own_port(home, monkeypatch):
    asked = []
    monkeypatch.setattr(stack, "port_in_use", lambda host, port: asked.append((host, port)) or True)
    with pytest.raises(SuiqaError):
        stack.start_ray(stack.load_stack("cpu-tiny", ray_port=6411))
    assert asked == [("127.0.0.1", 6411)]


def test_restart_errors_are_exact(home):
    with pytest.raises(SuiqaError, match=r"^no stack is up \(`suiqa up` first\)$"):
        stack.restart("domain")
    (home / "run").mkdir(exist_ok=True)
    (home / "run" / "stack.json").write_text(json.dumps({"profile": "x", "servers": {}}))
    with pytest.raises(SuiqaError, match=r"^the running stack has no separate agent tier$"):
        stack.restart("agent")
    (home / "run" / "stack.json").write_text(json.dumps({"profile": "x", "servers": {"domain": {}}}))
    both = r"^the running stack has no separate agent tier \(this stack's domain process serves both roles: "
    with pytest.raises(SuiqaError, match=both + r"restart domain\)$"):
        stack.restart("agent")
