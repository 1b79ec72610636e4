"""README's settings table is the output of `suiqa settings` (generated from the typed models)."""

from __future__ import annotations

from pathlib import Path

from stackctl.settings_doc import BEGIN, END, markdown, tiers
from suiqa.settings import tier_class

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_table_is_generated_from_the_models():
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN):text.index(END) + len(END)]
    assert block == markdown(), "README's settings table is stale: run `suiqa settings --write-readme`"


def test_every_field_of_every_tier_is_listed():
    table = markdown()
    for _, model, _, _ in tiers():
        for name, field in model.model_fields.items():
            if tier_class(field.annotation) is None:  # a nested tier has its own table
                assert f"`{name}" in table or f".{name}`" in table, (model.__name__, name)
    assert "`SUIQA_REACT_LIMITS__MAX_QUESTION_CHARS` | `2000`" in table
