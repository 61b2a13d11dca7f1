"""The traffic simulator: contract-valid event streams with a hidden ground truth.

- ``traffic``: the model of users, conversations and behaviour, and the truth it records;
- ``texts`` and ``pii``: what they write, from the corpus files under ``corpus/``, and the PII
  and secrets planted in it;
- ``writers``: events and truth to JSONL files; ``poster``: events to the API over HTTP.
"""

from flywheel.dev.simulator.poster import (
    PostSummary,
    SimulatorPostError,
    iter_batches,
    post_events,
)
from flywheel.dev.simulator.texts import TOPICS
from flywheel.dev.simulator.traffic import (
    Reranker,
    Simulation,
    SimulationConfig,
    hidden_quality,
    hidden_win_rate,
    simulate,
)
from flywheel.dev.simulator.writers import (
    SimulatorWriteError,
    check_writable,
    write_jsonl,
    write_truth,
)

__all__ = [
    "TOPICS",
    "PostSummary",
    "Reranker",
    "Simulation",
    "SimulationConfig",
    "SimulatorPostError",
    "SimulatorWriteError",
    "check_writable",
    "hidden_quality",
    "hidden_win_rate",
    "iter_batches",
    "post_events",
    "simulate",
    "write_jsonl",
    "write_truth",
]
