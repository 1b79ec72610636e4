"""LoRA adapters loaded into a running vLLM tier (no restart): the folder checks and vLLM's runtime routes.

vLLM (0.32) serves ``POST /v1/load_lora_adapter`` ``{lora_name, lora_path}``, ``POST /v1/unload_lora_adapter``
``{lora_name}`` and lists loaded adapters in ``GET /v1/models`` (``parent``: the base model) when the server
runs with ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` (profile field ``runtime_lora``).
Its own answers to a bad adapter are late or vague: a folder without ``adapter_config.json`` is a 404 "not
found", a rank above ``--max-lora-rank`` or a LoRA of another base model is a 500 with a Python error text,
and an adapter of a same-shaped but different base loads and answers nonsense. So :func:`check_adapter`
refuses those before vLLM is called, each with one line naming the fix, and :class:`LoraClient` turns vLLM's
remaining errors (route missing, name taken, unknown name, unreachable server) into one line each
(:class:`LoraError`).

The folder is read on this machine and handed to vLLM by path: the server must see the same path (the local
stack; in a cluster, a volume mounted at the same place).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from serving.config import ServingProfile
from suiqa.errors import SuiqaError

NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")
SHAPE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "intermediate_size", "vocab_size")
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


class LoraError(SuiqaError):
    """An adapter cannot be loaded, unloaded or listed; the message is one line."""


@dataclass(frozen=True)
class Adapter:
    name: str
    path: Path
    rank: int
    base_model: str


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoraError(f"{path}: not readable JSON ({type(exc).__name__}: {exc})") from exc
    if not isinstance(value, dict):
        raise LoraError(f"{path}: not a JSON object")
    return value


def _shape(model_dir: Path) -> dict[str, Any] | None:
    config = model_dir / "config.json"
    return {k: v for k, v in _json(config).items() if k in SHAPE_KEYS} if config.is_file() else None


def _same_base(trained_on: str, served: str) -> bool:
    """The adapter's base is the served model: the same folder, or a copy (same architecture and shape)."""
    if trained_on == served:
        return True
    a, b = Path(trained_on).expanduser(), Path(served).expanduser()
    if a.is_dir() and b.is_dir():
        return a.resolve() == b.resolve() or (_shape(a) is not None and _shape(a) == _shape(b))
    return False


def check_adapter(name: str, folder: Path | str, profile: ServingProfile) -> Adapter:
    """The adapter in ``folder`` if ``profile``'s server can load it as ``name``; else a LoraError."""
    if not NAME.match(name):
        raise LoraError(f"adapter name {name!r}: use 1-64 letters, digits, '_', '-', '.' (a model name)")
    if name in profile.served_model_name:
        raise LoraError(f"adapter name {name!r} is the {profile.role} tier's own model name; choose another")
    if not profile.runtime_lora:
        raise LoraError(f"the {profile.role} tier's profile {profile.name!r} does not allow runtime "
                        "adapters: set runtime_lora: true in it and restart the tier")
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise LoraError(f"{path}: no such adapter folder")
    if not (path / "adapter_config.json").is_file():
        raise LoraError(f"{path}: not a PEFT adapter (no adapter_config.json); `suiqa finetune lora` writes "
                        "one into <out>/adapter")
    config = _json(path / "adapter_config.json")
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise LoraError(f"{path}: a {config.get('peft_type')} adapter; vLLM serves LoRA adapters only")
    if not any((path / weights).is_file() for weights in WEIGHTS):
        raise LoraError(f"{path}: no adapter weights ({' or '.join(WEIGHTS)})")
    ranks = [config.get("r"), *dict(config.get("rank_pattern") or {}).values()]
    if not all(isinstance(r, int) and r > 0 for r in ranks):
        raise LoraError(f"{path}: adapter_config.json has no valid rank 'r' ({config.get('r')!r})")
    rank = max(ranks)
    if rank > profile.max_lora_rank:
        raise LoraError(f"{path}: rank {rank} is above the {profile.role} tier's max_lora_rank "
                        f"{profile.max_lora_rank} (profile {profile.name!r}); raise it there or train a "
                        "smaller r")
    base = config.get("base_model_name_or_path")
    if not base:
        raise LoraError(f"{path}: adapter_config.json names no base_model_name_or_path")
    if not _same_base(str(base), profile.model_path):
        raise LoraError(f"{path}: trained on {base}, but the {profile.role} tier serves {profile.model_path} "
                        f"(shape {_shape(Path(profile.model_path))}); load it on a server of its base model")
    return Adapter(name, path, rank, str(base))


def _vllm_message(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message")) if isinstance(error, dict) and error.get("message") else None


class LoraClient:
    """vLLM's runtime adapter routes on one server, each failure one line."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 120.0) -> None:
        self.root = base_url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.root, headers=headers, timeout=timeout_s)

    def __enter__(self) -> LoraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LoraError(f"{self.root}: not reachable ({type(exc).__name__}: {exc}); is the tier up?") \
                from exc

    def models(self) -> list[dict[str, Any]]:
        response = self._send("GET", "/v1/models")
        if response.status_code == 401:
            raise LoraError(f"{self.root}: 401 — the tier requires its API key (SUIQA_<ROLE>_API_KEY)")
        if response.status_code != 200:
            raise LoraError(f"{self.root}/v1/models: HTTP {response.status_code}")
        return list(response.json().get("data", []))

    def adapters(self) -> list[dict[str, Any]]:
        """The loaded adapters: ``{id, root (its folder), parent (the base model)}`` each."""
        return [{"id": m["id"], "root": m.get("root"), "parent": m["parent"]}
                for m in self.models() if m.get("parent")]

    def load(self, adapter: Adapter) -> str:
        response = self._send("POST", "/v1/load_lora_adapter",
                              json={"lora_name": adapter.name, "lora_path": str(adapter.path)})
        if response.status_code != 200:
            raise self._error("load", adapter.name, response)
        return response.text

    def unload(self, name: str) -> str:
        response = self._send("POST", "/v1/unload_lora_adapter", json={"lora_name": name})
        if response.status_code == 404 and _vllm_message(response) is not None:
            loaded = ", ".join(a["id"] for a in self.adapters()) or "none"
            raise LoraError(f"no adapter named {name!r} on {self.root} (loaded: {loaded})")
        if response.status_code != 200:
            raise self._error("unload", name, response)
        return response.text

    def _error(self, action: str, name: str, response: httpx.Response) -> LoraError:
        message = _vllm_message(response)
        status = response.status_code
        if message is None and status in (404, 405):  # the route itself is missing
            return LoraError(f"{self.root} does not allow runtime adapters (HTTP {status} on "
                             f"/v1/{action}_lora_adapter): start the tier with runtime_lora: true in its "
                             "serving profile")
        if status == 401:
            return LoraError(f"{self.root}: 401 — the tier requires its API key (SUIQA_<ROLE>_API_KEY)")
        if message and "already been loaded" in message:
            return LoraError(f"adapter {name!r} is already loaded on {self.root}; "
                             f"`suiqa lora unload {name}` first")
        first = (message or response.text or "").strip().splitlines()
        return LoraError(f"vLLM could not {action} adapter {name!r} (HTTP {status}): "
                         f"{first[-1][:300] if first else 'no message'}")
