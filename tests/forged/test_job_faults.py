"""Faults that end one job and not the daemon: the training process killed, memory running out,
the disk filling up while a checkpoint is written. Each job fails with a reason a person can act
on, keeps what it had saved, and the job queued behind it runs."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from engine.synthetic import write_dataset
from forged.store import Store
from tests.support.cli import forge
from tests.support.daemon_harness import (
    Daemon,
    DaemonFactory,
    ProcessDaemonFactory,
    engine_processes,
    wait_for,
)
from tests.support.fake_engine import fake_engine
from tests.support.private_mount import on_private_tmpfs, tmpfs_unavailable


def train(daemon: Daemon, tiny_model: Path, examples: int, **params: Any) -> dict[str, Any]:
    data = write_dataset(daemon.paths.datasets_dir / f"chat-{examples}.jsonl", examples, seed=3)
    base = {"base_model": str(tiny_model), "dataset": str(data), "max_seq_len": 256, "rank": 8}
    job: dict[str, Any] = daemon.call("jobs.submit", kind="train", params=base | params)
    return job


def queue_behind(daemon: Daemon, tiny_model: Path) -> dict[str, Any]:
    """A light job waiting for the accelerator (max_parallel = 1) behind the faulty one."""
    job: dict[str, Any] = daemon.call(
        "jobs.submit", kind="prepare-model", params={"path": str(tiny_model)}
    )
    return job


def assert_queue_goes_on(daemon: Daemon, job: dict[str, Any]) -> None:
    done = daemon.wait_job(job["id"], {"completed", "failed"}, 120)
    assert done["status"] == "completed", done["error"]


def test_training_process_killed_mid_run_fails_keeps_its_checkpoint_and_resumes(
    make_daemon: DaemonFactory, tiny_model: Path
) -> None:
    daemon = make_daemon(config="[jobs]\nmax_parallel = 1\n").start()
    job = train(daemon, tiny_model, 200, max_steps=400, checkpoint_every=4)
    behind = queue_behind(daemon, tiny_model)
    running = daemon.wait_job(job["id"], {"running"})
    with daemon.client() as c:  # a checkpoint first, so there is something to keep
        c.call("events.subscribe", since=0, job_id=job["id"], types=["job.checkpoint"])
        next(c.events())
    os.killpg(running["pid"], signal.SIGKILL)

    failed = daemon.wait_job(job["id"], {"failed"})
    assert failed["exit_code"] == -signal.SIGKILL
    assert "killed by SIGKILL (not sent by forge" in failed["error"]
    assert "journalctl -k" in failed["error"]
    assert failed["checkpoint"] and Path(failed["checkpoint"]).name.startswith("step-")
    assert_queue_goes_on(daemon, behind)

    assert daemon.call("jobs.resume", id=job["id"])["status"] == "queued"
    expected = f"resuming from checkpoint {failed['checkpoint']}"

    def resumed() -> bool:
        lines = daemon.call("jobs.logs", id=job["id"], tail=50)["lines"]
        return any(expected in line["line"] for line in lines)

    wait_for(resumed, 120)
    daemon.call("jobs.cancel", id=job["id"])
    assert daemon.wait_job(job["id"], {"cancelled"})["status"] == "cancelled"


def test_a_job_out_of_memory_fails_with_what_to_change(
    make_daemon: DaemonFactory, tiny_model: Path
) -> None:
    # 2 GiB of address space is plenty for the tiny model and too little for 64 rows of 4,096.
    daemon = make_daemon(config="[jobs]\nmax_parallel = 1\nmemory_limit_gb = 2\n").start()
    job = train(daemon, tiny_model, 3000, max_steps=2, max_seq_len=4096, batch_size=64)
    behind = queue_behind(daemon, tiny_model)
    failed = daemon.wait_job(job["id"], {"completed", "failed"}, 180)
    assert failed["status"] == "failed"
    assert re.search(r"out of memory \(could not allocate \d+ MiB\)", failed["error"]), failed
    assert "lower batch_size or max_seq_len" in failed["error"]
    assert "jobs.memory_limit_gb" in failed["error"]
    assert_queue_goes_on(daemon, behind)  # under the same limit


@pytest.mark.skipif(tmpfs_unavailable() is not None, reason=str(tmpfs_unavailable()))
def test_a_full_disk_while_checkpointing_fails_the_job_keeps_the_last_checkpoint(
    make_process_daemon: ProcessDaemonFactory, tiny_model: Path
) -> None:
    daemon = make_process_daemon(config="[jobs]\nmax_parallel = 1\n")
    daemon.paths.runs_dir.mkdir(parents=True)
    # The daemon runs in its own mount namespace where the runs dir is a 1.5 MB disk: room for
    # one checkpoint of the tiny model's adapter (~1 MB) and not for a second.
    daemon.prefix = on_private_tmpfs(daemon.paths.runs_dir, "1500k")
    daemon.start()
    job = train(daemon, tiny_model, 100, max_steps=12, checkpoint_every=4)
    behind = queue_behind(daemon, tiny_model)
    failed = daemon.wait_job(job["id"], {"completed", "failed"}, 180)
    assert failed["status"] == "failed"
    error = failed["error"]
    assert "could not write the checkpoint of step 8 in" in error, error
    assert "(0.0 MB free on its disk)" in error
    assert "step-00000004 is kept, resume from it once there is room" in error
    assert failed["checkpoint"].endswith("step-00000004")
    assert_queue_goes_on(daemon, behind)  # the torn checkpoint was removed, so it fits


FILL_THE_DISK = """
import os, time
if spec["params"].get("name") == "filler":
    # Fill the disk the store is on, then keep talking: every line must now fail to be stored.
    with open(os.path.join(os.path.dirname(spec["datasets_dir"]), "filler"), "wb", 0) as fh:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    fh.write(b"0" * size)
            except OSError:
                pass
    for i in range(100):
        print(f"line {i} " + "x" * 500, flush=True)
    time.sleep(600)
