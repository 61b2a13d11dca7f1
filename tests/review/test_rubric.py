"""The rubric file: the shipped default, and a bad file refused in one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from review.rubric import load_rubric


def test_the_shipped_rubric_has_the_four_dimensions_from_1_to_5() -> None:
    rubric = load_rubric()
    assert list(rubric.dimensions) == ["correctness", "readability", "security", "efficiency"]
    assert {(d.min, d.max) for d in rubric.dimensions.values()} == {(1, 5)}
    assert all(d.description and d.low and d.high for d in rubric.dimensions.values())
    assert len(rubric.sha256) == 64


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[dimensions.speed]\ndescription = "fast?"\nmin = 5\nmax = 1\n', "dimensions.speed"),
        ("[dimensions.speed]\nmin = 1\nmax = 3\n", "dimensions.speed.description"),
        ('[dimensions.Speed]\ndescription = "x"\n', "dimensions.Speed"),
        ('[dimensions.speed]\ndescription = "x"\nscale = 3\n', "dimensions.speed.scale"),
        ("dimensions = {}\n", "dimensions"),
        ("[dimensions\n", "not valid TOML"),
    ],
)
def test_a_bad_rubric_is_one_line_naming_the_field(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_rubric(path)
    message = str(caught.value)
    assert "\n" not in message and named in message and str(path) in message


def test_a_missing_rubric_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rubric file .*does not exist"):
        load_rubric(tmp_path / "nope.toml")
