"""Optional detection of person names, with Presidio and a spaCy model the operator installs.

Names have no checksum and no fixed shape, so they need a language model; none is installed by
default (models are large, and they cannot be fetched at run time on locked-down hosts). To
turn it on:

    pip install 'feedback-flywheel[names]'          # presidio-analyzer and spaCy
    pip install <a spaCy English pipeline wheel>     # e.g. en_core_web_lg, from your mirror
    FLYWHEEL_PRIVACY__NAMES_MODEL=en_core_web_lg      # a package name or a model folder

Detected names become ``<PERSON>``. Without a model, names in free text are NOT removed; the
structured detectors (emails, phones, keys, ...) still run. docs/privacy.md lists what is and
is not detected out of the box.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.errors import ConfigError
from flywheel.extras import require


class NameDetector:
    """Finds PERSON entities with Presidio's spaCy recognizer (never downloads a model)."""

    def __init__(self, model: str, *, min_score: float = 0.6) -> None:
        spacy = require("spacy", extra="names")  # the names extra, or one line naming it
        require("presidio_analyzer", extra="names")
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        # Presidio would try to download a missing model; fail clearly instead.
        if not (spacy.util.is_package(model) or Path(model).is_dir()):
            raise ConfigError(
                f"the spaCy model {model!r} is not installed (pip install its wheel, or set "
                "FLYWHEEL_PRIVACY__NAMES_MODEL to a model folder)"
            )
        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": model}],
            }
        )
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.add_recognizer(SpacyRecognizer(supported_entities=["PERSON"]))
        self._analyzer: Any = AnalyzerEngine(
            nlp_engine=provider.create_engine(), registry=registry, supported_languages=["en"]
        )
        self.min_score = min_score

    def find(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the person names in ``text``, in order."""
        results = self._analyzer.analyze(text=text, language="en", entities=["PERSON"])
        return sorted((r.start, r.end) for r in results if r.score >= self.min_score)

    def scrub(self, text: str) -> tuple[str, int]:
        """``text`` with every name replaced by ``<PERSON>``, and how many were."""
        spans = self.find(text)
        if not spans:
            return text, 0
        parts: list[str] = []
        position = replaced = 0
        for start, end in spans:
            if start < position:
                continue  # overlapping spans: the first one already covers it
            parts += [text[position:start], "<PERSON>"]
            position = end
            replaced += 1
        parts.append(text[position:])
        return "".join(parts), replaced
