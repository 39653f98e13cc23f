"""Each contender of a benchmark in a process of its own, so its peak memory is its own: the
benchmark module runs itself with `--child ARGS` and prints a JSON line last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_child(module: str, name: str, *args: str) -> dict[str, Any]:
    """`python -m module --child *args`; its last stdout line as JSON, or exit saying which
    contender (`name`) failed and how."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--child", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    if done.returncode != 0:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def installed_version(distribution: str) -> str | None:
    """The installed version of `distribution`, or None where it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
