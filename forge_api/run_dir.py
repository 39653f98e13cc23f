"""A job's run folder (`<data>/runs/<job id>/`) and the name of every file in it, in one place:
the daemon writes `spec.json` and reads `events.jsonl` and `eval.json`; the engine writes the
rest. Anyone who needs a file of a run asks this, so a name cannot differ between writer and
reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def of(cls, run_dir: str | Path) -> RunDir:
        return cls(Path(run_dir))

    @property
    def spec(self) -> Path:
        """Everything the engine needs to run the job (written by the daemon)."""
        return self.path / "spec.json"

    @property
    def events(self) -> Path:
        """The engine's output, one JSON event a line, as the daemon recorded it."""
        return self.path / "events.jsonl"

    @property
    def adapter(self) -> Path:
        """A train job's adapter (PEFT's layout)."""
        return self.path / "adapter"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def eval_report(self) -> Path:
        """An eval job's report: each model's losses and answers."""
        return self.path / "eval.json"

    @property
    def pissa_init(self) -> Path:
        """A PiSSA run's initial adapter, to turn the trained one into plain LoRA."""
        return self.path / "pissa-init"

    @property
    def mlx_adapter(self) -> Path:
        """What an MLX run's adapter needs beside PEFT's files (its keys and scale)."""
        return self.path / "mlx-adapter.json"

    @property
    def merged(self) -> Path:
        """A merged model a deploy or export built."""
        return self.path / "merged"

    @property
    def merged_partial(self) -> Path:
        return self.path / "merged.partial"

    @property
    def export_partial(self) -> Path:
        return self.path / "export.partial.gguf"

    @property
    def adapter_gguf(self) -> Path:
        return self.path / "adapter.gguf"

    @property
    def upload(self) -> Path:
        """The files a deploy hands Ollama."""
        return self.path / "upload"

    @property
    def work(self) -> Path:
        """A prepare-model job's scratch folder."""
        return self.path / "work"
