"""The optional PERSON detector, with a real (tiny, rule-based) spaCy pipeline saved to disk."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flywheel.errors import ConfigError, MissingExtraError
from privacy.detectors.names import NameDetector


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


def test_the_scrubbing_anonymiser_removes_names_too(model: Path) -> None:
    import json
    import pickle

    from ingest.pipeline import DedupeWindow, Pipeline, RawMessage
    from ingest.scrubbing import ScrubbingAnonymiser
    from privacy.keys import Keyring
    from tests.factories import make_event

    anonymiser = ScrubbingAnonymiser(Keyring(1, {1: b"k" * 32}), names_model=str(model))
    # It travels to the helper process by pickle; the spaCy pipeline is rebuilt there.
    anonymiser = pickle.loads(pickle.dumps(anonymiser))
    pipeline = Pipeline(anonymiser, max_event_bytes=65536)
    event = make_event("edit", edited_text="Thanks Jane Doe, mail me at jane@example.com")
    message = RawMessage("t", 0, 0, b"c", json.dumps(event).encode())
    [row] = pipeline.frame(pipeline.process([message], DedupeWindow(1))).to_dicts()
    assert row["edited_text"] == "Thanks <PERSON>, mail me at <EMAIL>"
    assert row["scrubbed"] == [{"kind": "email", "count": 1}, {"kind": "person", "count": 1}]


def test_without_the_names_extra_the_error_names_it_and_its_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'feedback-flywheel\[names\]'"):
        NameDetector("en_core_web_sm")
