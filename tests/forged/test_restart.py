"""Kill the daemon at any moment: on restart every job is still there, and a job that was
running resumes from its checkpoint or starts over (at most three starts), else fails with the
reason. Nothing runs twice."""

from __future__ import annotations

import os
import signal
from functools import partial
from pathlib import Path
from typing import Any

from engine.synthetic import write_dataset
from tests.support.daemon_harness import (
    ProcessDaemon,
    ProcessDaemonFactory,
    engine_processes,
    wait_for,
)


def test_kill_9_after_a_checkpoint_resumes_from_it(
    make_process_daemon: ProcessDaemonFactory,
) -> None:
    daemon = make_process_daemon().start()
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "resumed"})
    with daemon.client() as c:
        c.call("events.subscribe", job_id=job["id"], types=["job.checkpoint"])
        checkpoint = next(c.events())
    daemon.kill()

    # The engine dies with its daemon (parent-death signal): no orphan keeps training.
    wait_for(lambda: not engine_processes(job["run_dir"]), timeout=20)

    daemon.start()
    done = daemon.wait_job(job["id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    assert done["attempt"] == 2
    lines = [x["line"] for x in daemon.call("jobs.logs", id=job["id"])["lines"]]
    assert any(line.startswith("the daemon restarted; resuming from checkpoint") for line in lines)
    assert any(
        line.startswith(f"resuming from checkpoint {checkpoint['data']['path']}") for line in lines
    )
    # The tokenizer was trained once, in the first attempt, never again.
    assert sum("training a 2048-token BPE tokenizer" in line for line in lines) == 1
    assert (daemon.paths.models_dir / "resumed" / "model.safetensors").exists()


def test_kill_9_before_any_checkpoint_starts_over_at_most_three_times(
    make_process_daemon: ProcessDaemonFactory, tiny_model: Path
) -> None:
    daemon = make_process_daemon().start()
    data = write_dataset(daemon.paths.datasets_dir / "chat.jsonl", 60, seed=4)
    # A long run that never reaches a checkpoint before each kill.
    params = {"base_model": str(tiny_model), "dataset": str(data), "max_seq_len": 256}
    params |= {"max_steps": 100_000, "checkpoint_every": 100_000}
    job = daemon.call("jobs.submit", kind="train", params=params)
    queued = daemon.call("jobs.submit", kind="prepare-model", params={"path": str(tiny_model)})
    for start in (1, 2, 3):
        wait_for(partial(started, daemon, job["id"], start), timeout=60)
        daemon.kill()
        daemon.start()
        if start < 3:
            again = f"starting it again (it had no checkpoint) (start {start + 1} of 3)"
            wait_for(partial(logged, daemon, job["id"], again))
    failed = daemon.wait_job(job["id"], {"failed"}, timeout=60)
    assert failed["error"] == (
        "interrupted: the daemon stopped while the job was running; "
        "it has been started 3 times without reaching a checkpoint"
    )
    # The queued job was kept and runs after the restarts.
    assert daemon.wait_job(queued["id"], {"completed", "failed"})["status"] == "completed"


def started(daemon: ProcessDaemon, job_id: str, attempt: int) -> bool:
    job = daemon.call("jobs.get", id=job_id)
    return bool(job["status"] == "running" and job["attempt"] == attempt)


def logged(daemon: ProcessDaemon, job_id: str, text: str) -> bool:
    lines: list[dict[str, Any]] = daemon.call("jobs.logs", id=job_id, tail=100)["lines"]
    return any(text in line["line"] for line in lines)


def test_sigterm_stops_jobs_and_exits_zero_then_resumes(
    make_process_daemon: ProcessDaemonFactory,
) -> None:
    daemon = make_process_daemon().start()
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "graceful"})
    with daemon.client() as c:
        c.call("events.subscribe", job_id=job["id"], types=["job.checkpoint"])
        next(c.events())
    assert daemon.stop() == 0
    assert not engine_processes(job["run_dir"])
    assert not daemon.socket.exists()
    daemon.start()
    done = daemon.wait_job(job["id"], {"completed", "failed"})
    assert done["status"] == "completed" and done["attempt"] == 2


def test_every_job_survives_a_restart(make_process_daemon: ProcessDaemonFactory) -> None:
    daemon = make_process_daemon(config="[jobs]\nmax_parallel = 1\n").start()
    ids = [
        daemon.call("jobs.submit", kind="prepare-model", params={"path": "/tmp"})["id"]  # no model
        for _ in range(10)
    ]
    daemon.kill()
    daemon.start()
    listed = {j["id"] for j in daemon.call("jobs.list", limit=100)["jobs"]}
    assert set(ids) <= listed
    for job_id in ids:
        assert daemon.wait_job(job_id, {"failed"})["error"]


def test_a_leftover_engine_from_a_dead_daemon_is_stopped_before_resuming(
    make_process_daemon: ProcessDaemonFactory,
) -> None:
    """If an engine outlives its daemon (no parent-death signal, e.g. macOS), the restarted
    daemon stops it before it resumes the job, so the job never runs twice at once."""
    daemon = make_process_daemon().start()
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "orphan"})
    with daemon.client() as c:
        c.call("events.subscribe", job_id=job["id"], types=["job.checkpoint"])
        next(c.events())
    pid = daemon.call("jobs.get", id=job["id"])["pid"]
    # Stop the daemon without letting the child notice: freeze the child, kill the daemon.
    os.killpg(pid, signal.SIGSTOP)
    daemon.kill()
    assert list(engine_processes(job["run_dir"])) == [pid]
    daemon.start()
    # The frozen orphan ignores SIGTERM, so recovery is still waiting on it: the daemon already
    # answers meanwhile, and shows the job as it last knew it.
    assert daemon.call("system.health")["ok"]
    assert daemon.call("jobs.get", id=job["id"])["status"] == "running"
    done = daemon.wait_job(job["id"], {"completed", "failed"})
    assert done["status"] == "completed"
    assert done["attempt"] == 2
    assert pid not in engine_processes(job["run_dir"])
