"""The anonymiser the platform runs: user ids pseudonymised, and every text and identifier
scrubbed by the detectors of ``privacy.detectors`` (and person names when a model is configured,
``privacy.detectors.names``), column-wise over a whole micro-batch.

``PREFILTER`` (the union of the detectors' gates) runs natively over each column, so Python looks
only at the rows that may hold something; the same text repeated within a batch (prompts repeat
the conversation so far) is scrubbed once; identifiers the detectors find anything in are
replaced whole by a keyed pseudonym, counted as ``identifier``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ingest.anonymiser import IDENTIFIER_COLUMNS, TEXT_COLUMNS, PseudonymisingAnonymiser
from ingest.contract import canonical_metadata
from privacy.detectors import PREFILTER, Scrubber
from privacy.detectors.names import NameDetector
from privacy.keys import Keyring

if TYPE_CHECKING:
    import polars as pl

__all__ = ["ScrubbingAnonymiser"]


def _replace_rows(series: pl.Series, rows: list[int], values: Sequence[object]) -> pl.Series:
    """``series`` with the values at ``rows`` replaced (natively, for any type, nested too)."""
    import polars as pl

    # Series.scatter does not take nested types: append the new values and gather instead.
    n = len(series)
    index = pl.int_range(0, n, dtype=pl.UInt32, eager=True)
    index = index.scatter(rows, pl.int_range(n, n + len(rows), dtype=pl.UInt32, eager=True))
    appended = pl.concat([series, pl.Series(series.name, values, dtype=series.dtype)])
    return appended.gather(index)


_GENERATED_ID = r"^(?:[A-Za-z]{1,16}[_-])?(?:[0-9a-f]{6,64}|[0-9A-F]{6,64}|[0-9a-f-]{36})$"
"""Ids of the usual generated shapes (``resp_53dbc5817190c026``, a UUID, a hex digest): no
detector finds anything in them as long as a letter is among the digits, as checked beside."""


def _identifier_candidates(ids: pl.Expr) -> pl.Expr:
    """Identifiers that may hold what a detector finds: the prefilter's hits, less the common
    generated shapes (which cost the detectors' time in every event otherwise)."""
    generated = ids.str.contains(_GENERATED_ID) & ids.str.contains(r"[A-Fa-f][0-9]|[0-9][A-Fa-f]")
    return ids.str.contains(PREFILTER) & ~generated


class ScrubbingAnonymiser:
    """Pseudonymises user ids and scrubs every text column, reporting what it removed."""

    def __init__(
        self,
        keyring: Keyring,
        scrubber: Scrubber | None = None,
        *,
        names_model: str | None = None,
    ) -> None:
        self.pseudonymiser = PseudonymisingAnonymiser(keyring)
        self.scrubber = scrubber if scrubber is not None else Scrubber()
        self.names_model = names_model
        self._names: NameDetector | None = None
        if names_model is not None:
            self._names = NameDetector(names_model)  # fails fast on a missing model
        self._seen: dict[str, tuple[str, dict[str, int]]] = {}
        # Identifiers repeat across events (a conversation's id in each of its events).
        self._identifiers: dict[str, str] = {}

    def __getstate__(self) -> dict[str, object]:
        # The spaCy pipeline is rebuilt where it is used (the helper process), not pickled.
        return {**self.__dict__, "_names": None}

    @property
    def names(self) -> NameDetector | None:
        """The person-name detector, if a model is configured (built on first use)."""
        if self._names is None and self.names_model is not None:
            self._names = NameDetector(self.names_model)
        return self._names

    def anonymise(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Replace ``user_id`` by its pseudonym, scrub the texts and fill ``scrubbed``."""
        frame, counts = self._scrub_frame(self.pseudonymiser.anonymise(frame))
        found = [row for row, counter in counts.items() if counter]
        if not found:
            return frame
        entries = [
            [{"kind": kind, "count": n} for kind, n in sorted(counts[row].items())] for row in found
        ]
        return frame.with_columns(_replace_rows(frame["scrubbed"], found, entries))

    def rescrub(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, Counter[str]]:
        """A landed frame's texts and identifiers scrubbed again (by a scrubber that may find
        more than the one it landed under), each changed row's ``scrubbed`` report adding what
        was found now; and the count per kind of values replaced. A frame this scrubber landed
        comes back unchanged, with no count: placeholders and keyed identifiers hold nothing a
        detector finds."""
        frame, counts = self._scrub_frame(frame)
        found = [row for row, counter in counts.items() if counter]
        total: Counter[str] = Counter()
        if not found:
            return frame, total
        report = frame["scrubbed"].gather(found).to_list()
        entries = []
        for row, earlier in zip(found, report, strict=True):
            merged = Counter({e["kind"]: e["count"] for e in earlier or []})
            merged.update(counts[row])
            total.update(counts[row])
            entries.append([{"kind": k, "count": n} for k, n in sorted(merged.items())])
        return frame.with_columns(_replace_rows(frame["scrubbed"], found, entries)), total

    def _scrub_frame(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[int, Counter[str]]]:
        """Every text and identifier column of a pseudonymised frame scrubbed; what was found,
        per row (``scrubbed`` untouched: the callers fill it)."""
        import polars as pl

        # Prompts repeat the conversation so far, so a batch holds the same texts many times.
        self._seen = {}
        counts: dict[int, Counter[str]] = {}
        replaced: list[pl.Series] = []
        for column in TEXT_COLUMNS:
            series = frame[column]
            # Native code finds the rows with a candidate (in any message of a prompt); Python
            # looks at those rows only.
            if self.names_model is not None:
                mask = series.is_not_null()  # names have no shape to pre-filter on
            elif column == "prompt":
                contents = pl.element().struct.field("content").str.contains(PREFILTER)
                mask = series.list.eval(contents).list.any()
            else:
                mask = series.str.contains(PREFILTER)
            rows = mask.fill_null(False).arg_true().to_list()
            if not rows:
                continue
            values = series.gather(rows).to_list()
            if column == "prompt":
                new_values: list[object] = [
                    self._scrub_messages(value, counts.setdefault(row, Counter()))
                    for row, value in zip(rows, values, strict=True)
                ]
            else:
                new_values = [
                    self._scrub_text(value, counts.setdefault(row, Counter()))
                    for row, value in zip(rows, values, strict=True)
                ]
            replaced.append(_replace_rows(series, rows, new_values))
        replaced += self._scrub_structured(frame, counts)
        frame = frame.with_columns(*replaced)
        replaced = self._redact_identifiers(frame, counts)  # prompt's response ids too
        self._seen = {}
        return frame.with_columns(*replaced), counts

    def _scrub_text(self, text: str | None, counts: Counter[str]) -> str | None:
        if text is None:
            return None
        done = self._seen.get(text)
        if done is None:
            scrubbed, found = self.scrubber.scrub(text)
            if self.names is not None:
                scrubbed, people = self.names.scrub(scrubbed)
                if people:
                    found = {**found, "person": people}
            done = self._seen[text] = (scrubbed, found)
        scrubbed, found = done
        counts.update(found)
        return scrubbed

    def _scrub_structured(
        self, frame: pl.DataFrame, counts: dict[int, Counter[str]]
    ) -> list[pl.Series]:
        """``metadata`` and ``prompt_structure`` (``STRUCTURED_COLUMNS``) scrubbed: texts like
        the text columns, identifiers like the identifier columns."""
        replaced = []
        metadata = frame["metadata"]
        # The canonical JSON escapes only quotes, backslashes and control characters, none of
        # which a detector's gate spans, so the prefilter over the whole text misses no value.
        mask = metadata.is_not_null() if self.names_model else metadata.str.contains(PREFILTER)
        rows = mask.fill_null(False).arg_true().to_list()
        if rows:
            values = [
                self._scrub_metadata(text, counts.setdefault(row, Counter()))
                for row, text in zip(rows, metadata.gather(rows).to_list(), strict=True)
            ]
            replaced.append(_replace_rows(metadata, rows, values))
        structure = frame["prompt_structure"]
        # Few prompts have any structure: each one is looked at whole.
        rows = structure.is_not_null().arg_true().to_list()
        if rows:
            entries_of = [
                self._scrub_structure(entries, counts.setdefault(row, Counter()))
                for row, entries in zip(rows, structure.gather(rows).to_list(), strict=True)
            ]
            replaced.append(_replace_rows(structure, rows, entries_of))
        return replaced

    def _scrub_metadata(self, text: str, counts: Counter[str]) -> str:
        metadata = json.loads(text)
        for key, value in metadata.items():
            if isinstance(value, str):
                metadata[key] = self._scrub_text(value, counts)
        return canonical_metadata(metadata)

    def _scrub_structure(
        self, entries: list[dict[str, Any]], counts: Counter[str]
    ) -> list[dict[str, Any]]:
        scrubbed = []
        for entry in entries:
            entry = dict(entry)
            if entry["parts"] is not None:
                # A text part's text is in the message's content too, where it is counted.
                entry["parts"] = [
                    {**part, "text": self._scrub_text(part["text"], Counter()),
                     "image_url": self._scrub_text(part["image_url"], counts)}
                    for part in entry["parts"]
                ]  # fmt: skip
            if entry["tool_calls"] is not None:
                calls = []
                for call in entry["tool_calls"]:
                    call = {**call, "arguments": self._scrub_text(call["arguments"], counts)}
                    for field in ("id", "name"):
                        call[field] = self._counted_identifier(call[field], counts)
                    calls.append(call)
                entry["tool_calls"] = calls
            entry["tool_call_id"] = self._counted_identifier(entry["tool_call_id"], counts)
            scrubbed.append(entry)
        return scrubbed

    def _counted_identifier(self, value: str | None, counts: Counter[str]) -> str | None:
        new = self._identifier(value)
        if new != value:
            counts["identifier"] += 1
        return new

    def _redact_identifiers(
        self, frame: pl.DataFrame, counts: dict[int, Counter[str]]
    ) -> list[pl.Series]:
        """The identifier columns (``IDENTIFIER_COLUMNS``) with every value the scrubber finds
        something in replaced by its keyed stand-in, counted as ``identifier``."""
        import polars as pl

        replaced = []
        for column in (*IDENTIFIER_COLUMNS, "prompt"):
            series = frame[column]
            if column == "prompt":
                ids = _identifier_candidates(pl.element().struct.field("response_id"))
                mask = series.list.eval(ids.fill_null(False)).list.any()
            else:
                mask = series.to_frame().select(_identifier_candidates(pl.col(column))).to_series()
            rows = mask.fill_null(False).arg_true().to_list()
            changed_rows, new_values = [], []
            for row, value in zip(rows, series.gather(rows).to_list(), strict=True):
                if column == "prompt":
                    messages = [{**m, "response_id": self._identifier(m["response_id"])}
                                for m in value]  # fmt: skip
                    new: object = messages
                    hits = sum(a != b for a, b in zip(messages, value, strict=True))
                else:
                    new = self._identifier(value)
                    hits = int(new != value)
                if hits:
                    changed_rows.append(row)
                    new_values.append(new)
                    counts.setdefault(row, Counter())["identifier"] += hits
            if changed_rows:
                replaced.append(_replace_rows(series, changed_rows, new_values))
        return replaced

    def _identifier(self, value: str | None) -> str | None:
        """``value``, or its keyed stand-in if the scrubber finds anything in it."""
        if value is None:
            return None
        cached = self._identifiers.get(value)
        if cached is None:
            if len(self._identifiers) > 100_000:
                self._identifiers.clear()
            found = self.scrubber.find(value)
            keyring = self.pseudonymiser.keyring
            cached = self._identifiers[value] = keyring.identifier(value) if found else value
        return cached

    def _scrub_messages(
        self, messages: list[dict[str, str | None]] | None, counts: Counter[str]
    ) -> list[dict[str, str | None]] | None:
        if messages is None:
            return None
        return [
            {**message, "content": self._scrub_text(message.get("content"), counts)}
            for message in messages
        ]
