"""How a followed job shows (`forge jobs submit -f`, `forge jobs logs -f`).

On a terminal: the log scrolls above a live line with the job's status, a progress bar, its
speed and ETA (the TUI's numbers, from `forge_client.format`), warnings and errors in colour,
so the minute a model takes to load is never a silent one. Piped: the log lines on stdout as
they are, and on stderr one line per status change and per new stage, nothing redrawn.
"""

from __future__ import annotations

import sys
from typing import Any

from forge_client.format import progress_text

LEVEL_STYLES = {"warning": "yellow", "error": "bold red"}
STATUS_WORDS = {
    "queued": "queued: waiting for its turn",
    "running": "running: starting the engine",
}


class PlainView:
    """Lines only: for pipes, files and `--json`-free scripts."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.stage: str | None = None

    def log(self, line: str, level: str = "info") -> None:
        print(line, flush=True)

    def status(self, status: str) -> None:
        print(f"[{self.job_id} {STATUS_WORDS.get(status, status)}]", file=sys.stderr, flush=True)

    def progress(self, progress: dict[str, Any]) -> None:
        stage = progress.get("stage")
        if stage != self.stage:  # one line a stage, not one a step
            self.stage = stage
            print(f"[{self.job_id} {progress_text(progress)}]", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing is left on screen to take down."""


class LiveView:
    """A rich progress line under the scrolling log, on a terminal."""

    def __init__(self, job_id: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            console=Console(stderr=True, highlight=False),
            transient=True,
        )
        self.task = self.bar.add_task(job_id, total=None, detail="")
        self.bar.start()

    def log(self, line: str, level: str = "info") -> None:
        # Through the live line's own console, which clears that line, prints above it and
        # draws it again: a second console's print landed on the spinner's line.
        self.bar.console.print(line, style=LEVEL_STYLES.get(level), markup=False, soft_wrap=True)

    def status(self, status: str) -> None:
        self.bar.update(self.task, detail=STATUS_WORDS.get(status, status))

    def progress(self, progress: dict[str, Any]) -> None:
        total = progress.get("total")
        self.bar.update(
            self.task,
            total=total,
            completed=progress.get("step") or 0,
            detail=progress_text(progress),
        )

    def close(self) -> None:
        self.bar.stop()


def follow_view(job_id: str) -> PlainView | LiveView:
    """The live view on a terminal, else lines."""
    return LiveView(job_id) if sys.stdout.isatty() and sys.stderr.isatty() else PlainView(job_id)
