"""The optional parts of the package (pip extras), and one clear error when a command needs one
that is not installed.

The core install runs the API, the ingest workers and the transforms. Heavier libraries come
with extras named after what they serve (pyproject.toml): ``export`` (the quality gate: Great
Expectations and pandas), ``names`` (person names: Presidio and spaCy), ``dagster`` (the
transforms and exports as Dagster assets), ``dev`` (tests, linters and benchmarks). Code that
needs one imports it through ``require``, inside the function that uses it, so a missing extra
is one line that says what to install, never a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from flywheel.errors import MissingExtraError

DISTRIBUTION = "feedback-flywheel"

EXTRAS = {
    "export": "the export's quality gate (Great Expectations)",
    "names": "person-name detection (FLYWHEEL_PRIVACY__NAMES_MODEL: Presidio and spaCy)",
    "postgres": "the lake's catalog in PostgreSQL (FLYWHEEL_LAKE__CATALOG)",
    "s3": "object storage beyond pyarrow's client (conditional puts: boto3; fsspec: s3fs)",
    "spark": "the transforms on Apache Spark (--engine spark: pyspark and SQLGlot)",
    "dagster": "the Dagster assets, checks and schedules (flywheel.shell.dagster)",
}
"""Each extra a command may ask for, and what it serves."""


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(module: str, *, extra: str) -> ModuleType:
    """Import ``module``, which the extra ``extra`` installs.

    Raises ``MissingExtraError`` (exit code 3 in the CLI) naming the extra and its pip command
    when the module is not installed. A module of the extra that is installed but fails to
    import for another reason (one of its own dependencies missing) is a broken install, not a
    missing extra, and its error is raised as it is.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or module.split(".")[0] != exc.name.split(".")[0]:
            raise
        raise MissingExtraError(
            f"{EXTRAS[extra]} needs the '{extra}' extra, which is not installed: "
            f"{install_hint(extra)}"
        ) from None
