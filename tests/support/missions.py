"""A daemon with the agent on the tiny model, a small repository for it, and its proposals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.daemon_harness import Daemon, DaemonFactory
from tests.support.repos import commit, git


def agent_config(
    tiny_model: Path, ollama_host: str = "127.0.0.1:9", *, calibrate: bool = False
) -> str:
    """Missions on the tiny model; Ollama where none listens unless the test brings one. No
    calibration job before the first proposal (an engine process, most of a proposal's time)
    unless the test is about calibrating: `calibrate=True`."""
    return (
        f'[ollama]\nhost = "{ollama_host}"\n\n'
        '[agent]\nallowed_roots = ["/tmp"]\nmin_commits = 2\nmin_tokens = 20\n'
        f'base_model = "{tiny_model}"\nrescan_interval_s = 3600\n'
        f"calibrate = {str(calibrate).lower()}\n"
    )


def make_repo(root: Path) -> Path:
    repo = root / "widgets"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(
        repo,
        {
            "README.md": "# Widgets\n\n## Usage\n\nCall `make_widget(size)` to get a "
            "widget of that size; sizes run from 1 to 10.\n"
        },
        "Describe the widgets",
    )
    commit(
        repo,
        {
            "widgets.py": "def make_widget(size: int) -> str:\n"
            '    """A widget of the given size."""\n    return \'#\' * size\n'
        },
        "Add make_widget with sizes",
    )
    commit(
        repo,
        {
            "widgets.py": "def make_widget(size: int) -> str:\n"
            '    """A widget of the given size, 1 to 10."""\n'
            "    if not 1 <= size <= 10:\n        raise ValueError(size)\n"
            "    return '#' * size\n"
        },
        "Refuse widget sizes out of range",
    )
    return repo


def next_proposal(daemon: Daemon, since: int) -> dict[str, Any]:
    # A proposal may wait for a calibration (a real model's few steps on a busy CI core).
    with daemon.client(timeout=600) as c:
        c.call("events.subscribe", since=since, types=["mission.proposed"])
        event = next(c.events())
    mission: dict[str, Any] = daemon.call("missions.get", id=event["data"]["id"])
    return mission


def widgets_proposal(
    make_daemon: DaemonFactory, config: str, tmp_path: Path
) -> tuple[Daemon, Path, dict[str, Any], dict[str, Any]]:
    """A daemon watching the widgets repository, and the mission it proposed for it."""
    daemon = make_daemon(config=config).start()
    repo = make_repo(tmp_path)
    start = daemon.call("system.status")["last_seq"]
    source = daemon.call("sources.add", path=str(repo))
    return daemon, repo, source, next_proposal(daemon, start)


def measured(daemon: Daemon, mission: dict[str, Any]) -> dict[str, Any]:
    """The mission once the calibration it was shown before has timed it (at once where it
    was proposed with its measures)."""
    if not mission["data"].get("measuring"):
        return mission
    with daemon.client(timeout=600) as c:
        c.call("events.subscribe", since=0, types=["mission.updated"])
        for event in c.events():
            if event["data"]["id"] != mission["id"]:
                continue
            now: dict[str, Any] = daemon.call("missions.get", id=mission["id"])
            if not now["data"].get("measuring"):
                return now
    raise AssertionError("the event stream ended")
