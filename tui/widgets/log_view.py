"""A job's log on screen: capped, written in batches, long lines cut, tqdm redraws folded.

A training job can print hundreds of lines a second; writing each as it comes would repaint
the screen each time. Lines are gathered and written together every `FLUSH_S`, the widget
keeps the last `MAX_LINES`, and a line redrawn with `\\r` shows only its final state.
"""

from __future__ import annotations

from textual.timer import Timer
from textual.widgets import Log

from forge_client.format import printable

MAX_LINES = 5000
LINE_CAP = 1000
FLUSH_S = 0.1


def clean_line(line: str) -> str:
    """The last redraw of a `\\r` line, without its newline, cut to LINE_CAP characters."""
    text = printable(line.rstrip("\n").rsplit("\r", 1)[-1])
    return text if len(text) <= LINE_CAP else text[: LINE_CAP - 1] + "…"


class LogView(Log):
    """A `Log` fed line by line, painted in batches."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=MAX_LINES, auto_scroll=True, id=id)
        self._pending: list[str] = []
        self._timer: Timer | None = None

    def add(self, line: str) -> None:
        self._pending.append(clean_line(line))
        if self._timer is None:
            self._timer = self.set_timer(FLUSH_S, self.flush)

    def flush(self) -> None:
        self._timer = None
        if self._pending:
            lines, self._pending = self._pending, []
            self.write_lines(lines)

    def replace(self, lines: list[str]) -> None:
        """Show exactly these lines (a fresh load), dropping anything pending."""
        self._pending = []
        self.clear()
        self.write_lines([clean_line(line) for line in lines])

    @property
    def following(self) -> bool:
        return self.auto_scroll

    def follow(self, on: bool) -> None:
        self.auto_scroll = on
        if on:
            self.scroll_end(animate=False)
