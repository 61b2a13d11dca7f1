"""``flywheel transform plan``'s output: tables for people, one JSON object for scripts."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from export.preview import DatasetPreview
    from transforms.plan import Count, Plan


def _signed(value: int | None) -> str:
    if value is None:
        return "-"
    return f"+{value:,}" if value > 0 else f"{value:,}" if value < 0 else "0"


def _counts(title: str, counts: list[Count], out: Console) -> None:
    out.print(title)
    table = Table(show_edge=False)
    for column in ("", "now", "next", "change"):
        table.add_column(column, justify="right" if column else "left")
    for count in counts:
        table.add_row(
            count.name, f"{count.before:,}", f"{count.after:,}", _signed(count.after - count.before)
        )
    out.print(table)


def print_plan(plan: Plan, previews: list[DatasetPreview], out: Console) -> None:
    """The plan as tables: the policy and the lake, the models, the signals, the datasets."""
    summary = plan.summary
    built = summary.previous_policy_hash
    policy = f"policy: {summary.policy_source} ({summary.policy_hash[:8]})"
    if built is None or built == summary.policy_hash:
        policy += ", the one the models were built with" if built else ""
    else:
        policy += f"; the models were built with {built[:8]}: every model would be rebuilt"
    out.print(policy, soft_wrap=True, markup=False)
    out.print(
        f"lake: {summary.files_loaded:,} file(s) with {summary.events_loaded:,} new event(s) "
        "would be loaded"
    )
    out.print("models")
    models = Table(show_edge=False)
    for column in ("model", "build", "rows now", "rows next", "added", "removed", "changed"):
        models.add_column(column, justify="left" if column in ("model", "build") else "right")
    for model in plan.models:
        models.add_row(
            model.name, model.mode, f"{model.rows_before:,}", f"{model.rows_after:,}",
            f"{model.added:,}", f"{model.removed:,}", f"{model.changed:,}",
        )  # fmt: skip
    out.print(models)
    _counts("preference pairs per signal", plan.pairs, out)
    _counts("labels", plan.labels, out)
    for item in previews:
        against = f"against {item.latest}" if item.latest else "(nothing published yet)"
        out.print(f"dataset {item.name}: the next version {against}", soft_wrap=True)
        table = Table(show_edge=False)
        for column in ("config", "split", "rows now", "rows next", "gained", "lost"):
            table.add_column(column, justify="left" if column in ("config", "split") else "right")
        for split in item.splits:
            table.add_row(
                split.config, split.split, f"{split.rows_latest:,}", f"{split.rows_next:,}",
                "-" if split.gained is None else f"{split.gained:,}",
                "-" if split.lost is None else f"{split.lost:,}",
            )  # fmt: skip
        out.print(table)
        for note in item.notes:
            out.print(f"  {note}", style="dim", soft_wrap=True)
    out.print("nothing was changed: `flywheel transform run` makes these changes", style="dim")


def print_plan_json(plan: Plan, previews: list[DatasetPreview]) -> None:
    """The plan as one JSON object on standard output."""
    summary = plan.summary
    found = {
        "policy_source": summary.policy_source,
        "policy_hash": summary.policy_hash,
        "built_with_policy_hash": summary.previous_policy_hash,
        "files": summary.files_loaded,
        "events": summary.events_loaded,
        "models": [asdict(model) for model in plan.models],
        "pairs_per_signal": [asdict(count) for count in plan.pairs],
        "labels": [asdict(count) for count in plan.labels],
        "datasets": [asdict(item) for item in previews],
        "seconds": {key: round(value, 3) for key, value in plan.seconds.items()},
    }
    sys.stdout.write(json.dumps(found, indent=2) + "\n")
