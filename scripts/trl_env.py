"""The virtual environment in which the tests train TRL on an exported dataset.

    python scripts/trl_env.py          # create it if needed; print its python

TRL needs torch, and PyPI's torch for Linux is the CUDA build (several GB with its nvidia
packages). Installing it into every fresh ``.venv`` would make each CI run download or unpack
gigabytes, so the ``trl`` extra of pyproject.toml is installed once into a folder of its own under
the user's cache (``$XDG_CACHE_HOME/flywheel`` or ``~/.cache/flywheel``), named by a hash of the
extra's requirements: change the requirements and a new environment is built, otherwise it is
reused. The project itself is not installed there; the test that uses it runs a script that needs
only ``datasets`` and ``trl``.

Standard library only, so it runs before anything else is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirements() -> list[str]:
    """The ``trl`` extra of pyproject.toml."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return list(project["optional-dependencies"]["trl"])


def env_dir() -> Path:
    """Where the environment for the current requirements lives (it may not exist yet)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    digest = hashlib.sha256("\n".join(sorted(requirements())).encode()).hexdigest()[:12]
    return Path(base) / "flywheel" / f"trl-env-{digest}"


def env_python() -> Path | None:
    """The environment's interpreter, or None when it has not been built."""
    folder = env_dir()
    python = folder / "bin" / "python"
    return python if (folder / ".complete").exists() and python.exists() else None


def ensure() -> Path:
    """Build the environment unless it exists; return its interpreter."""
    existing = env_python()
    if existing is not None:
        return existing
    folder = env_dir()
    shutil.rmtree(folder, ignore_errors=True)  # an earlier build that did not finish
    print(f"building the TRL test environment in {folder} (once; torch is large)", flush=True)
    venv.EnvBuilder(with_pip=True).create(folder)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run([*pip, "-q", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-q", *requirements()], check=True)
    # Written last: a build interrupted halfway is not mistaken for a finished one.
    (folder / ".complete").write_text("\n".join(requirements()) + "\n")
    return folder / "bin" / "python"


if __name__ == "__main__":
    try:
        print(ensure())
    except subprocess.CalledProcessError as error:
        print(f"error: installing the trl extra failed ({error})", file=sys.stderr)
        sys.exit(1)
