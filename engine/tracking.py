"""A job's metrics sent on to the tools people already look at: TensorBoard event files and an
MLflow run, as `[tracking]` asks (resolved into the job's spec by the daemon).

The store stays the record: tracking is a copy made on the side, so it never fails a job. A
missing package or an MLflow server that does not answer becomes one warning in the job's log,
and that sink is dropped for the rest of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from forge_api.jobs import TrackingSpec

Warn = Callable[[str, str], None]
"""Says a message at a level (the emitter's `log`)."""
EXTRA_HINT = "pip install 'ai-forge[tracking]'"


class Sink(Protocol):
    name: str

    def params(self, values: Mapping[str, Any]) -> None: ...
    def metrics(self, step: int, values: Mapping[str, float]) -> None: ...
    def close(self, status: str) -> None: ...


class TensorBoardSink:
    """Scalars by name in this job's own folder; the params as a text table at the start."""

    name = "TensorBoard"

    def __init__(self, folder: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=folder)

    def params(self, values: Mapping[str, Any]) -> None:
        rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(values.items()))
        self.writer.add_text("params", f"| param | value |\n| --- | --- |\n{rows}")

    def metrics(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


class MlflowSink:
    """One MLflow run per job, in the configured experiment, ended with the job's status."""

    name = "MLflow"

    def __init__(self, spec: TrackingSpec, tags: Mapping[str, str]) -> None:
        import os

        # A server that does not answer costs seconds, not the minutes of MLflow's own retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=spec.mlflow_uri)
        found = self.client.get_experiment_by_name(spec.mlflow_experiment)
        experiment = (
            found.experiment_id
            if found is not None
            else self.client.create_experiment(spec.mlflow_experiment)
        )
        run = self.client.create_run(experiment, run_name=spec.run_name, tags=dict(tags))
        self.run_id: str = run.info.run_id

    def params(self, values: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        # MLflow keeps a param's first value: a resumed run logs the same ones again.
        current = self.client.get_run(self.run_id).data.params
        fresh = [Param(k, str(v)[:6000]) for k, v in values.items() if k not in current]
        if fresh:
            self.client.log_batch(self.run_id, params=fresh)

    def metrics(self, step: int, values: Mapping[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


class Tracker:
    """The sinks a job's spec asks for; each one that fails is dropped after one warning."""

    def __init__(self, sinks: list[Sink], warn: Warn) -> None:
        self.sinks = sinks
        self.warn = warn

    @classmethod
    def open(cls, spec: TrackingSpec | None, tags: Mapping[str, str], warn: Warn) -> Tracker:
        sinks: list[Sink] = []
        if spec is not None and spec.tensorboard_dir:
            sink = _start("TensorBoard", "tensorboard", warn, TensorBoardSink, spec.tensorboard_dir)
            if sink is not None:
                sinks.append(sink)
        if spec is not None and spec.mlflow_uri:
            sink = _start("MLflow", "mlflow", warn, MlflowSink, spec, tags)
            if sink is not None:
                sinks.append(sink)
        return cls(sinks, warn)

    def params(self, values: Mapping[str, Any]) -> None:
        self._each(lambda sink: sink.params(values))

    def metrics(self, step: int, values: Mapping[str, float]) -> None:
        self._each(lambda sink: sink.metrics(step, values))

    def close(self, status: str) -> None:
        self._each(lambda sink: sink.close(status))
        self.sinks = []

    def _each(self, call: Callable[[Sink], None]) -> None:
        for sink in list(self.sinks):
            try:
                call(sink)
            except Exception as exc:
                self.sinks.remove(sink)
                self.warn(f"tracking: {sink.name} stopped for this job: {_why(exc)}", "warning")


def _start(
    name: str, module: str, warn: Warn, make: Callable[..., Sink], *args: Any
) -> Sink | None:
    try:
        return make(*args)
    except ImportError as exc:
        warn(
            f"tracking: {name} is asked for, but {exc.name or module} is not installed"
            f" ({EXTRA_HINT}); metrics stay in the store only",
            "warning",
        )
    except Exception as exc:
        warn(
            f"tracking: {name} could not start: {_why(exc)}; metrics stay in the store only",
            "warning",
        )
    return None


def _why(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
