"""Shared fixtures: a real daemon (in-process or a process) in a temporary FORGE_HOME, and the
tiny model built once."""

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

from tests.support.daemon_harness import (
    Daemon,
    DaemonFactory,
    ProcessDaemon,
    ProcessDaemonFactory,
    short_tmp,
)
from tests.support.inprocess_daemon import InProcessDaemon

DAEMON_FIXTURES = {"daemon", "make_daemon", "process_daemon", "make_process_daemon", "fuzzed"}
"""A test that asks for one of these talks to a real daemon."""
HEAVY_TIERS = ("training", "real", "slow", "ray")
"""What `make check` leaves to `make test`: model-loading engines, real material, long runs."""


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs two workers on this 2-core kind of machine) each
    worker's engines take one torch thread: two trainings at once then share the cores instead of
    four threads spinning for two (the engine honours OMP_NUM_THREADS)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = "1"


TIER_ORDER = ("real", "slow", "ray", "training", "daemon", "unit")
"""The order tests are handed out in: the longest first, so no worker is left with a long file
at the end while the other idles."""


def _tier_rank(item: pytest.Item) -> int:
    return next(
        (i for i, tier in enumerate(TIER_ORDER) if item.get_closest_marker(tier)), len(TIER_ORDER)
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test's tier, from what it asks for, so a new test lands in one without being told:
    `training` where the tiny model is loaded (an engine process, torch and all), `daemon` where
    a daemon answers, `unit` where neither does and no heavier tier was marked by hand (`real`:
    material we did not make; `slow`: long reliability runs; `ray`: a local Ray cluster)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "tiny_model" in names:
            item.add_marker(pytest.mark.training)
        if names & DAEMON_FIXTURES:
            item.add_marker(pytest.mark.daemon)
        if not any(item.get_closest_marker(tier) for tier in ("daemon", *HEAVY_TIERS)):
            item.add_marker(pytest.mark.unit)
    # Workers take whole files (--dist loadfile, in this order: --no-loadscope-reorder). A
    # file's heaviest test places it; within a tier, files of fewer tests first: a file of one
    # heavy test is one long end-to-end run, and it must not start last.
    rank: dict[Path, int] = {}
    count: dict[Path, int] = {}
    for item in items:
        rank[item.path] = min(rank.get(item.path, len(TIER_ORDER)), _tier_rank(item))
        count[item.path] = count.get(item.path, 0) + 1
    items.sort(key=lambda item: (rank[item.path], count[item.path]))


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
    """In-process daemons (the real server on a real socket, in a thread of the test): stopped
    and their folders removed after the test."""
    made: list[Daemon] = []

    def make(home: Path | None = None, config: str | None = None) -> Daemon:
        made.append(InProcessDaemon(home or short_tmp("fd"), config))
        return made[-1]

    yield make
    for daemon in made:
        daemon.cleanup()


@pytest.fixture
def make_process_daemon() -> Iterator[ProcessDaemonFactory]:
    """Daemon processes, for what only a process has (kill -9, signals, its own environment,
    mounts or memory): killed and their folders removed after the test."""
    made: list[ProcessDaemon] = []

    def make(home: Path | None = None, config: str | None = None) -> ProcessDaemon:
        made.append(ProcessDaemon(home or short_tmp("fd"), config))
        return made[-1]

    yield make
    for daemon in made:
        daemon.cleanup()


@pytest.fixture
def daemon(make_daemon: DaemonFactory, request: pytest.FixtureRequest) -> Daemon:
    wanted = getattr(request.function, "__annotations__", {}).get("daemon")
    if wanted in ("ProcessDaemon", ProcessDaemon):
        raise TypeError(f"{request.node.nodeid} wants a process: take `process_daemon`")
    return make_daemon().start()


@pytest.fixture
def process_daemon(make_process_daemon: ProcessDaemonFactory) -> ProcessDaemon:
    return make_process_daemon().start()


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
