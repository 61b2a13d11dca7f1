"""The transforms as a Spark application, for ``spark-submit`` (docs/spark.md).

    spark-submit --master spark://host:7077 \\
        --packages "$(python -m transforms.spark_job --packages)" \\
        "$(python -m transforms.spark_job --path)" [--full-refresh] [--select MODEL]...

``python -m transforms.spark_job --command`` prints such a command line with the pinned jars
and this file's path. The job reads its settings from the environment like every command
(``FLYWHEEL_LAKE__URL``, ``FLYWHEEL_LAKE__CATALOG``, ...): on a cluster, set them for the driver
(``spark.yarn.appMasterEnv.*`` or the submitting shell in client mode). The master, the
executors and the other properties are ``spark-submit``'s; the job adds the lake's catalog to
the session. The executors need the platform installed in their Python environment (the Python
steps run there). Exit codes as the CLI's: 0 done, 1 a model failed (no table changed), 3 a
configuration error, 4 the lake or the catalog unreachable, 6 something named is missing.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from flywheel.errors import ConfigError, FlywheelError, NotFoundError, TransientError
from transforms.spark import PACKAGES


def submit_command(master: str = "spark://HOST:7077") -> str:
    """A ``spark-submit`` command line that runs this job with the pinned jars."""
    return shlex.join(
        ["spark-submit", "--master", master, "--packages", ",".join(PACKAGES), __file__]
    )


def exit_code(exc: FlywheelError) -> int:
    """The CLI's exit codes (flywheel/shell/cli.py's ``EXIT_CODES``, docs/development.md)."""
    for kind, code in ((TransientError, 4), (ConfigError, 3), (NotFoundError, 6)):
        if isinstance(exc, kind):
            return code
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-refresh", action="store_true", help="build every model in full")
    parser.add_argument("--select", action="append", help="a model (and what it needs)")
    parser.add_argument("--policy", type=Path, help="policy file (TOML)")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--command", action="store_true", help="print a spark-submit command")
    shown.add_argument("--packages", action="store_true", help="print the pinned jars")
    shown.add_argument("--path", action="store_true", help="print this file's path")
    args = parser.parse_args(argv)
    if args.command or args.packages or args.path:
        shown_text = (
            submit_command() if args.command else ",".join(PACKAGES) if args.packages else __file__
        )
        print(shown_text)  # noqa: T201
        return 0

    from flywheel.settings import load_settings
    from transforms.spark import run_transforms_on_spark
    from warehouse.lake import open_lake
    from warehouse.table import LakeTable

    try:
        settings = load_settings()
        table = LakeTable.of(settings, open_lake(settings))
        run = run_transforms_on_spark(
            settings.spark,
            table,
            policy_file=args.policy,
            select=args.select,
            full_refresh=args.full_refresh,
        )
    except FlywheelError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)  # noqa: T201
        return exit_code(exc)
    for step in run.steps:
        print(f"{step.name} ({step.mode}): {step.rows:,} rows in {step.seconds:.1f} s")  # noqa: T201
    print(f"run {run.run_id}: {run.events:,} events from the lake's table")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
