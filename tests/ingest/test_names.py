"""The optional PERSON detector, with a real (tiny, rule-based) spaCy pipeline saved to disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from ingest.names import NameDetector


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spaCy pipeline whose entity ruler knows two names, saved like an installed model."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(  # type: ignore[attr-defined]
        [
            {"label": "PERSON", "pattern": "Jane Doe"},
            {"label": "PERSON", "pattern": [{"LOWER": "john"}, {"LOWER": "smith"}]},
        ]
    )
    path = tmp_path_factory.mktemp("names-model")
    nlp.to_disk(path)
    return path


def test_names_become_person_placeholders(model: Path) -> None:
    detector = NameDetector(str(model))
    text = "Please ask Jane Doe, or john smith, before merging."
    assert detector.find(text) == [(11, 19), (24, 34)]
    assert detector.scrub(text) == ("Please ask <PERSON>, or <PERSON>, before merging.", 2)


def test_text_without_names_is_unchanged(model: Path) -> None:
    text = "def reverse(xs):\n    return xs[::-1]\n"
    assert NameDetector(str(model)).scrub(text) == (text, 0)


def test_a_model_that_is_not_installed_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not installed"):
        NameDetector("xx_no_such_model_sm")
    with pytest.raises(ConfigError, match="not installed"):
        NameDetector(str(tmp_path / "missing-folder"))
