"""Small files replaced whole: readers see the old content or the new, never half of it."""

from __future__ import annotations

import os
from pathlib import Path


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` (named for this process, so that two
    writers do not share it) and rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def packaged(package: str, name: str) -> Path:
    """A file or folder shipped inside an installed package (SQL models, shipped policies,
    migrations), found through ``importlib.resources`` rather than beside a checkout. pip
    installs packages as folders, so it is a real path that can be read and listed."""
    from importlib.resources import files

    return Path(str(files(package).joinpath(name)))
