"""A real one-node Ray cluster on this machine (`ray start --head`), on the loopback address
only, stopped again after: for the tests (which skip, saying why, where Ray is not installed)
and for `bench.ray_overhead`."""

from __future__ import annotations

import importlib.util
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

NOT_INSTALLED = "Ray is not installed (pip install 'ai-forge[ray]')"


def ray_cli() -> Path | None:
    """The `ray` command of this Python's environment, where Ray (with its job server) is
    installed."""
    if importlib.util.find_spec("ray") is None:
        return None
    ray = Path(sys.executable).parent / "ray"
    return ray if ray.exists() else None


def ray_command() -> Path:
    """The `ray` command, or a skip of the test that says how to get it."""
    pytest.importorskip("ray.job_submission", reason=NOT_INSTALLED)
    ray = ray_cli()
    if ray is None:
        pytest.skip(f"the ray command is not beside {sys.executable}")
    return ray


@contextmanager
def local_ray_cluster(ray: Path) -> Iterator[str]:
    """Start a head node (2 CPUs, no GPU, dashboard on a free loopback port); yield its job
    server's address; stop it."""
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
        stop_ray_cluster(ray)
        shutil.rmtree(temp, ignore_errors=True)


def stop_ray_cluster(ray: Path) -> None:
    """`ray stop --force`: every Ray process of this user on this machine (ours only here)."""
    subprocess.run([str(ray), "stop", "--force"], capture_output=True, timeout=120, check=False)
