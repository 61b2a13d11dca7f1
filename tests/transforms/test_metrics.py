"""The transforms' metrics: what a finished run loaded and each step's time."""

from __future__ import annotations

from prometheus_client import generate_latest

from tests.helpers.metrics import samples
from transforms.metrics import TransformMetrics
from transforms.runner import RunSummary, StepResult


def test_a_run_counts_files_events_and_step_times() -> None:
    metrics = TransformMetrics()
    summary = RunSummary(run_id="r1", full_refresh=False, files_loaded=3, events_loaded=120)
    summary.steps = [StepResult("events (load)", 120, 0.4), StepResult("pairs", 7, 1.5, "full")]
    metrics.record(summary)
    metrics.record(RunSummary(run_id="r2", full_refresh=False, files_loaded=1, events_loaded=5))
    got = samples(generate_latest(metrics.registry).decode())
    assert got[("flywheel_transform_files_loaded_total", ())] == 4
    assert got[("flywheel_transform_events_loaded_total", ())] == 125
    assert got[("flywheel_transform_step_seconds_sum", (("step", "pairs"),))] == 1.5
    assert got[("flywheel_transform_step_seconds_count", (("step", "events (load)"),))] == 1
