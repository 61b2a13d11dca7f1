"""The traffic simulator (see ``traffic``): contract-valid event streams with a hidden truth."""

from flywheel.dev.simulator.traffic import (
    TOPICS,
    PostSummary,
    Simulation,
    SimulationConfig,
    SimulatorPostError,
    SimulatorWriteError,
    check_writable,
    iter_batches,
    post_events,
    simulate,
    write_jsonl,
    write_truth,
)

__all__ = [
    "TOPICS",
    "PostSummary",
    "Simulation",
    "SimulationConfig",
    "SimulatorPostError",
    "SimulatorWriteError",
    "check_writable",
    "iter_batches",
    "post_events",
    "simulate",
    "write_jsonl",
    "write_truth",
]
