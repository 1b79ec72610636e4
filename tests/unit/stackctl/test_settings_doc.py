"""docs/settings.md's settings table is the output of `suiqa settings` (generated from the typed models); README
links to it."""

from __future__ import annotations

from pathlib import Path

from stackctl.settings_doc import BEGIN, DOC, END, markdown, tiers, update_doc
from suiqa.settings import tier_class

ROOT = Path(__file__).resolve().parents[3]


def test_settings_doc_table_is_generated_from_the_models():
    assert DOC == ROOT / "docs" / "settings.md"
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index(BEGIN):text.index(END) + len(END)]
    assert block == markdown(), "docs/settings.md's settings table is stale: run `suiqa settings --write-doc`"


def test_readme_links_the_settings_page_and_holds_no_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/settings.md)" in readme and BEGIN not in readme


def test_write_doc_replaces_a_stale_table_and_keeps_the_prose(tmp_path):
    stale = tmp_path / "settings.md"
    stale.write_text(f"# prose before\n\n{BEGIN}\n| `gone` | `SUIQA_X` | `1` | |\n{END}\n\nprose after\n",
                     encoding="utf-8")
    assert update_doc(stale) is True
    text = stale.read_text(encoding="utf-8")
    assert text == f"# prose before\n\n{markdown()}\n\nprose after\n"
    assert update_doc(stale) is False


def test_cli_flag_writes_the_doc_under_both_names(monkeypatch):
    from typer.testing import CliRunner

    from stackctl import settings_doc
    from stackctl.cli import app

    calls = []
    monkeypatch.setattr(settings_doc, "update_doc", lambda: calls.append(1) or False)
    for flag in ("--write-doc", "--write-readme"):
        result = CliRunner().invoke(app, ["settings", flag])
        assert result.exit_code == 0 and "docs/settings.md already up to date" in result.output, result.output
    assert len(calls) == 2


def test_every_field_of_every_tier_is_listed():
    table = markdown()
    for _, model, _, _ in tiers():
        for name, field in model.model_fields.items():
            if tier_class(field.annotation) is None:  # a nested tier has its own table
                assert f"`{name}" in table or f".{name}`" in table, (model.__name__, name)
    assert "`SUIQA_REACT_LIMITS__MAX_QUESTION_CHARS` | `2000`" in table
