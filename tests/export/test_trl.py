"""TRL itself trains on exported data: DPO, KTO and reward trainers, a couple of steps each.

TRL needs torch, which lives in a cached environment of its own (scripts/trl_env.py; ``make test``
builds it first), so the trainers run in a subprocess with that environment's interpreter (the
``trl_python`` fixture, which marks the test ``trl``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from export.policy import DatasetPolicy, DatasetsFile
from export.publish import export_dataset
from tests.helpers.datasets import KEYRING

TRAIN_SCRIPT = Path(__file__).with_name("trl_train.py")


@pytest.mark.parametrize("message_format", ["standard", "conversational"])
def test_trl_trainers_run_on_an_exported_version(
    trl_python: Path, data_dir: Path, tmp_path: Path, message_format: str
) -> None:
    policy = DatasetPolicy(message_format=message_format)  # type: ignore[arg-type]
    result = export_dataset(
        data_dir, "train-me", KEYRING, datasets=DatasetsFile(datasets={"train-me": policy})
    )
    assert result.path is not None
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HOME": str(tmp_path / "hf"), "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip

    run = subprocess.run(
        [str(trl_python), str(TRAIN_SCRIPT), str(result.path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**os.environ, **offline},
        timeout=600,
        check=False,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    reports = [
        json.loads(line) for line in run.stdout.splitlines() if line.startswith('{"trainer"')
    ]
    assert [r["trainer"] for r in reports] == ["dpo", "kto", "reward"]
    for report in reports:
        assert report["steps"] == 2 and report["finite"], report
