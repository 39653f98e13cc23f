"""The warm engine host: local jobs are forked from one process that imported torch,
transformers and peft once, and behave as the cold `python -m engine <spec>` does: their own
process group and title, their exit code, a cancel, and an end when the host is gone."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from engine.synthetic import write_dataset
from forged.engine_host import runs_warm
from tests.support.daemon_harness import Daemon, DaemonFactory, wait_for

FORKED = "forked from the warm engine host (pid "


def log_lines(daemon: Daemon, job_id: str) -> list[str]:
    return [x["line"] for x in daemon.call("jobs.logs", id=job_id, limit=1000)["lines"]]


def host_pid(daemon: Daemon, job_id: str) -> int | None:
    """The host a job says it was forked from; None for a job that started cold."""
    said = next((line for line in log_lines(daemon, job_id) if FORKED in line), None)
    return None if said is None else int(said.split(FORKED)[1].split(")")[0])


def hosts_of(daemon: Daemon) -> list[int]:
    """Engine host processes serving this daemon (their socket is in its runtime folder)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"engine.host" in argv and str(daemon.paths.runtime_dir).encode() in argv[-3]:
            found.append(int(proc.name))
    return found


def train(daemon: Daemon, model: Path, **params: Any) -> dict[str, Any]:
    """A long train job on the tiny model (cancelled or failed by the test)."""
    data = write_dataset(daemon.paths.datasets_dir / "chat.jsonl", 200, seed=3)
    base = {"base_model": str(model), "dataset": str(data), "max_seq_len": 256, "rank": 8}
    job: dict[str, Any] = daemon.call("jobs.submit", kind="train", params=base | params)
    return job


def test_jobs_fork_from_one_host_and_keep_their_own_group_title_and_exit(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon = make_daemon().start()
    first = daemon.call("jobs.submit", kind="prepare-model", params={"path": str(tiny_model)})
    assert daemon.wait_job(first["id"], {"completed", "failed"})["status"] == "completed"
    host = host_pid(daemon, first["id"])
    assert host is not None, log_lines(daemon, first["id"])

    # A job that fails says why and exits 1, as a cold engine does; same host.
    failed = daemon.call("jobs.submit", kind="prepare-model", params={"path": str(tmp_path)})
    done = daemon.wait_job(failed["id"], {"completed", "failed"})
    assert (done["status"], done["exit_code"]) == ("failed", 1)
    assert "config.json: missing" in done["error"]
    assert host_pid(daemon, failed["id"]) == host

    # A running one: the host's child, leading its own process group, titled as its command.
    job = train(daemon, tiny_model, max_steps=10_000, checkpoint_every=1)
    pid = daemon.wait_job(job["id"], {"running"})["pid"]
    assert os.getpgid(pid) == pid
    assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == host
    # Titled as its cold command (just after the fork, so `ps` soon shows it).
    title = wait_for(
        lambda: b" -m engine " in (t := Path(f"/proc/{pid}/cmdline").read_bytes()) and t
    )
    assert job["run_dir"].encode() in title
    daemon.call("jobs.cancel", id=job["id"])
    cancelled = daemon.wait_job(job["id"], {"cancelled", "failed"})
    assert cancelled["status"] == "cancelled" and cancelled["exit_code"] == 143
    assert host_pid(daemon, job["id"]) == host

    # The host leaves with the daemon.
    assert hosts_of(daemon) == [host]
    daemon.stop()
    wait_for(lambda: not hosts_of(daemon), 20)


def test_a_job_whose_host_dies_fails_saying_so_and_the_next_gets_a_new_host(
    make_daemon: DaemonFactory, tiny_model: Path
) -> None:
    daemon = make_daemon().start()
    job = train(daemon, tiny_model, max_steps=10_000, checkpoint_every=1)
    daemon.wait_job(job["id"], {"running"})
    wait_for(lambda: host_pid(daemon, job["id"]), 60)
    host = host_pid(daemon, job["id"])
    assert host is not None
    os.kill(host, signal.SIGKILL)
    failed = daemon.wait_job(job["id"], {"failed", "completed", "cancelled"})
    assert failed["status"] == "failed"
    assert "the engine host ended before the job did" in failed["error"]

    again = daemon.call("jobs.submit", kind="prepare-model", params={"path": str(tiny_model)})
    assert daemon.wait_job(again["id"], {"completed", "failed"})["status"] == "completed"
    new_host = host_pid(daemon, again["id"])
    assert new_host is not None and new_host != host


def test_with_no_host_configured_jobs_start_cold(
    make_daemon: DaemonFactory, tiny_model: Path
) -> None:
    daemon = make_daemon(config="[jobs]\nwarm_engine_idle_s = 0\n").start()
    job = daemon.call("jobs.submit", kind="prepare-model", params={"path": str(tiny_model)})
    assert daemon.wait_job(job["id"], {"completed", "failed"})["status"] == "completed"
    assert host_pid(daemon, job["id"]) is None
    assert not hosts_of(daemon)  # none was started for it


def test_what_cannot_run_warm_starts_cold() -> None:
    engine = ["/venv/bin/python", "-m", "engine", "/runs/job-1/spec.json"]
    assert runs_warm(engine, {"path": "/models/tiny"})
    assert not runs_warm(engine, {"path": "hf:HuggingFaceTB/SmolLM2-135M"})  # the hub
    assert not runs_warm(engine, {"backend": "unsloth"})  # imported before transformers
    launcher = ["/venv/bin/python", "-m", "accelerate.commands.launch", "-m", "engine", "s"]
    assert not runs_warm(launcher, {})  # data-parallel processes come from accelerate
