"""The dashboard charts' axes: round tick steps, and the last day's label inside the chart."""
from __future__ import annotations

from datetime import date, timedelta

from app.admin.charts import WIDTH, nice_step, time_chart

DAYS = [date(2024, 7, 1) + timedelta(days=i) for i in range(15)]


def test_count_axis_uses_round_steps():
    chart = time_chart("n", DAYS, {"a": [45] + [3] * 14}, y_format=lambda v: f"{v:g}")
    assert [t.label for t in chart.y_ticks] == ["0", "10", "20", "30", "40", "50"]
    small = time_chart("n", DAYS, {"a": [3] * 15}, y_format=lambda v: f"{v:g}")
    assert [t.label for t in small.y_ticks] == ["0", "1", "2", "3"]  # whole playlists only


def test_rate_axis_steps_by_twenty_percent():
    chart = time_chart("r", DAYS, {"a": [0.5] * 15}, y_max=1.0,
                       y_format=lambda v: f"{v * 100:.0f}%")
    assert [t.label for t in chart.y_ticks] == ["0%", "20%", "40%", "60%", "80%", "100%"]


def test_nice_step():
    assert [nice_step(v) for v in (1.0, 45, 0.3, 700)] == [0.2, 10, 0.1, 200]
    assert nice_step(3, whole=True) == 1.0


def test_last_day_label_ends_at_the_plot_edge():
    chart = time_chart("n", DAYS, {"a": list(range(15))})
    last = chart.x_ticks[-1]
    assert last.label == "15 Jul" and last.anchor == "end" and last.pos <= WIDTH
    assert all(t.anchor == "middle" for t in chart.x_ticks[:-1])
