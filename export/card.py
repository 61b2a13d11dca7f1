"""The dataset card (README.md) of a published version.

Its YAML header's ``configs`` tell ``datasets.load_dataset(path, "dpo")`` which files make each
config and split. The body states the signal mix, each signal's calibrated agreement with explicit
choices, what a light reward model learned from the pairs (when the manifest holds its
evaluation), the quality results, the time window and the policy. It is made from the manifest's
deterministic parts only (no creation time), so a re-run writes the same bytes.
"""

from __future__ import annotations

import json

from export.manifest import Evaluation, Manifest
from export.policy import DatasetPolicy, Kind

_TRAINERS = {"dpo": "DPOTrainer", "kto": "KTOTrainer", "reward": "RewardTrainer"}
_COLUMNS = {
    "dpo": "`prompt`, `chosen`, `rejected`",
    "kto": "`prompt`, `completion`, `label`",
    "reward": "`chosen`, `rejected`, `margin` (the prompt is implicit: both start with it)",
}


def _yaml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


def _front_matter(manifest: Manifest) -> list[str]:
    lines = ["---", f"pretty_name: {_yaml_string(manifest.dataset + ' ' + manifest.version)}"]
    lines += ["license: other", "tags:", "- trl", "- preference", "- feedback-flywheel", "configs:"]
    for kind, counts in manifest.counts.items():
        lines += [f"- config_name: {kind}", "  data_files:"]
        for split in counts.splits:
            lines += [
                f"  - split: {split}",
                f"    path: {_yaml_string(f'data/{kind}/{split}-*.parquet')}",
            ]
    lines.append("---")
    return lines


def _extra_columns(policy: DatasetPolicy, kinds: list[Kind]) -> list[str]:
    """The paragraph on the policy's ``extra_columns`` (none without them)."""
    if not policy.extra_columns:
        return []
    per_kind = [
        f"{kind}: " + ", ".join(f"`{name}`" for name in policy.extra_names(kind))
        for kind in kinds
        if policy.extra_names(kind)
    ]
    sources = ", ".join(
        f"`{e.model}` ({', '.join(e.columns)}, by {e.key})" for e in policy.extra_columns
    )
    return [
        f"Extra columns, after the lineage ones, from the publisher's models {sources}: "
        + "; ".join(per_kind)
        + ".",
        "",
    ]