emit(type="done", summary={})
"""


@pytest.mark.skipif(tmpfs_unavailable() is not None, reason=str(tmpfs_unavailable()))
def test_a_full_disk_under_the_store_never_stalls_the_queue(
    make_process_daemon: ProcessDaemonFactory, tmp_path: Path
) -> None:
    daemon = make_process_daemon(config=fake_engine(tmp_path, FILL_THE_DISK) + "max_parallel = 1\n")
    data_dir = daemon.paths.data_dir
    data_dir.mkdir(parents=True)
    daemon.prefix = on_private_tmpfs(data_dir, "8m")
    daemon.start()
    filler = daemon.call("jobs.submit", kind="prepare-model", params={"name": "filler"})
    behind = daemon.call("jobs.submit", kind="prepare-model", params={"name": "behind"})

    def health() -> dict[str, Any]:
        checks: dict[str, Any] = daemon.call("system.health")
        return checks

    # Health tells the truth: the store's writes fail.
    full = wait_for(lambda: (h := health())["checks"]["store"] != "ok" and h, 60)
    assert full["ok"] is False
    assert full["checks"]["store"].startswith("error: writes fail since"), full
    assert "full" in full["checks"]["store"]

    # Cancel works while nothing can be written: the process is stopped at once...
    assert daemon.call("jobs.cancel", id=filler["id"])["id"] == filler["id"]
    wait_for(lambda: not engine_processes(filler["run_dir"]), 30)
    waiting = wait_for(lambda: (h := health())["checks"]["runner"] != "ok" and h, 30)
    assert f"{filler['id']} cancelled" in waiting["checks"]["runner"], waiting
    assert daemon.call("jobs.get", id=behind["id"])["status"] == "queued"

    # ...and once there is room again its end is recorded and the queue goes on.
    assert daemon.proc is not None
    Path(f"/proc/{daemon.proc.pid}/root{data_dir}/filler").unlink()
    cancelled = daemon.wait_job(filler["id"], {"cancelled", "failed", "completed"}, 90)
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "cancelled by request"
    assert_queue_goes_on(daemon, behind)
    after = health()["checks"]
    assert after["store"] == "ok" and after["runner"] == "ok", after


def test_a_job_that_cannot_start_fails_with_the_reason_and_the_queue_goes_on(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    # A store written before submit refused params that are not Unicode text holds such a job
    # at the head of its queue; the one behind it must still run.
    daemon = make_daemon(config=fake_engine(tmp_path, 'emit(type="done")') + "max_parallel = 1\n")
    daemon.paths.ensure()
    store = Store(daemon.paths.db_file, daemon.paths.runs_dir)
    bad = store.create_job("prepare-model", "old", {"name": "\ud800"}, None, None)
    good = store.create_job("prepare-model", "behind", {"name": "fine"}, None, None)
    store.close()
    daemon.start()
    failed = daemon.wait_job(bad.id, {"completed", "failed"}, 60)
    assert failed["status"] == "failed"
    assert failed["error"].startswith("the job's params cannot be used: "), failed["error"]
    assert_queue_goes_on(daemon, daemon.call("jobs.get", id=good.id))


def completed_fake_job(
    make_daemon: DaemonFactory, tmp_path: Path, body: str
) -> tuple[Daemon, dict[str, Any]]:
    """A daemon whose engine runs `body`, and one job of it run to completion."""
    daemon = make_daemon(config=fake_engine(tmp_path, body)).start()
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "faked"})
    assert daemon.wait_job(job["id"], {"completed", "failed"}, 60)["status"] == "completed"
    return daemon, job


def test_terminal_codes_in_a_jobs_output_never_reach_its_log(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """A library that colours its output (mlx-lm's) or redraws a progress bar writes for a
    terminal; the log (CLI, TUI, store) keeps the text."""
    body = (
        r'print("\x1b[32mIter 10:\x1b[0m train loss \x1b[1;31m2.310\x1b[0m\x1b[K", flush=True)'
        "\n"
        r'print("\x1b]0;a window title\x07loading 10%\rloading 100%", flush=True)'
        '\nemit(type="done")'
    )
    daemon, job = completed_fake_job(make_daemon, tmp_path, body)
    lines = [x["line"] for x in daemon.call("jobs.logs", id=job["id"])["lines"]]
    assert "Iter 10: train loss 2.310" in lines and "loading 100%" in lines, lines
    assert not any("\x1b" in line for line in lines)


def test_what_a_job_left_running_ends_with_it(make_daemon: DaemonFactory, tmp_path: Path) -> None:
    """A worker the engine started and never waited for (a data loader, a tokenizer pool) does
    not outlive a job that ended normally."""
    pid_file = tmp_path / "worker.pid"
    body = (
        "import subprocess\n"
        "worker = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(worker.pid))\n"
        'emit(type="done")'
    )
    completed_fake_job(make_daemon, tmp_path, body)
    worker = int(pid_file.read_text())
    wait_for(lambda: not Path(f"/proc/{worker}").exists() or zombie(worker), timeout=20)


def zombie(pid: int) -> bool:
    """A process that has ended and waits for its parent to read its status."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_a_stopped_job_shows_as_stalled_and_cancel_frees_its_slot(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    body = 'emit(type="log", level="info", message="started")\nimport time\ntime.sleep(600)'
    config = fake_engine(tmp_path, body) + "stall_after_s = 1\n"
    daemon = make_daemon(config=config).start()
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "silent"})
    running = daemon.wait_job(job["id"], {"running"}, 30)
    os.kill(running["pid"], signal.SIGSTOP)  # as a person's Ctrl+Z, or a hung driver would
    try:
        health = wait_for(
            lambda: "stalled" in (h := daemon.call("system.health"))["checks"]["runner"] and h,
            timeout=20,
        )
        assert not health["ok"] and job["id"] in health["checks"]["runner"]
        assert daemon.call("jobs.get", id=job["id"])["stalled_s"] >= 1
        listed = forge("jobs", "ls", home=daemon.home).stdout
        assert "running, stalled" in listed, listed
    finally:
        os.kill(running["pid"], signal.SIGCONT)
    daemon.call("jobs.cancel", id=job["id"])
    assert daemon.wait_job(job["id"], {"cancelled", "failed"}, 60)["status"] == "cancelled"
    assert daemon.call("system.health")["checks"]["runner"] == "ok"
