"""A real one-node Ray cluster on this machine for the tests (`ray start --head`), on the
loopback address only, stopped again after. Skips, saying why, where Ray is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.browser import free_port
from tests.support.daemon_harness import short_tmp


def ray_command() -> Path:
    """The `ray` CLI of this Python's environment, or a skip that says how to get it."""
    pytest.importorskip(
        "ray.job_submission", reason="Ray is not installed (pip install 'ai-forge[ray]')"
    )
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        pytest.skip(f"the ray command is not beside {sys.executable}")
    return ray


@contextmanager
def local_ray_cluster() -> Iterator[str]:
    """Start a head node (2 CPUs, no GPU, dashboard on a free loopback port); yield its job
    server's address; stop it."""
    ray = ray_command()
    temp = short_tmp("ray")
    dashboard = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    start = [
        str(ray),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={free_port()}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        "--num-cpus=2",
        "--num-gpus=0",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
    ]
    done = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"ray start failed:\n{done.stdout}\n{done.stderr}")
    try:
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        stop_ray_cluster()
        shutil.rmtree(temp, ignore_errors=True)


def stop_ray_cluster() -> None:
    """`ray stop --force`: every Ray process of this user on this machine (ours only here)."""
    subprocess.run(
        [str(ray_command()), "stop", "--force"], capture_output=True, timeout=120, check=False
    )
