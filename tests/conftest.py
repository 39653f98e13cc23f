"""Shared fixtures: a real daemon (in-process or a process) in a temporary FORGE_HOME, and the
tiny model built once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from forged.engine_host import runs_warm
from tests.support.coverage_startup import sitecustomize as untraced_imports
from tests.support.daemon_harness import (
    D,
    Daemon,
    DaemonFactory,
    Factory,
    ProcessDaemon,
    ProcessDaemonFactory,
    short_tmp,
)
from tests.support.inprocess_daemon import InProcessDaemon
from tests.support.warm_engine import warm_engine

DAEMON_FIXTURES = {"daemon", "make_daemon", "process_daemon", "make_process_daemon", "fuzzed"}
"""A test that asks for one of these talks to a real daemon."""


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs two workers on this 2-core kind of machine) each
    worker's engines take one torch thread: two trainings at once then share the cores instead of
    four threads spinning for two (the engine honours OMP_NUM_THREADS)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = "1"
    if os.environ.get("COVERAGE_PROCESS_CONFIG"):  # coverage measures this run and its children
        _import_libraries_untraced()


def _import_libraries_untraced() -> None:
    """Under coverage, other people's libraries import untraced, here and in every process the
    tests start (tests/support/coverage_startup/sitecustomize.py says why)."""
    folder = str(Path(untraced_imports.__file__).parent)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if folder not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, *paths]))
    untraced_imports.install()


TIERS = ("real", "slow", "ray", "training", "daemon", "unit")
"""A test's tier is the first of these that holds for it, so each test has exactly one (`make
check` runs `unit or daemon`); it is also the order tests are handed out in, the longest first,
so no worker is left with a long file at the end while the other idles."""


def _tier(item: pytest.Item) -> str:
    """`real`, `slow` and `ray` are marked by hand; the rest follow from the fixtures: `training`
    where the tiny model is loaded (an engine process, torch and all), `daemon` where a daemon
    answers, `unit` where neither does."""
    names = set(getattr(item, "fixturenames", ()))
    for tier in TIERS[:3]:
        if item.get_closest_marker(tier):
            return tier
    if "tiny_model" in names:
        return "training"
    return "daemon" if names & DAEMON_FIXTURES else "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test's tier, from what it asks for, so a new test lands in one without being told;
    then the order workers take files in (--dist loadfile, kept: --no-loadscope-reorder): a
    file's heaviest tier places it, and within a tier files of fewer tests go first (a file of
    one heavy test is one long end-to-end run, and it must not start last)."""
    rank: dict[Path, int] = {}
    count: dict[Path, int] = {}
    for item in items:
        tier = _tier(item)
        item.add_marker(getattr(pytest.mark, tier))
        rank[item.path] = min(rank.get(item.path, len(TIERS)), TIERS.index(tier))
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


def _made(kind: Callable[[Path, str | None], D]) -> Iterator[Factory[D]]:
    """A factory of `kind` daemons, each cleaned up (stopped, its folder removed) after the test."""
    made: list[D] = []

    def make(home: Path | None = None, config: str | None = None) -> D:
        made.append(kind(home or short_tmp("fd"), config))
        return made[-1]

    yield make
    for daemon in made:
        daemon.cleanup()


@pytest.fixture
def make_daemon() -> Iterator[DaemonFactory]:
    """In-process daemons: the real server on a real socket, in a thread of the test."""
    yield from _made(InProcessDaemon)


@pytest.fixture
def make_process_daemon() -> Iterator[ProcessDaemonFactory]:
    """Daemon processes, for what only a process has (kill -9, signals, its own environment,
    mounts or memory)."""
    yield from _made(ProcessDaemon)


@pytest.fixture
def daemon(make_daemon: DaemonFactory, request: pytest.FixtureRequest) -> Daemon:
    wanted = getattr(request.function, "__annotations__", {}).get("daemon")
    if wanted in ("ProcessDaemon", ProcessDaemon):
        raise TypeError(f"{request.node.nodeid} wants a process: take `process_daemon`")
    return make_daemon().start()


@pytest.fixture
def process_daemon(make_process_daemon: ProcessDaemonFactory) -> ProcessDaemon:
    return make_process_daemon().start()


def run_engine(
    spec: Mapping[str, object], run_dir: Path, *, cold: bool = False
) -> list[dict[str, Any]]:
    """Run `python -m engine` on a spec, as the daemon does: forked from this worker's warm
    engine host (`tests.support.warm_engine`) where the daemon would fork it, else (or when
    `cold`) as its own process. Its JSON events, then its exit code and its other output."""
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_file = run_dir / "spec.json"
    spec_file.write_text(json.dumps(spec))
    command = [sys.executable, "-m", "engine", str(spec_file)]
    params = spec.get("params")
    host = None
    if not cold and runs_warm(command, params if isinstance(params, dict) else {}):
        host = warm_engine()
    if host is not None:
        code, output = host.run(command, timeout=300)
    else:
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=300, env=dict(os.environ)
        )
        code, output = out.returncode, out.stdout + out.stderr
    events: list[dict[str, Any]] = []
    other: list[str] = []
    for line in output.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
        else:
            other.append(line)
    events.append({"type": "exit", "code": code, "stderr": "\n".join(other)})
    return events


def job_spec(kind: str, params: dict[str, Any], root: Path, name: str) -> dict[str, Any]:
    """A job's spec with its run dir `root/name` and models under `root/models`. Its data dir
    is its dataset's folder: the engine reads no dataset file from outside it."""
    dataset = params.get("dataset")
    return {
        "job_id": name,
        "kind": kind,
        "params": params,
        "run_dir": str(root / name),
        "models_dir": str(root / "models"),
        "datasets_dir": str(Path(dataset).parent if dataset else root),
    }


def engine_job(kind: str, params: dict[str, Any], root: Path, name: str) -> list[dict[str, Any]]:
    """One job through `python -m engine` in `root/name` (`job_spec`); the test fails unless
    it exits 0."""
    events = run_engine(job_spec(kind, params, root, name), root / name)
    assert events[-1]["code"] == 0, (events[-1]["stderr"][-2000:], events[-3:-1])
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
