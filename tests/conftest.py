"""Shared fixtures: a real daemon in a temporary FORGE_HOME, and the tiny model built once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon_harness import Daemon, DaemonFactory, short_tmp


@pytest.fixture(autouse=True)
def _isolated_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may touch the user's real config, data or socket."""
    home = short_tmp("fh")
    monkeypatch.setenv("FORGE_HOME", str(home))
    monkeypatch.delenv("FORGE_SOCKET", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    yield
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def make_daemon() -> Iterator[DaemonFactory]:
    """Daemons created through this are killed and their folders removed after the test."""
    made: list[Daemon] = []

    class Tracked(Daemon):
        def __init__(self, home: Path | None = None, config: str | None = None) -> None:
            super().__init__(home or short_tmp("fd"), config)
            made.append(self)

    yield Tracked
    for daemon in made:
        daemon.cleanup()


@pytest.fixture
def daemon(make_daemon: DaemonFactory) -> Daemon:
    return make_daemon().start()


def run_engine(spec: Mapping[str, object], run_dir: Path) -> list[dict[str, Any]]:
    """Run `python -m engine` on a spec, as the daemon does; returns its JSON events."""
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_file = run_dir / "spec.json"
    spec_file.write_text(json.dumps(spec))
    out = subprocess.run(
        [sys.executable, "-m", "engine", str(spec_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    events = []
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    events.append({"type": "exit", "code": out.returncode, "stderr": out.stderr})
    return events


def engine_job(kind: str, params: dict[str, Any], root: Path, name: str) -> list[dict[str, Any]]:
    """One job through `python -m engine` in `root/name`; the test fails unless it exits 0.
    Its data dir is its dataset's folder: the engine reads no dataset file from outside it."""
    dataset = params.get("dataset")
    spec = {
        "job_id": name,
        "kind": kind,
        "params": params,
        "run_dir": str(root / name),
        "models_dir": str(root / "models"),
        "datasets_dir": str(Path(dataset).parent if dataset else root),
    }
    events = run_engine(spec, root / name)
    assert events[-1]["code"] == 0, events[-1]["stderr"][-2000:]
    return events


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama, built once per session by the engine's prepare-model job."""
    root = tmp_path_factory.mktemp("tiny")
    spec = {
        "job_id": "tiny",
        "kind": "prepare-model",
        "params": {},
        "run_dir": str(root / "run"),
        "models_dir": str(root / "models"),
        "datasets_dir": str(root / "datasets"),
    }
    events = run_engine(spec, root / "run")
    assert events[-1]["code"] == 0, events
    return root / "models" / "tiny-llama"
