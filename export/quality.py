"""The quality gate: a Great Expectations suite per config, run before anything is published.

Critical expectations (a failure publishes nothing): the TRL columns are never null; chosen
differs from rejected; confidences lie between the policy's minimum and 1; ids are unique; no
text is only a placeholder (``<EMAIL>``, ``<SECRET:aws_access_key>``...); no text holds a raw
email address, cloud key, token or private key (the vendor formats the scrubber knows, without its
checks of context: ``privacy.detectors.RAW_SECRETS``), nor a card number (a card network's prefix
and the Luhn check), as a second line of defence behind the scrubber; no conversation sits in two
splits; the row count reaches the policy's floor.

Warnings (reported, not blocking): the share of pairs whose chosen text is the longer one (a
length bias the trainer would learn), the share of A/B pairs won by the side shown first (position
bias), and the largest share of rows from one user.

Great Expectations runs on pandas frames: its SQL datasource fails on DuckDB in the version this
project uses (every expectation raises inside the metric resolver). The derived columns the
expectations read (``_same``, ``_conversation_splits``...) exist only in the validation frame.
Each run writes Great Expectations' Data Docs (HTML) into the attempt's ``quality/`` folder.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.manifest import Check, Quality
from export.policy import DatasetPolicy, Kind
from flywheel.extras import require
from privacy.detectors import RAW_SECRETS

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

log = logging.getLogger(__name__)

TEXT_COLUMNS: dict[str, list[str]] = {
    "dpo": ["prompt", "chosen", "rejected"],
    "kto": ["prompt", "completion"],
    "reward": ["chosen", "rejected"],
}
REQUIRED_COLUMNS: dict[str, list[str]] = {
    "dpo": ["prompt", "chosen", "rejected", "id", "confidence"],
    "kto": ["prompt", "completion", "label", "id", "confidence"],
    "reward": ["chosen", "rejected", "margin", "id", "confidence"],
}
# A text that is nothing but placeholders left by the scrubber.
PLACEHOLDER_ONLY = r"^\s*(?:<[A-Z_]+(?::[a-z0-9_]+)?>\s*)+$"
# Raw values that must never be published: e-mail addresses and every vendor's token format, from
# the scrubber's own table (one definition of the formats; see ``privacy.detectors.RAW_SECRETS``).
_ANY_RAW_SECRET = "|".join(f"(?:{pattern})" for pattern in RAW_SECRETS)
# A card number: 13 to 19 digits, maybe grouped by spaces or dashes, after a network's prefix
# (Visa, Mastercard, Amex, Diners, JCB, Discover, UnionPay, Maestro). polars finds the texts
# holding such a run; only those go on to Python for the boundaries (Rust's regex has no
# look-around) and the Luhn check, which a regex cannot do and which keeps ids and timestamps out.
CARD_CANDIDATE = r"(?:4|5[0-5]|2[2-7]|3[0-9]|6[0-9])[0-9](?:[ -]?[0-9]){11,17}"
RAW_CARD = rf"(?<![\w.,+-]){CARD_CANDIDATE}(?![\w-]|[.,][0-9])"
LENGTH_BIAS = (0.25, 0.75)
POSITION_BIAS = (0.35, 0.65)


@dataclass
class Outcome:
    """One expectation's result."""

    config: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed: Any = None
    unexpected: int | None = None

    def line(self) -> str:
        where = f"{self.config}.{self.column}" if self.column else self.config
        detail = f"{self.unexpected} unexpected" if self.unexpected else f"observed {self.observed}"
        return f"{where}: {self.expectation} ({detail})"


@dataclass
class GateResult:
    """Every expectation's outcome, and where the Data Docs report is."""

    report: Path
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failed("critical")

    def failed(self, severity: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.severity == severity and not o.success]

    def summary(self) -> Quality:
        """What the manifest and the card record."""
        return Quality(
            success=self.success,
            expectations=len(self.outcomes),
            critical_failed=[o.line() for o in self.failed("critical")],
            warnings=[o.line() for o in self.failed("warning")],
            checks=[
                Check(
                    config=o.config,
                    expectation=o.expectation,
                    column=o.column,
                    severity=o.severity,
                    success=o.success,
                    observed=o.observed,
                    unexpected=o.unexpected,
                )
                for o in self.outcomes
            ],
        )


