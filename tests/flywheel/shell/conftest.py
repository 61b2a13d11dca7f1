"""The scheduler's tests run jobs on the export tests' simulated data dir."""

from tests.export.conftest import data_dir, simulated

__all__ = ["data_dir", "simulated"]