def render_card(manifest: Manifest) -> str:
    """The card's Markdown for a manifest (before its file hashes are added)."""
    policy = DatasetPolicy.from_record(manifest.policy)
    quality = manifest.quality
    window = manifest.time_window
    name, version = manifest.dataset, manifest.version
    lines = _front_matter(manifest)
    lines += [
        "",
        f"# {name} {version}",
        "",
        policy.description or "Preference data derived from chat users' actions.",
        "",
        "Derived from what users did with a chat model's answers (A/B choices, ratings, copies, "
        "edits, regenerations, continued conversations), anonymised before it was stored: user ids "
        "are pseudonyms, re-keyed for this dataset along with conversation, row and event ids (the "
        "`user`, `conversation`, `id` and `event_ids` columns differ from one dataset to another, "
        "so rows of two datasets cannot be matched on them), "
        "and e-mail addresses, phone numbers, card numbers, IBANs, IP addresses, US social "
        "security numbers and secrets are replaced by typed placeholders such as `<EMAIL>`.",
        "",
        "## Configs",
        "",
        "| config | columns | split | rows | trainer |",
        "|---|---|---|---:|---|",
    ]
    for kind, counts in manifest.counts.items():
        for split, split_counts in counts.splits.items():
            lines.append(
                f"| {kind} | {_COLUMNS[kind]} | {split} | {split_counts.rows:,} "
                f"| TRL `{_TRAINERS[kind]}` |"
            )
    lines += [
        "",
        f"Message format: **{policy.message_format}**. Lineage columns, ignored by the "
        "trainers: `id` (the pair or response), `confidence` (0 to 1), `signals`, `event_ids`, "
        "`models`, `user` and `conversation` (every id re-keyed; the publisher can trace a row "
        "back with `flywheel export trace`).",
        "",
        *_extra_columns(policy, [k for k in policy.kinds if k in manifest.counts]),
        "```python",
        "from datasets import load_dataset",
        "",
        'dpo = load_dataset("path/to/this/folder", "dpo")  # or "kto", "reward"',
        "```",
        "",
        "## Signal mix",
        "",
        "Rows carrying each signal (a row can carry several):",
        "",
        "| config | split | " + " | ".join(_signals(manifest)) + " |",
        "|---|---|" + "---:|" * len(_signals(manifest)),
    ]
    for kind, counts in manifest.counts.items():
        for split, split_counts in counts.splits.items():
            cells = [f"{split_counts.signals.get(s, 0):,}" for s in _signals(manifest)]
            lines.append(f"| {kind} | {split} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Calibration",
        "",
        "How often each implicit signal agrees with an explicit choice (A/B or rating) on the "
        "same responses, over the whole warehouse, with a 95% Wilson interval:",
        "",
        "| signal | against | agree | n | agreement | interval |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in manifest.calibration:
        agreement = "n/a" if row.agreement is None else f"{row.agreement:.3f}"
        interval = (
            "n/a"
            if row.wilson_low is None or row.wilson_high is None
            else f"{max(row.wilson_low, 0.0):.3f} to {row.wilson_high:.3f}"
        )
        lines.append(
            f"| {row.signal} | {row.explicit} | {row.agree:,} | {row.n:,} "
            f"| {agreement} | {interval} |"
        )
    if any(row.explicit == "review" for row in manifest.calibration):
        # Only when there are reviews, so that a card without them stays as it was.
        lines += [
            "",
            "Rows against `review` are human precision: of the reviewers' verdicts on sampled "
            "pairs that every signal voted for, the share that preferred the pair's chosen "
            "answer (ties and both-bad left out; docs/review.md).",
        ]
    if manifest.evaluation is not None:
        lines += _evaluation(manifest.evaluation)
    lines += [
        "",
        "## Quality",
        "",
        f"Great Expectations gate: **{'passed' if quality.success else 'failed'}**, "
        f"{quality.expectations} expectations; the report is in `quality/index.html`.",
        "",
    ]
    warnings = quality.warnings
    lines += [f"- warning: {w}" for w in warnings] or ["- no warnings"]
    lines += [
        "",
        "## Time window",
        "",
        f"Responses shown from {window.first_event} to {window.last_event}.",
        "",
        "## Policy",
        "",
        f"Policy hash `{manifest.policy_hash}`; transforms policy hash "
        f"`{manifest.source.transforms_policy_hash}`; principles hash "
        f"`{manifest.source.transforms_principles_hash}`; code version "
        f"{manifest.code_version}.",
        "",
        "```json",
        json.dumps(manifest.policy, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _interval(low: float | None, high: float | None) -> str:
    return "n/a" if low is None or high is None else f"{low:.3f} to {high:.3f}"


def _evaluation(evaluation: Evaluation) -> list[str]:
    """The section "What the data teaches": the reward model's held-out accuracies, then what
    each signal adds to the ``test`` accuracy."""
    lines = [
        "",
        "## What the data teaches",
        "",
        "A Bradley-Terry reward model over hashed words, trained on the "
        f"{evaluation.train_pairs:,} `dpo` pairs of the `train` split and measured on held-out "
        "pairs it never saw: the share of pairs whose chosen answer it scores higher, with a 95% "
        "Wilson interval; 0.5 is chance (docs/evaluate.md). `test` is every held-out pair, "
        "`ab_choice` those an explicit A/B choice decided.",
        "",
        "| held-out set | pairs | accuracy | 95% interval |",
        "|---|---:|---:|---|",
    ]
    for a in evaluation.accuracies:
        lines.append(
            f"| {a.name} | {a.pairs:,} | {_share(a.accuracy)} "
            f"| {_interval(a.wilson_low, a.wilson_high)} |"
        )
    if not evaluation.ablations:
        return lines
    lines += [
        "",
        "What each signal adds: the model trained again without the pairs that signal voted "
        "for, and the change of its `test` accuracy against the model trained on every pair "
        "(negative: the model does worse without the signal).",
        "",
        "| signal | train pairs without it | test accuracy without it | change |",
        "|---|---:|---:|---:|",
    ]
    for ablation in evaluation.ablations:
        change = evaluation.change(ablation)
        lines.append(
            f"| {ablation.signal} | {ablation.train_pairs:,} | {_share(ablation.accuracy('test'))} "
            f"| {'n/a' if change is None else f'{change:+.3f}'} |"
        )
    return lines


def _signals(manifest: Manifest) -> list[str]:
    found = {
        signal
        for counts in manifest.counts.values()
        for split_counts in counts.splits.values()
        for signal in split_counts.signals
    }
    return sorted(found)
