"""The dataset card (README.md) of a published version.

Its YAML header's ``configs`` tell ``datasets.load_dataset(path, "dpo")`` which files make each
config and split; the rest of it is what the Hugging Face Hub shows and searches by
(``pretty_name``, ``license``, ``language``, ``task_categories``, ``size_categories``,
``tags``). The body states the signal mix, each signal's calibrated agreement with explicit
choices, what a light reward model learned from the pairs (when the manifest holds its
evaluation), the quality results, the time window and the policy (its filters in words). It is
made from the manifest's deterministic parts only (no creation time), so a re-run writes the
same bytes.
"""

from __future__ import annotations

import json

from export.manifest import Evaluation, Manifest
from export.policy import DEFAULT_LANGUAGE, DEFAULT_LICENSE, DatasetPolicy, Kind

_TRAINERS = {"dpo": "DPOTrainer", "kto": "KTOTrainer", "reward": "RewardTrainer"}
_COLUMNS = {
    "dpo": "`prompt`, `chosen`, `rejected`",
    "kto": "`prompt`, `completion`, `label`",
    "reward": "`chosen`, `rejected`, `margin` (the prompt is implicit: both start with it)",
}


def _yaml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


_TASKS = {
    "dpo": ("text-generation", "reinforcement-learning"),
    "kto": ("text-generation", "reinforcement-learning"),
    "reward": ("text-classification", "reinforcement-learning"),
}
"""The Hub's task categories of each config: DPO and KTO train a model that generates text;
a reward model scores texts (a sequence classifier with one output); all three are
reinforcement learning from human feedback."""
_KIND_TAGS = {"dpo": "dpo", "kto": "kto", "reward": "reward-modeling"}
SIZE_CATEGORIES = (
    "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B",
    "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T",
)  # fmt: skip
"""The Hub's ``size_categories``, by powers of ten from 1,000."""


def size_category(rows: int) -> str:
    """The Hub's size bucket of ``rows`` examples: below 1,000 ``n<1K``; from 1,000 to 9,999
    ``1K<n<10K``, and so on (a bucket holds its lower power of ten); 10^12 and more ``n>1T``."""
    bucket, bound = 0, 1_000
    while rows >= bound and bucket < len(SIZE_CATEGORIES) - 1:
        bucket, bound = bucket + 1, bound * 10
    return SIZE_CATEGORIES[bucket]


def _front_matter(manifest: Manifest, policy: DatasetPolicy) -> list[str]:
    """The YAML header the Hub reads: name, license, languages, tasks, size, tags and the
    configs' files by split. The size is the largest config's rows (a trainer reads one
    config; dpo and reward hold the same pairs)."""
    kinds = list(manifest.counts)
    tasks = sorted({task for kind in kinds for task in _TASKS.get(kind, ())})
    rows = max((counts.rows for counts in manifest.counts.values()), default=0)
    lines = ["---", f"pretty_name: {_yaml_string(manifest.dataset + ' ' + manifest.version)}"]
    lines.append(f"license: {_yaml_string(policy.license or DEFAULT_LICENSE)}")
    lines += ["language:", *(f"- {_yaml_string(code)}"
                             for code in policy.language or DEFAULT_LANGUAGE)]  # fmt: skip
    lines += ["task_categories:", *(f"- {task}" for task in tasks)]
    lines += ["size_categories:", f"- {_yaml_string(size_category(rows))}"]
    tags = ["trl", "preference", "feedback-flywheel", "rlhf"]
    tags += [_KIND_TAGS[kind] for kind in kinds if kind in _KIND_TAGS]
    lines += ["tags:", *(f"- {tag}" for tag in tags), "configs:"]
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
    lines = _front_matter(manifest, policy)
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
        *_selection(policy),
        "```json",
        json.dumps(manifest.policy, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


def _selection(policy: DatasetPolicy) -> list[str]:
    """The policy's filters in words (nothing when it has none, so that the card of an
    unfiltered dataset is what it was before filters existed)."""
    if not policy.filtered:
        return []
    found = []
    if policy.models is not None:
        found.append("generated by " + " or ".join(f"`{m}`" for m in policy.models))
    if policy.apps is not None:
        found.append("in the app " + " or ".join(f"`{a}`" for a in policy.apps))
    if policy.since is not None:
        found.append(f"at or after {policy.since.isoformat()}")
    if policy.until is not None:
        found.append(f"before {policy.until.isoformat()}")
    for key, values in policy.metadata_values().items():
        found.append(f"with metadata `{key}` = " + " or ".join(json.dumps(v) for v in values))
    return [
        "Only the rows whose every response was " + "; ".join(found) + " (judged by the "
        "responses' generations, not by their signals).",
        "",
    ]


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
