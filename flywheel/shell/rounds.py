"""``flywheel demo --rounds N``: the flywheel turning, simulated.

Round 0 serves the simulator's answers as they come (one draw each). Its traffic is posted,
landed, transformed and published as the demo does it; a reward model (``evaluate.bradley_terry``)
is trained on the published version's ``dpo`` train split. Round k serves, for every answer, the
best of ``best_of`` candidates by the reward model of round k-1, and so on. The simulated users
react as always: their hidden preferences never change, and the reward model learns them only
from what they did, through the published dataset.

Each round's hidden satisfaction is its policy's ground-truth win rate against round 0's policy
(``simulator.hidden_win_rate``: the same prompts and candidates every round, so rounds differ only
by the reward model that picks). A control arm runs the same rounds in a data dir of its own,
its reward models trained on the same kind of dataset with each pair's sides swapped at random
(shuffled labels): it draws the same amount of feedback, but learns nothing, so its satisfaction
should stay near round 0's.

Each arm's data lives in ``<data dir>/rounds/<arm>/`` (a lake, a warehouse, datasets), cleared
when a run starts; the table and the chart go to ``<data dir>/rounds/`` (``rounds.json``,
``rounds.png``).
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from flywheel.errors import ConfigError
from flywheel.settings import LakeSettings, Settings

ROUNDS_DIR = "rounds"
ARMS = {"reward model": "policy", "control, shuffled labels": "control"}
"""Each arm's name in the report, and its folder under ``<data dir>/rounds/``."""
PROMPTS = 2000
"""First messages on which each round's hidden satisfaction is measured."""
SHORT = {"ab_choice": "A/B", "copy": "copy", "edit": "edit", "regenerate": "regen",
         "rating": "rating"}  # fmt: skip
"""The feedback events counted per round, and their columns' headers."""


@dataclass
class RoundRow:
    """One round of one arm."""

    arm: str
    round: int
    wins: float
    prompts: int
    low: float
    high: float
    events: int
    """Events posted this round."""
    signals: dict[str, int]
    """Feedback events posted this round, by type."""
    version: str
    pairs: int
    """``dpo`` rows of the version published after this round (the dataset's size)."""
    train_pairs: int
    """Pairs the next round's reward model was trained on."""

    @property
    def satisfaction(self) -> float:
        return self.wins / self.prompts


@dataclass
class RoundsReport:
    rows: list[RoundRow]
    chart: Path | None
    table: Path


def run_rounds(
    *,
    settings: Settings,
    rounds: int,
    events: int,
    seed: int,
    best_of: int,
    control: bool,
    console: Console,
) -> RoundsReport:
    """Run the arms round by round; print the table and write it with the chart."""
    if settings.lake.url is not None or settings.export.target is not None:
        raise ConfigError(
            "flywheel demo --rounds keeps each arm's lake and datasets under the data dir: unset "
            "FLYWHEEL_LAKE__URL and FLYWHEEL_EXPORT__TARGET"
        )
    root = settings.data_dir / ROUNDS_DIR
    rows: list[RoundRow] = []
    arms = list(ARMS.items()) if control else list(ARMS.items())[:1]
    for arm, folder in arms:
        shuffled = folder == "control"
        arm_settings = settings.model_copy(
            update={
                "data_dir": root / folder,
                "lake": LakeSettings(),  # the arm's own lake and catalog, under its data dir
                "export": settings.export.model_copy(update={"target": None}),
            }
        )
        if arm_settings.data_dir.exists():
            shutil.rmtree(arm_settings.data_dir)
        arm_settings.data_dir.mkdir(parents=True)
        rows += _arm(arm, arm_settings, rounds=rounds, events=events, seed=seed,
                     best_of=best_of, shuffled=shuffled, console=console)  # fmt: skip
    table = root / "rounds.json"
    table.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    chart = write_chart(rows, root / "rounds.png", best_of=best_of)
    for arm, _ in arms:
        console.print(rounds_table(rows, arm, best_of))
    console.print(
        "satisfaction: how often the round's answer is truly better than round 0's, on "
        f"{PROMPTS:,} first messages (a tie counts half; 0.5: no better); the users' hidden "
        "preferences reach the reward model only through what they did"
    )
    console.print(f"table: {table}", soft_wrap=True)
    if chart is not None:
        console.print(f"chart: {chart}", soft_wrap=True)
    return RoundsReport(rows, chart, table)


