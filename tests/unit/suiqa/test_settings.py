"""suiqa/settings.py pinned where mutation testing found it unpinned: profile resolution and its error, the deep
merge, YAML reading errors, nested tiers switched off or given as objects, one-line validation errors, and the
settings-table rows (defaults, secrets, escaping)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from suiqa.errors import SuiqaError
from suiqa.settings import (
    SettingsError,
    TierSettings,
    deep_merge,
    load_settings,
    read_yaml,
    resolve_profile,
    settings_rows,
)


class Inner(TierSettings):
    model_config = SettingsConfigDict(env_prefix="SUIQA_TINNER_", extra="forbid")

    depth: int = 1
    name: str = "in"


class Plain(BaseModel):
    size: int = 2
    tags: list[str] = Field(default_factory=list, description="a | b")


class Outer(TierSettings):
    model_config = SettingsConfigDict(env_prefix="SUIQA_TOUTER_", extra="forbid", env_nested_delimiter="__")

    port: int = Field(80, gt=0, description="The port.")
    plain: Plain = Field(default_factory=Plain)
    inner: Inner = Field(default_factory=Inner)
    optional: Inner | None = None
    maybe: Plain | None = Field(None, description="off by default")
    key: SecretStr = SecretStr("s")
    shown: str = Field("x", json_schema_extra={"doc_default": "`computed`"})


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for name in ("SUIQA_TOUTER_PORT", "SUIQA_TOUTER_PLAIN__SIZE", "SUIQA_TINNER_DEPTH", "SUIQA_TOUTER_INNER__DEPTH"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_resolve_profile_by_name_path_or_a_clear_error(tmp_path):
    (tmp_path / "a.yaml").write_text("x: 1")
    (tmp_path / "b.yaml").write_text("x: 2")
    (tmp_path / "c.yml").write_text("x: 3")
    assert resolve_profile("a", tmp_path, "stack") == tmp_path / "a.yaml"
    assert resolve_profile(tmp_path / "b.yaml", tmp_path, "stack") == tmp_path / "b.yaml"
    assert resolve_profile(tmp_path / "c.yml", tmp_path, "stack") == tmp_path / "c.yml"  # a path, not a name
    with pytest.raises(SuiqaError) as info:
        resolve_profile("c", tmp_path, "stack")
    assert str(info.value) == "unknown stack profile 'c'; known profiles: a, b"
    with pytest.raises(SuiqaError, match="unknown stack profile"):
        resolve_profile(tmp_path / "missing.yml", tmp_path, "stack")


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": {"z": 1}}, "b": [1], "c": 1}
    assert deep_merge(base, {"a": {"y": {"w": 2}}, "b": [2], "c": {"k": 1}}) == {
        "a": {"x": 1, "y": {"z": 1, "w": 2}}, "b": [2], "c": {"k": 1}}
    assert base == {"a": {"x": 1, "y": {"z": 1}}, "b": [1], "c": 1}  # not modified


def test_read_yaml(tmp_path):
    (tmp_path / "ok.yaml").write_text("port: 81\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "list.yaml").write_text("- 1\n")
    assert read_yaml(tmp_path / "ok.yaml") == {"port": 81} and read_yaml(tmp_path / "empty.yaml") == {}
    with pytest.raises(SuiqaError) as info:
        read_yaml(tmp_path / "list.yaml")
    assert str(info.value) == f"{tmp_path / 'list.yaml'}: expected a mapping of settings, got list"
    with pytest.raises(FileNotFoundError, match="config file not found: "):
        read_yaml(tmp_path / "none.yaml")


def test_precedence_at_every_level(_clean, tmp_path):
    (tmp_path / "o.yaml").write_text("port: 81\nplain: {size: 3}\ninner: {depth: 4, name: yaml}\n")
    _clean.setenv("SUIQA_TOUTER_PLAIN__SIZE", "5")
    _clean.setenv("SUIQA_TINNER_DEPTH", "6")
    loaded = Outer.load(tmp_path / "o.yaml", port=None)
    assert (loaded.port, loaded.plain.size, loaded.inner.depth, loaded.inner.name) == (81, 5, 6, "yaml")
    loaded = Outer.load(tmp_path / "o.yaml", base={"port": 82}, inner={"depth": 7})
    assert (loaded.port, loaded.inner.depth, loaded.inner.name) == (82, 7, "yaml")
    given = Inner(depth=9)
    assert Outer.load(inner=given).inner is given  # an object override is taken as it is
    assert load_settings(Outer, {"optional": None}).optional is None  # an optional nested tier switched off
    assert Outer.load(optional={"depth": 3}).optional.depth == 3


def test_a_nested_tier_is_not_read_through_the_outer_prefix(_clean):
    _clean.setenv("SUIQA_TOUTER_INNER__DEPTH", "2")
    with pytest.raises(SuiqaError) as info:
        Outer.load()
    assert str(info.value) == ("environment variables SUIQA_TOUTER_INNER__* are not read: the 'inner' settings "
                               "come from SUIQA_TINNER_* (one name per setting)")


def test_invalid_values_are_one_line_naming_each_field():
    with pytest.raises(SettingsError) as info:
        load_settings(Outer, {"port": 0}, {"plain": {"size": "x"}})
    message = str(info.value)
    assert message.startswith("invalid Outer: ") and "\n" not in message
    assert "port: Input should be greater than 0; plain.size: " in message
    assert [e["loc"] for e in info.value.errors] == [("port",), ("plain", "size")]


def test_direct_construction_reads_no_environment(_clean):
    _clean.setenv("SUIQA_TOUTER_PORT", "99")
    assert Outer().port == 80 and Outer.load().port == 99


def test_to_yaml_round_trips(tmp_path):
    text = Outer.load(port=83, inner={"name": "隋"}).to_yaml()
    assert text.startswith("port: 83\n") and "name: 隋" in text  # field order kept, readable Chinese
    (tmp_path / "again.yaml").write_text(text)
    assert Outer.load(tmp_path / "again.yaml").port == 83


class Documented(BaseModel):
    bare: Plain | None = None
    piped: Plain | None = Field(None, description="x | y")
    derived: int = Field(default_factory=lambda data: 2 * data.get("base", 1))
    items: list[int] = Field(default_factory=lambda: [1, 2])


def test_settings_rows_of_optional_sections_and_computed_defaults():
    rows = {path: (env, default, meaning) for path, env, default, meaning in settings_rows(Documented, "P_")}
    assert rows["bare"] == ("P_BARE", "None", "") and rows["piped"] == ("P_PIPED", "None", "x \\| y")
    assert rows["bare.size"] == ("P_BARE__SIZE", "2", "")
    # a factory that needs the other fields cannot be shown: "(computed)"; one that needs none shows its value
    assert rows["derived"] == ("P_DERIVED", "(computed)", "") and rows["items"] == ("P_ITEMS", "[1, 2]", "")


def test_settings_rows():
    rows = {path: (env, default, meaning) for path, env, default, meaning in settings_rows(Outer, "SUIQA_TOUTER_")}
    assert rows == {
        "port": ("SUIQA_TOUTER_PORT", "80", "The port."),
        "plain.size": ("SUIQA_TOUTER_PLAIN__SIZE", "2", ""),
        "plain.tags": ("SUIQA_TOUTER_PLAIN__TAGS", "[]", "a \\| b"),
        "maybe": ("SUIQA_TOUTER_MAYBE", "None", "off by default"),
        "maybe.size": ("SUIQA_TOUTER_MAYBE__SIZE", "2", ""),
        "maybe.tags": ("SUIQA_TOUTER_MAYBE__TAGS", "[]", "a \\| b"),
        "key": ("SUIQA_TOUTER_KEY", "(secret)", ""),
        "shown": ("SUIQA_TOUTER_SHOWN", "`computed`", ""),
    }
