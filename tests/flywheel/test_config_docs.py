from __future__ import annotations

from pathlib import Path

from flywheel.settings import reference_markdown, setting_rows

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_is_generated_from_the_settings() -> None:
    assert DOC.read_text() == reference_markdown(), "run: python -m flywheel.settings"


def test_every_setting_is_documented_with_a_description() -> None:
    text = DOC.read_text()
    rows = setting_rows()
    assert len(rows) > 15
    for env, _type, _default, description in rows:
        assert f"`{env}`" in text
        assert description, f"{env} has no docstring in flywheel/settings.py"
