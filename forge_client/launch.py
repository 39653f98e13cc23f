"""Starting a daemon in the background, for `make demo` and the TUI's "start the daemon" key.

The daemon runs in a session of its own, so it outlives the terminal that started it, with its
output appended to the state folder's `forged.log`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from forge_api.paths import ForgePaths
from forge_api.private_dirs import UnsafeFolder
from forge_client.client import Client, DaemonNotRunning


class DaemonStartFailed(RuntimeError):
    """The daemon exited or never answered; the message points at its log."""


def spawn_daemon(paths: ForgePaths) -> subprocess.Popen[bytes]:
    """Start `forge daemon` detached; returns once its socket answers."""
    try:
        paths.ensure()
    except UnsafeFolder as exc:
        raise DaemonStartFailed(str(exc)) from None
    log = paths.log_file
    env = dict(os.environ)
    if paths.home is not None:
        env["FORGE_HOME"] = str(paths.home)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forged"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    for _ in range(300):
        if proc.poll() is not None:
            raise DaemonStartFailed(f"the daemon exited ({proc.returncode}); see {log}")
        if daemon_answers(paths):
            return proc
        time.sleep(0.1)
    raise DaemonStartFailed(f"the daemon did not come up within 30 s; see {log}")


def daemon_answers(paths: ForgePaths) -> bool:
    try:
        with Client(paths.socket_file, timeout=5) as client:
            client.call("system.health")
        return True
    except (DaemonNotRunning, OSError):
        return False
