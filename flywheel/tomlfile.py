"""Policy files: TOML validated by a pydantic model, every problem one ``ConfigError``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from flywheel.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def load_toml_model(path: Path, model: type[ModelT], what: str) -> ModelT:
    """Read ``path`` and validate it as ``model``; errors name the file and each bad key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))  # TOML is UTF-8 by definition
    except FileNotFoundError:
        raise ConfigError(f"the {what} {path} does not exist") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        raise ConfigError(f"the {what} {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the {what} {path} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#x})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the {what} {path} is not valid TOML: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        raise ConfigError(f"the {what} {path} is invalid: {problems}") from None
