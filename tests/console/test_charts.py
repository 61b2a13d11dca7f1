"""The console's SVG charts: drawn from the values, escaped, and nothing to draw said plainly."""

from __future__ import annotations

import re

from console.charts import Interval, Series, error_bars, lines, stacked_bars


def test_stacked_bars_draw_one_rect_per_positive_value_with_its_tooltip() -> None:
    svg = str(
        stacked_bars(
            "events",
            ["2026-01-01", "2026-01-02"],
            [Series("copy", [3, 0]), Series("<edit>", [1, 2])],
        )  # fmt: skip
    )
    assert svg.startswith("<svg") and svg.count("<rect") == 3 + 2  # bars, then legend swatches
    assert "<title>2026-01-01 copy: 3</title>" in svg
    assert "&lt;edit&gt;" in svg and "<edit>" not in svg
    assert "style=" not in svg and "http" not in svg


def test_lines_put_a_point_on_every_value() -> None:
    svg = str(lines("pairs", ["a", "b", "c"], [Series("copy", [1, 5, 2])]))
    assert svg.count("<circle") == 3 and svg.count("<polyline") == 1
    # The highest value sits highest (the smallest y).
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert ys[1] == min(ys)


def test_error_bars_span_the_interval_and_skip_what_was_not_measured() -> None:
    svg = str(
        error_bars(
            "calibration",
            [Interval("copy", 0.8, 0.7, 0.9, 120), Interval("edit", None, None, None, 0)],
        )
    )
    assert svg.count("<circle") == 1
    assert "copy: 0.800 (95% interval 0.700 to 0.900, n=120)" in svg
    assert "n=0" in svg and ">edit<" in svg


def test_nothing_to_draw_is_said() -> None:
    assert "nothing to draw yet" in str(lines("pairs", [], []))
    assert "nothing to draw yet" in str(error_bars("calibration", []))
