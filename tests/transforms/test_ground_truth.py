"""Pairs against the simulator's hidden ground truth: how often the chosen side is really better."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.dev.simulator import SimulationConfig, hidden_quality, simulate
from ingest.anonymiser import PseudonymisingAnonymiser
from ingest.pipeline import DedupeWindow, Pipeline, RawMessage
from privacy.keys import Keyring
from tests.helpers.lake import query
from transforms.runner import run_transforms
from warehouse.lake import Lake


def test_pairs_agree_with_the_ground_truth(tmp_path: Path) -> None:
    simulation = simulate(SimulationConfig(events=30_000, seed=5, ab_rate=0.2))
    events = list(simulation)
    quality = hidden_quality(simulation.truth)
    pipeline = Pipeline(PseudonymisingAnonymiser(Keyring(1, {1: b"k" * 32})), max_event_bytes=65536)
    lake, window = Lake.in_data_dir(tmp_path), DedupeWindow(100_000)
    for start in range(0, len(events), 2000):
        chunk = events[start : start + 2000]
        messages = [RawMessage("sim", 0, start + i, b"", json.dumps(e).encode())
                    for i, e in enumerate(chunk)]  # fmt: skip
        batch = pipeline.process(messages, window)
        for event_id in batch.event_ids:
            window.add(event_id)
        lake.land(pipeline.frame(batch), topic="sim", partition=0, first_offset=start,
                  last_offset=start + len(chunk) - 1)  # fmt: skip
    run_transforms(tmp_path)

    rows = query(
        tmp_path,
        "SELECT chosen_response_id, rejected_response_id, signals "
        "FROM preference_pairs WHERE chosen_response_id IS NOT NULL",
    )
    precision: dict[str, tuple[int, int]] = {}
    for chosen, rejected, signals in rows:
        right = quality[chosen] > quality[rejected]
        for signal in ["all", *signals, "+".join(signals)]:
            good, total = precision.get(signal, (0, 0))
            precision[signal] = (good + right, total + 1)
    report = {k: f"{g / t:.3f} of {t}" for k, (g, t) in sorted(precision.items())}
    print("pair precision against the ground truth:", json.dumps(report, indent=1))
    ab_good, ab_total = precision["ab_choice"]
    # Simulated users pick the better answer in about 88% of decided A/B choices.
    assert ab_total > 50 and ab_good / ab_total >= 0.8
    for signal in ("regenerate", "copy", "rating"):
        good, total = precision[signal]
        assert total > 20 and good / total > 0.6, (signal, report)
