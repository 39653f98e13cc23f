"""`[tracking]`: a train job's metrics also land where people already look, TensorBoard event
files and an MLflow run (on a server speaking MLflow's REST API, or MLflow's own sqlite store),
the same values the store holds; a tracking server that does not answer costs a warning in the
log, never the job. Against a real MLflow server only where one answers
($MLFLOW_TRACKING_URI, or 127.0.0.1:5000); the client is MLflow's own in every test."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from engine.synthetic import write_dataset
from engine.tracking import Tracker
from forge_api.jobs import TrackingSpec
from tests.support.daemon_harness import Daemon, DaemonFactory
from tests.support.mlflow_server import FakeMlflow

pytest.importorskip("tensorboard", reason="the `tracking` extra (tensorboard) is not installed")
pytest.importorskip("mlflow", reason="the `tracking` extra (mlflow-skinny) is not installed")


def train(
    make_daemon: DaemonFactory, tiny_model: Path, tracking: str
) -> tuple[dict[str, Any], Daemon]:
    daemon = make_daemon(config=f"[tracking]\n{tracking}").start()
    data = write_dataset(daemon.paths.datasets_dir / "chat.jsonl", 40, seed=3)
    params = {"base_model": str(tiny_model), "dataset": str(data), "max_steps": 6}
    job = daemon.call("jobs.submit", kind="train", params=params, name="tracked")
    done = daemon.wait_job(job["id"], {"completed", "failed"}, 240)
    assert done["status"] == "completed", done.get("error")
    return done, daemon


def test_metrics_go_to_tensorboard_and_an_mlflow_server(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    mlflow = FakeMlflow().start()
    boards = tmp_path / "boards"
    try:
        job, daemon = train(
            make_daemon,
            tiny_model,
            f'tensorboard = true\ntensorboard_dir = "{boards}"\n'
            f'mlflow_uri = "{mlflow.uri}"\nmlflow_experiment = "widgets"\n',
        )
    finally:
        mlflow.stop()
    stored = daemon.call("jobs.metrics", id=job["id"], names=["loss"])["metrics"]
    assert len(stored) >= 2
    expected = {m["step"]: m["value"] for m in stored}

    events = EventAccumulator(str(boards / f"train-{job['id']}"))
    events.Reload()
    board = {s.step: s.value for s in events.Scalars("loss")}
    assert board.keys() == expected.keys()
    assert all(board[k] == pytest.approx(v, rel=1e-6) for k, v in expected.items())
    assert "params/text_summary" in events.Tags()["tensors"]  # the params, as TensorBoard text

    assert list(mlflow.experiments) == ["widgets"]
    (run,) = mlflow.runs.values()
    assert run["info"]["run_name"] == f"tracked ({job['id']})"
    assert run["info"]["status"] == "FINISHED"
    assert run["tags"]["forge.job_id"] == job["id"] and run["tags"]["forge.kind"] == "train"
    assert run["params"]["max_steps"] == "6"
    sent = {m["step"]: m["value"] for m in run["metrics"] if m["key"] == "loss"}
    assert sent == pytest.approx(expected)


def test_an_mlflow_store_without_a_server_gets_the_run(tmp_path: Path) -> None:
    """`sqlite:///…`: MLflow's own store, read back with MLflow's own client."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    warnings: list[str] = []
    spec = TrackingSpec(run_name="local (job-1)", mlflow_uri=uri)
    tracker = Tracker.open(spec, {"forge.job_id": "job-1"}, lambda m, _: warnings.append(m))
    tracker.params({"lr": 0.001})
    tracker.metrics(1, {"loss": 2.5, "lr": 0.001})
    tracker.metrics(2, {"loss": 2.0, "lr": 0.0005})
    tracker.close("KILLED")
    assert warnings == []

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("ai-forge")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "local (job-1)" and run.info.status == "KILLED"
    assert run.data.params == {"lr": "0.001"}
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.5), (2, 2.0)]


def test_a_tracking_server_that_does_not_answer_costs_a_warning_not_the_job(
    make_daemon: DaemonFactory, tiny_model: Path
) -> None:
    job, daemon = train(make_daemon, tiny_model, 'mlflow_uri = "http://127.0.0.1:9"\n')
    lines = [x["line"] for x in daemon.call("jobs.logs", id=job["id"])["lines"]]
    warning = [line for line in lines if "tracking: MLflow" in line]
    assert warning and "metrics stay in the store only" in warning[0], lines[-20:]
    assert daemon.call("jobs.metrics", id=job["id"], names=["loss"])["metrics"]


REAL_MLFLOW = os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")


def real_mlflow_answers() -> bool:
    if not REAL_MLFLOW.startswith("http"):
        return False
    try:
        with urllib.request.urlopen(f"{REAL_MLFLOW}/health", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@pytest.mark.skipif(
    not real_mlflow_answers(),
    reason=f"no MLflow server answers at {REAL_MLFLOW} (set MLFLOW_TRACKING_URI to use one)",
)
def test_a_real_mlflow_server_gets_the_run() -> None:
    from mlflow import MlflowClient

    name = f"forge-test-{os.getpid()}"
    spec = TrackingSpec(run_name="real (job-1)", mlflow_uri=REAL_MLFLOW, mlflow_experiment=name)
    warnings: list[str] = []
    tracker = Tracker.open(spec, {"forge.job_id": "job-1"}, lambda m, _: warnings.append(m))
    tracker.metrics(1, {"loss": 2.5})
    tracker.close("FINISHED")
    assert warnings == []
    client = MlflowClient(tracking_uri=REAL_MLFLOW)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [2.5]
    client.delete_experiment(experiment.experiment_id)
