"""The tables of a reward model's evaluation (``evaluate.utility``), as ``flywheel evaluate`` and
the demo print them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from evaluate.utility import EvaluationPublic
    from export.manifest import Accuracy, Evaluation
    from export.publish import Evaluator


def export_evaluator() -> Evaluator | None:
    """What records a version's evaluation in its manifest (``evaluate.utility.evaluate_files``),
    when the export extra is installed (NumPy and SciPy fit the model). Without it, None: the
    export's quality gate then stops with the one line that names the extra, not an import
    error."""
    try:
        from evaluate.utility import evaluate_files
    except ModuleNotFoundError:
        return None
    return evaluate_files


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def accuracy_table(title: str, accuracies: list[Accuracy]) -> Table:
    """Each held-out set's pairs, accuracy and 95% interval."""
    table = Table(title=title, show_edge=False)
    for column in ("measured on", "pairs", "accuracy", "95% interval"):
        table.add_column(column)
    for a in accuracies:
        interval = "-" if a.wilson_low is None else f"{a.wilson_low:.3f} to {a.wilson_high:.3f}"
        table.add_row(a.name, f"{a.pairs:,}", _share(a.accuracy), interval)
    return table


def ablation_table(found: Evaluation) -> Table:
    """Each signal left out: the train pairs left and each accuracy with its change."""
    names = [a.name for a in found.accuracies]
    base = {a.name: a.accuracy for a in found.accuracies}
    table = Table(title="without each signal's pairs (accuracy, change)", show_edge=False)
    for column in ("left out", "train pairs", *names):
        table.add_column(column)
    for ablation in found.ablations:
        cells = []
        for a in ablation.accuracies:
            before = base.get(a.name)
            change = (
                "" if a.accuracy is None or before is None else f" ({a.accuracy - before:+.3f})"
            )
            cells.append(_share(a.accuracy) + change)
        table.add_row(ablation.signal, f"{ablation.train_pairs:,}", *cells)
    return table


def print_evaluation(found: EvaluationPublic, console: Console) -> None:
    """The accuracy table, then the ablation table when there is one."""
    title = (
        f"{found.dataset} {found.version}: {found.model}, trained on {found.train_pairs:,} pairs"
    )
    console.print(accuracy_table(title, found.accuracies))
    if found.ablations:
        console.print(ablation_table(found))
