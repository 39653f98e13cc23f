"""`make demo` as a new user runs it (without a terminal it shows what the daemon holds and
stops), twice: the second run uses what the first made instead of building it again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def demo(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forge_cli.demo"],
        env=dict(os.environ, FORGE_DEMO_HOME=str(home)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_demo_runs_and_runs_again(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    first = demo(home)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "building the tiny local model" in first.stdout
    assert "demo-project" in first.stdout  # the source it added
    assert "proposed" in first.stdout  # the mission the agent proposed, listed
    assert "stopped forged (pid " in first.stdout

    again = demo(home)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "the tiny local model is built already" in again.stdout
    assert "building the tiny local model" not in again.stdout
    assert "stopped forged (pid " in again.stdout