def _as_text(values: pl.Series) -> pl.Series:
    """A text column, or a column of message lists, as plain text (messages joined, with their
    tool calls' arguments when they have any)."""
    import polars as pl

    if values.dtype == pl.String:
        return values
    message = pl.element().struct
    text = message.field("content")
    if "tool_calls" in values.dtype.inner.to_schema():  # type: ignore[attr-defined]
        arguments = message.field("tool_calls").list.eval(
            pl.element().struct.field("function").struct.field("arguments")
        )
        text = pl.concat_str(text.fill_null(""), arguments.list.join("\n").fill_null(""),
                             separator="\n")  # fmt: skip
    return values.list.eval(text).list.join("\n")


def has_card_number(text: str) -> bool:
    """True if the text holds a number that is written and checksummed like a card number."""
    from stdnum import luhn

    for match in re.finditer(RAW_CARD, text):
        digits = match.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
            return True
    return False


def _card_flags(texts: pl.Series) -> pl.Series:
    """Per text, whether it holds a card number (polars finds the candidates, Python checks)."""
    import polars as pl

    candidates = texts.str.contains(CARD_CANDIDATE).fill_null(False)
    flags = [False] * len(texts)
    rows = candidates.arg_true().to_list()
    for row, text in zip(rows, texts.gather(rows).to_list(), strict=True):
        flags[row] = has_card_number(text)
    return pl.Series(texts.name, flags, dtype=pl.Boolean)


def validation_frame(frame: pl.DataFrame, kind: Kind) -> pd.DataFrame:
    """The shaped rows (with ``split`` and ``chosen_shown_first``) plus the derived columns the
    expectations read, as pandas. Each text column is searched here, in polars, for the
    placeholder-only, raw-secret and card-number patterns: the expectations read the flags.
    (Searched by Great Expectations, eleven pandas passes over every text took about 4 s of a
    0.5M export, and a failed gate's report quoted the offending texts: a raw secret copied into
    HTML.)"""
    import polars as pl

    texts = {column: _as_text(frame[column]) for column in TEXT_COLUMNS[kind]}
    derived = frame.select(
        *(pl.col(c) for c in REQUIRED_COLUMNS[kind]),
        "split",
        "conversation",
        "user",
        "chosen_shown_first",
        *(texts[c].str.contains(PLACEHOLDER_ONLY).alias(f"_placeholder_only_{c}")
          for c in TEXT_COLUMNS[kind]),
        *(texts[c].str.contains(_ANY_RAW_SECRET).alias(f"_raw_secret_{c}")
          for c in TEXT_COLUMNS[kind]),
        *(_card_flags(texts[c]).alias(f"_raw_card_{c}") for c in TEXT_COLUMNS[kind]),
    )  # fmt: skip
    derived = derived.with_columns(
        pl.col("split").n_unique().over("conversation").alias("_conversation_splits"),
        (pl.len().over("user") / max(frame.height, 1)).alias("_user_share"),
    )
    if kind in ("dpo", "reward"):
        chosen, rejected = texts["chosen"], texts["rejected"]
        derived = derived.with_columns(
            _same=(chosen == rejected),
            _chosen_longer=(chosen.str.len_chars() > rejected.str.len_chars()).cast(pl.Float64),
            _chosen_shown_first=pl.col("chosen_shown_first").cast(pl.Float64),
        )
    return derived.drop("chosen_shown_first").to_pandas()


