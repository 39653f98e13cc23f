"""Logging out of an SSH session that runs `forge daemon` in the foreground: the terminal hangs
up (SIGHUP) and the daemon stops the way SIGTERM stops it, its training job checkpointed, so the
next start (by hand, or the systemd unit with lingering on) resumes the job. Nothing is lost to a
log-out. (The systemd side, a user service that outlives the session, needs lingering: see the
guide and `forge service status`.)"""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import sys
import termios
from pathlib import Path

from engine.synthetic import write_dataset
from tests.support.daemon_harness import ProcessDaemonFactory, wait_for


def test_hang_up_stops_the_daemon_cleanly_and_the_job_resumes(
    make_process_daemon: ProcessDaemonFactory, tiny_model: Path
) -> None:
    daemon = make_process_daemon()
    master, terminal = pty.openpty()

    def own_the_terminal() -> None:  # as a login shell's child does: the pty is its terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "forged"],
        env=daemon.env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        preexec_fn=own_the_terminal,
    )
    os.close(terminal)
    wait_for(lambda: daemon.socket.exists(), timeout=30)
    data = write_dataset(daemon.paths.datasets_dir / "chat.jsonl", 100, seed=6)
    params = {"base_model": str(tiny_model), "dataset": str(data), "max_seq_len": 256}
    job = daemon.call("jobs.submit", kind="train", params=params | {"max_steps": 100_000})
    wait_for(lambda: daemon.call("jobs.metrics", id=job["id"], names=["loss"])["metrics"], 120)

    os.close(master)  # the SSH session ends: the kernel hangs up the terminal
    assert proc.wait(60) == 0  # a clean stop, not death by SIGHUP (-1)

    daemon.start()
    resumed = daemon.wait_job(job["id"], {"running", "queued"})
    assert resumed["checkpoint"], resumed
    lines = daemon.call("jobs.logs", id=job["id"], tail=200)["lines"]
    assert any("resuming from checkpoint" in line["line"] for line in lines)
    daemon.call("jobs.cancel", id=job["id"])
