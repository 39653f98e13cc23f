"""`[tracking]`: a train job's metrics also land where people already look, TensorBoard event
files and an MLflow run, the same values the store holds; a tracking server that does not
answer costs a warning in the log, never the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.synthetic import write_dataset
from tests.support.daemon_harness import Daemon, DaemonFactory

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


def test_metrics_go_to_tensorboard_and_mlflow(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import (  # type: ignore[import-untyped]
        EventAccumulator,
    )

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    boards = tmp_path / "boards"
    job, daemon = train(
        make_daemon,
        tiny_model,
        f'tensorboard = true\ntensorboard_dir = "{boards}"\n'
        f'mlflow_uri = "{uri}"\nmlflow_experiment = "widgets"\n',
    )
    stored = daemon.call("jobs.metrics", id=job["id"], names=["loss"])["metrics"]
    assert len(stored) >= 2
    expected = {m["step"]: m["value"] for m in stored}

    folder = boards / f"train-{job['id']}"
    events = EventAccumulator(str(folder))
    events.Reload()
    board = {s.step: s.value for s in events.Scalars("loss")}
    assert board.keys() == expected.keys()
    assert all(board[k] == pytest.approx(v, rel=1e-6) for k, v in expected.items())
    assert (
        "params/text_summary" in events.Tags()["tensors"]
    )  # the params table, as TensorBoard text

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("widgets")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == f"tracked ({job['id']})"
    assert run.info.status == "FINISHED"
    assert run.data.tags["forge.job_id"] == job["id"]
    assert run.data.params["max_steps"] == "6"
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")}
    assert history == pytest.approx(expected)


def test_a_tracking_server_that_does_not_answer_costs_a_warning_not_the_job(
    make_daemon: DaemonFactory, tiny_model: Path
) -> None:
    job, daemon = train(make_daemon, tiny_model, 'mlflow_uri = "http://127.0.0.1:9"\n')
    lines = [x["line"] for x in daemon.call("jobs.logs", id=job["id"])["lines"]]
    warning = [line for line in lines if "tracking: MLflow" in line]
    assert warning and "metrics stay in the store only" in warning[0], lines[-20:]
    assert daemon.call("jobs.metrics", id=job["id"], names=["loss"])["metrics"]