def _suite(kind: Kind, policy: DatasetPolicy, *, ab_pairs: int) -> list[Any]:
    import great_expectations.expectations as gxe

    warning = {"severity": "warning"}
    checks: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=policy.min_rows)]
    checks += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in REQUIRED_COLUMNS[kind]]
    checks += [
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToBeBetween(
            column="confidence", min_value=policy.min_confidence, max_value=1
        ),
        gxe.ExpectColumnValuesToBeBetween(column="_conversation_splits", min_value=1, max_value=1),
        gxe.ExpectColumnMaxToBeBetween(column="_user_share", max_value=0.1, **warning),
    ]
    checks += [
        gxe.ExpectColumnValuesToBeInSet(column=f"{flag}{column}", value_set=[False])
        for column in TEXT_COLUMNS[kind]
        for flag in ("_placeholder_only_", "_raw_secret_", "_raw_card_")
    ]
    if kind in ("dpo", "reward"):
        low, high = LENGTH_BIAS
        first_low, first_high = POSITION_BIAS
        checks += [
            gxe.ExpectColumnValuesToBeInSet(column="_same", value_set=[False]),
            gxe.ExpectColumnMeanToBeBetween(
                column="_chosen_longer", min_value=low, max_value=high, **warning
            ),
        ]
        if ab_pairs:
            checks.append(
                gxe.ExpectColumnMeanToBeBetween(
                    column="_chosen_shown_first",
                    min_value=first_low,
                    max_value=first_high,
                    **warning,
                )
            )
    if kind == "reward":
        checks.append(gxe.ExpectColumnValuesToBeBetween(column="margin", min_value=0, max_value=1))
    if kind == "kto":
        checks.append(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[True, False]))
    return checks


def run_gate(
    frames: dict[Kind, pl.DataFrame], policy: DatasetPolicy, report_dir: Path
) -> GateResult:
    """Validate every config's frame; write the Data Docs into ``report_dir``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    require("great_expectations", extra="export")  # one clear line when it is not installed
    import great_expectations as gx
    from great_expectations.data_context.types import base
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # This module sets its own logger to INFO on import; let it follow the package's level.
    base.logger.setLevel(logging.NOTSET)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name="quality",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(report_dir.resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_pandas("export")
    result = GateResult(report=report_dir / "index.html")
    for kind, frame in frames.items():
        batch = source.add_dataframe_asset(kind).add_batch_definition_whole_dataframe("rows")
        suite = context.suites.add(gx.ExpectationSuite(name=kind))
        ab_pairs = frame.height - frame["chosen_shown_first"].null_count()
        for expectation in _suite(kind, policy, ab_pairs=ab_pairs):
            suite.add_expectation(expectation)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=kind, data=batch, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"gate-{kind}",
                validation_definitions=[definition],
                actions=[],
                result_format="SUMMARY",
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": validation_frame(frame, kind)})
        _forget_batches(source)
        for validation in run.run_results.values():
            for outcome in validation.results:
                config = outcome.expectation_config
                raised = (outcome.exception_info or {}).get("raised_exception", False)
                details = outcome.result or {}
                result.outcomes.append(
                    Outcome(
                        config=kind,
                        expectation=config.type,
                        column=config.kwargs.get("column"),
                        severity=str(getattr(config.severity, "value", config.severity)),
                        # An expectation that raised is a failure, never a silent pass.
                        success=bool(outcome.success) and not raised,
                        observed=_plain(details.get("observed_value")),
                        unexpected=details.get("unexpected_count"),
                    )
                )
    # The site is built once, from every config's stored validation (an update action on each
    # checkpoint rebuilt it each time).
    context.build_data_docs(site_names=["quality"])
    return result


def _forget_batches(source: Any) -> None:
    """Let Great Expectations drop the frame it just validated: its pandas engine keeps every
    batch it was given (each config's frame, 126 to 277 MB at 0.5M events) for as long as the
    context lives, and the context outlives the gate. These are its internals (1.x); without
    them, nothing is lost but the memory."""
    try:
        manager = source.get_execution_engine().batch_manager
        manager.batch_data_cache.clear()
        manager.reset_batch_cache()
    except AttributeError:
        log.debug("great_expectations keeps its batches (no batch_manager to clear)")


def _plain(value: Any) -> Any:
    """An observed value as JSON-ready data (numpy scalars to Python, floats rounded)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    try:
        return round(float(value), 6)
    except (TypeError, ValueError):
        return str(value)
