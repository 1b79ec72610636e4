"""Base class for the typed, per-tier configuration, and the one loader every entry path uses.

Precedence, highest first, on every path (`suiqa up`, `suiqa ask`, a `serve deploy` YAML, the tests):
explicit overrides (CLI flags, values the stack computes) > environment variables > a YAML file (or the ``args``
of a `serve deploy` YAML) > the field defaults.

One environment name per setting: each tier has one prefix (``SUIQA_REACT_``, ``SUIQA_KB_``, ``SUIQA_API_``, ...);
plain sub-models of a tier are reached with ``__`` (``SUIQA_REACT_AGENT_LLM__MODEL``). A tier nested inside another
(the ReAct agent inside the API settings, the knowledge base inside the agent) keeps ITS prefix: the YAML of the
outer tier may set its fields, but its environment variables are its own (there is no ``SUIQA_API_AGENT__...``).
:func:`load_settings` walks the tree and applies the precedence at every level with one deep merge.

Why not pydantic-settings' own nesting: a nested settings model validated from a dict never reads its environment,
so a YAML value of the outer file silently beat the inner tier's env var (measured: ``SUIQA_REACT_DEADLINE_S=5``
gave 60 with the API YAML).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar, get_args, get_origin

from pydantic import BaseModel
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from suiqa.errors import SuiqaError

SettingsT = TypeVar("SettingsT", bound="TierSettings")


def resolve_profile(name_or_path: str | Path, folder: Path, what: str) -> Path:
    """A profile given by name (``folder/<name>.yaml``) or as a YAML path; a clear error when it does not exist."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = folder / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise SuiqaError(f"unknown {what} profile {str(name_or_path)!r}; known profiles: {known}")
    return path


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; nested mappings are merged key by key, everything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise SuiqaError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _model_class(annotation: Any, base: type[BaseModel]) -> Any:
    candidates = get_args(annotation) if get_origin(annotation) is not None else (annotation,)
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, base)), None)


def tier_class(annotation: Any) -> type[TierSettings] | None:
    """The TierSettings class of a field (``AgentSettings`` or ``AgentSettings | None``), else None."""
    return _model_class(annotation, TierSettings)


def _env_values(cls: type[TierSettings], env_prefix: str | None) -> dict[str, Any]:
    """This tier's own environment variables (nested tiers excluded: they read their own prefix)."""
    prefix = env_prefix if env_prefix is not None else cls.model_config.get("env_prefix", "")
    source = EnvSettingsSource(cls, env_prefix=prefix, env_nested_delimiter="__",
                               case_sensitive=False)
    values = source() or {}
    for key in values:
        sub = tier_class(cls.model_fields[key].annotation)
        if sub is not None:
            raise SuiqaError(f"environment variables {prefix}{key.upper()}__* are not read: the {key!r} settings "
                             f"come from {sub.model_config.get('env_prefix', '')}* (one name per setting)")
    return values


def load_settings(cls: type[SettingsT], yaml_data: Mapping[str, Any] | None = None,
                  overrides: Mapping[str, Any] | None = None, *, env_prefix: str | None = None) -> SettingsT:
    """Build ``cls`` with the precedence overrides > env > yaml_data > defaults, recursively for nested tiers."""
    yaml_data, overrides = dict(yaml_data or {}), dict(overrides or {})
    data = deep_merge(deep_merge(yaml_data, _env_values(cls, env_prefix)), overrides)
    for name, field in cls.model_fields.items():
        sub = tier_class(field.annotation)
        if sub is None or (name in overrides and isinstance(overrides[name], BaseModel)):
            continue
        if data.get(name, ...) is None:  # an optional nested tier switched off
            continue
        inner_yaml, inner_over = yaml_data.get(name), overrides.get(name)
        data[name] = load_settings(sub, inner_yaml if isinstance(inner_yaml, Mapping) else None,
                                   inner_over if isinstance(inner_over, Mapping) else None)
    try:
        return cls.model_validate(data)
    except Exception as exc:
        if type(exc).__name__ == "ValidationError":
            raise SettingsError(cls, exc) from None
        raise


class SettingsError(SuiqaError, ValueError):
    """Invalid settings: one line per bad field, naming where it came from is the user's job (CLI/env/YAML)."""

    def __init__(self, cls: type, exc: Any) -> None:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        super().__init__(f"invalid {cls.__name__}: " + "; ".join(lines))
        self.errors = exc.errors()


class TierSettings(BaseSettings):
    """Settings of one tier. Subclasses set ``model_config = SettingsConfigDict(env_prefix=...)``.

    Build them with :meth:`load` (or :func:`load_settings`), which applies the project's precedence.
    """

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Direct construction reads nothing but its arguments: every path goes through load() / load_settings(),
        # so there is exactly one place where the environment and YAML come in.
        return (init_settings,)

    @classmethod
    def load(cls, yaml_file: str | Path | None = None, *, base: Mapping[str, Any] | None = None,
             env_prefix: str | None = None, **overrides: Any) -> Self:
        """From an optional YAML file (or an in-memory ``base`` layer, e.g. a `serve deploy` YAML's args), the
        environment and ``overrides`` (CLI flags; None = not given)."""
        yaml_data = deep_merge(read_yaml(yaml_file) if yaml_file is not None else {}, base or {})
        return load_settings(cls, yaml_data, {k: v for k, v in overrides.items() if v is not None},
                             env_prefix=env_prefix)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def settings_rows(cls: type[BaseModel], env_prefix: str, path: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(setting path, environment variable, default, description) for every field, nested models flattened.

    Nested tiers are listed under their own prefix by the caller, not here."""
    for name, field in cls.model_fields.items():
        if tier_class(field.annotation) is not None:
            continue
        dotted, env = f"{path}{name}", f"{env_prefix}{name.upper()}"
        sub = _model_class(field.annotation, BaseModel)
        if sub is not None:
            if field.default is None:
                yield dotted, env, "None", (field.description or "").replace("|", "\\|")
            yield from settings_rows(sub, env + "__", dotted + ".")
            continue
        if (field.json_schema_extra or {}).get("doc_default"):
            default = field.json_schema_extra["doc_default"]
        elif field.is_required():
            default = "(required)"
        elif field.default_factory is not None:
            try:
                default = repr(field.default_factory())
            except TypeError:
                default = "(computed)"
        else:
            default = repr(field.default)
        if "SecretStr" in repr(field.annotation):
            default = "(secret)"
        yield dotted, env, default, (field.description or "").replace("|", "\\|")
