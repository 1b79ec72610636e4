"""Base class for the typed, per-tier configuration.

Precedence, highest first: explicit keyword overrides (CLI flags) > environment variables > a YAML file > the
field defaults. One model per tier; each field documents itself, so a Kubernetes manifest can carry the same
settings as env vars or as a mounted YAML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
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


class TierSettings(BaseSettings):
    """Settings of one tier. Subclasses set ``model_config = SettingsConfigDict(env_prefix=...)``."""

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
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("yaml_file"):
            sources.append(YamlConfigSettingsSource(settings_cls))
        return tuple(sources)

    @classmethod
    def load(cls: type[SettingsT], yaml_file: str | Path | None = None, **overrides: Any) -> SettingsT:
        """Build the settings from an optional YAML file, the environment and ``overrides`` (None = unset)."""
        target: type[SettingsT] = cls
        if yaml_file is not None:
            path = Path(yaml_file)
            if not path.is_file():
                raise FileNotFoundError(f"config file not found: {path}")
            target = type(cls.__name__, (cls,), {
                "model_config": {**cls.model_config, "yaml_file": str(path)},
                "__module__": cls.__module__,
            })
        return target(**{k: v for k, v in overrides.items() if v is not None})

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