def _arm(
    arm: str, settings: Settings, *, rounds: int, events: int, seed: int, best_of: int,
    shuffled: bool, console: Console,
) -> list[RoundRow]:  # fmt: skip
    from flywheel.dev import simulator
    from flywheel.shell.demo import land_and_publish, with_demo_keys
    from warehouse.lake import open_lake

    quiet = Console(quiet=True)
    lake = open_lake(settings, local_only="flywheel demo --rounds")
    settings, write_key, keyring = with_demo_keys(settings, quiet)
    rows = []
    reranker: simulator.Reranker | None = None
    start = simulator.SimulationConfig().start
    for k in range(rounds + 1):
        with console.status(f"{arm}: round {k} of {rounds}"):
            wins, prompts = simulator.hidden_win_rate(
                reranker, best_of=best_of, prompts=PROMPTS, seed=seed
            )
            config = simulator.SimulationConfig(
                events=events,
                seed=seed * 1000 + k,  # new users and conversations every round
                start=start + timedelta(days=7 * k),
                best_of=best_of if reranker is not None else 1,
                reranker=reranker,
            )
            traffic = list(simulator.simulate(config))
            # The reward model below is this run's own; the card needs none.
            _, _, exported = land_and_publish(settings, traffic, write_key, keyring, lake, quiet,
                                              evaluated=False)  # fmt: skip
            model = _reward_model(settings.data_dir, exported["version"], shuffled, seed + k)
        reranker = model.scores
        low, high = _interval(wins, prompts)
        by_type = Counter(e["type"] for e in traffic)
        rows.append(
            RoundRow(
                arm=arm, round=k, wins=wins, prompts=prompts, low=low, high=high,
                events=len(traffic), signals={t: by_type.get(t, 0) for t in SHORT},
                version=exported["version"], pairs=exported["counts"]["dpo"].rows,
                train_pairs=model.pairs,
            )
        )  # fmt: skip
        console.print(
            f"{arm}: round {k}: satisfaction {wins / prompts:.3f} ({low:.3f} to {high:.3f}), "
            f"{len(traffic):,} events, dataset {exported['version']} with "
            f"{exported['counts']['dpo'].rows:,} pairs"
        )
    return rows


def _reward_model(data_dir: Path, version: str, shuffled: bool, seed: int) -> Any:
    """The reward model trained on ``version``'s train pairs, each pair's sides swapped with
    even odds when ``shuffled`` (the control: the same texts, no preference in them)."""
    from evaluate.bradley_terry import fit
    from evaluate.utility import TRAIN, read_pairs
    from export.catalog import Catalog
    from flywheel.shell.demo import DATASET

    files = Catalog.in_data_dir(data_dir).data_files(DATASET, version)["dpo"][TRAIN]
    sides = [(p.chosen, p.rejected) for p in read_pairs(files)]
    if shuffled:
        rng = random.Random(seed)
        sides = [(b, a) if rng.random() < 0.5 else (a, b) for a, b in sides]
    return fit(sides)


def _interval(wins: float, n: int) -> tuple[float, float]:
    from review.stats import wilson

    interval = wilson(wins, n)  # type: ignore[arg-type]
    assert interval is not None
    return interval


def rounds_table(rows: list[RoundRow], arm: str, best_of: int) -> Table:
    """One arm's rounds: satisfaction, the feedback collected, the dataset published."""
    table = Table(title=f"{arm}: best of {best_of} by the previous round's reward model",
                  show_edge=False)  # fmt: skip
    headers = ("round", "satisfaction (95%)", "events", *SHORT.values(), "dataset", "pairs")
    for header in headers:
        table.add_column(header, justify="left" if header == "dataset" else "right")
    for r in (r for r in rows if r.arm == arm):
        table.add_row(
            str(r.round), f"{r.satisfaction:.3f} ({r.low:.3f}-{r.high:.3f})", f"{r.events:,}",
            *(f"{r.signals[t]:,}" for t in SHORT), r.version, f"{r.pairs:,}",
        )  # fmt: skip
    return table


def write_chart(rows: list[RoundRow], path: Path, *, best_of: int) -> Path | None:
    """Satisfaction by round with its interval, one line per arm, beside the dataset's size: a
    PNG (matplotlib), or None when matplotlib is not installed (the export extra has it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for arm in dict.fromkeys(r.arm for r in rows):
        mine = [r for r in rows if r.arm == arm]
        x = [r.round for r in mine]
        y = [r.satisfaction for r in mine]
        errors = [[v - r.low for v, r in zip(y, mine, strict=True)],
                  [r.high - v for v, r in zip(y, mine, strict=True)]]  # fmt: skip
        left.errorbar(x, y, yerr=errors, marker="o", capsize=3, label=arm)
        right.plot(x, [r.pairs for r in mine], marker="o", label=arm)
    left.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    left.set(title=f"Hidden satisfaction (best of {best_of})", xlabel="round",
             ylabel="win rate against round 0 (95% interval)")  # fmt: skip
    right.set(title="Dataset size", xlabel="round", ylabel="preference pairs published")
    for axes in (left, right):
        axes.set_xticks(sorted({r.round for r in rows}))
        axes.legend()
        axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
    return path
