"""A train job on several devices (`devices = N`): the engine's processes started by the very
command the daemon uses (accelerate's launcher), here on the CPU with gloo, since this machine
has no GPU. Two processes with 2 rows each must train as one process with 4 does (the same
rows each step, gradients summed), and speak as one job: one stream of events, one adapter.
The daemon refuses more devices than the machine has, and says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.synthetic import write_dataset
from forged.engine_command import engine_command
from forged.hardware import visible_gpus
from tests.support.daemon_harness import Daemon

STEPS = 4


def spec_for(run_dir: Path, model: Path, data: Path, batch: int, devices: int) -> Path:
    params = {
        "base_model": str(model),
        "dataset": str(data),
        "max_steps": STEPS,
        "max_seq_len": 256,
        "batch_size": batch,
        "val_fraction": 0.1,
        "rank": 8,
        "devices": devices,
    }
    spec = {
        "job_id": run_dir.name,
        "kind": "train",
        "params": params,
        "run_dir": str(run_dir),
        "models_dir": str(model.parent),
        "datasets_dir": str(data.parent),
    }
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(json.dumps(spec))
    return run_dir / "spec.json"


def run(argv: list[str], cwd: Path) -> tuple[list[dict[str, Any]], list[str]]:
    out = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    lines = (out.stdout + out.stderr).splitlines()
    events = [json.loads(line) for line in lines if line.startswith('{"ts"')]
    return events, lines


def losses(events: list[dict[str, Any]]) -> dict[int, float]:
    return {
        e["step"]: e["values"]["loss"]
        for e in events
        if e["type"] == "metric" and "loss" in e["values"]
    }


def test_two_processes_train_as_one_with_their_rows_together(
    tiny_model: Path, tmp_path: Path
) -> None:
    data = write_dataset(tmp_path / "data" / "chat.jsonl", 80, seed=11)
    alone = spec_for(tmp_path / "alone", tiny_model, data, batch=4, devices=1)
    events_alone, _ = run(engine_command(sys.executable, alone, 1), alone.parent)

    pair = spec_for(tmp_path / "pair", tiny_model, data, batch=2, devices=2)
    argv = engine_command(sys.executable, pair, 2)
    assert argv[1:4] == ["-m", "accelerate.commands.launch", "--multi_gpu"]
    events_pair, lines = run(argv, pair.parent)

    # One job's stream: the second process says nothing (it reports only errors).
    assert [e["type"] for e in events_pair].count("done") == 1
    assert sorted(losses(events_pair)) == list(range(1, STEPS + 1))
    assert any(
        "data-parallel on 2 processes: 2 rows each, 4 a micro-batch" in line for line in lines
    )
    # The same rows each step, the gradients summed: the same training, to float rounding.
    for step, loss in losses(events_alone).items():
        assert losses(events_pair)[step] == pytest.approx(loss, rel=1e-4), step
    adapters = [e for e in events_pair if e["type"] == "artifact" and e["kind"] == "adapter"]
    assert len(adapters) == 1
    done = next(e for e in events_pair if e["type"] == "done")["summary"]
    done_alone = next(e for e in events_alone if e["type"] == "done")["summary"]
    assert done["eval_loss"] == pytest.approx(done_alone["eval_loss"], rel=1e-4)
    assert done["chosen"]["batch_size"] == 2


def test_more_devices_than_the_machine_has_are_refused_at_submit(
    daemon: Daemon, tiny_model: Path
) -> None:
    data = daemon.imported(write_dataset(daemon.home / "chat.jsonl", 10, seed=1))
    with daemon.client() as c, pytest.raises(Exception) as refused:
        c.call("jobs.submit", kind="train", params={"dataset": data, "devices": 2})
    error: Any = refused.value
    assert error.data["param"] == "params.devices"
    assert "2 GPUs asked, and this machine has no GPU" in str(error)
    # `all` is every GPU there is: here none, so one process on the CPU.
    params = {"base_model": str(tiny_model), "dataset": data, "max_seq_len": 256}
    job = daemon.call(
        "jobs.submit", kind="train", params=params | {"devices": "all", "max_steps": 1}
    )
    done = daemon.wait_job(job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["error"]


def test_the_gpus_the_daemon_counts_are_those_cuda_visible_devices_leaves_it() -> None:
    assert visible_gpus(4, None) == 4
    assert visible_gpus(4, "0,2") == 2
    assert visible_gpus(2, "") == 0  # CUDA_VISIBLE_DEVICES="" hides them all
    assert visible_gpus(1, "0,1,2") == 1
