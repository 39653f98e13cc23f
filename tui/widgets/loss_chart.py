"""The loss and eval-loss curves of a job, drawn with plotext, redrawn at most a few times a second.

Metrics arrive one point at a time while a job trains; the chart keeps every point per series
and schedules one redraw for however many points came in meanwhile.
"""

from __future__ import annotations

from textual.timer import Timer
from textual_plotext import PlotextPlot

SERIES = ("loss", "eval_loss")
REDRAW_S = 0.3


class LossChart(PlotextPlot):
    """`loss` and `eval_loss` against the step."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: dict[str, dict[int, float]] = {name: {} for name in SERIES}
        self._timer: Timer | None = None

    def add(self, name: str, step: int, value: float) -> None:
        if name not in self.points:
            return
        self.points[name][step] = value
        if self._timer is None:
            self._timer = self.set_timer(REDRAW_S, self.redraw)

    def reset(self) -> None:
        for series in self.points.values():
            series.clear()

    def redraw(self) -> None:
        self._timer = None
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("loss by step")
        plt.xlabel("step")
        drawn = False
        for name, series in self.points.items():
            if series:
                steps = sorted(series)
                plt.plot(steps, [series[s] for s in steps], label=name, marker="braille")
                drawn = True
        if not drawn:
            plt.title("loss by step: no points yet")
        self.refresh()
