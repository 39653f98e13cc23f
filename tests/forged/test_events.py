"""events.subscribe: increasing seq, replay after `since` with no gap or duplicate, filters,
and a slow subscriber dropped without stalling anyone else."""

from __future__ import annotations

import subprocess
from pathlib import Path

from forge_client.client import Client
from tests.support.daemon_harness import Daemon, DaemonFactory, wait_for
from tests.support.rawsock import Raw


def make_repo(root: Path, name: str) -> Path:
    repo = root / name
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def churn(daemon: Daemon, repo: Path, rounds: int) -> None:
    """Two stored events per round (source.added, source.removed) through the real API."""
    with daemon.client() as c:
        for _ in range(rounds):
            source = c.call("sources.add", path=str(repo))
            c.call("sources.remove", id=source["id"])


def test_reconnect_with_since_misses_nothing(daemon: Daemon, tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "r")
    first = Client(daemon.socket)
    start = first.call("events.subscribe", types=["source."])["last_seq"]
    churn(daemon, repo, 5)
    received = [next(first.events()) for _ in range(4)]
    first.close()  # disconnect part-way through the stream
    churn(daemon, repo, 5)

    with Client(daemon.socket) as second:
        second.call("events.subscribe", since=received[-1]["seq"], types=["source."])
        rest = [next(second.events()) for _ in range(16)]
    seqs = [e["seq"] for e in received + rest]
    assert len(seqs) == 20 and seqs == sorted(set(seqs))
    assert seqs[0] > start
    kinds = [e["type"] for e in received + rest]
    assert kinds == ["source.added", "source.removed"] * 10


def test_replay_then_live_without_gap(daemon: Daemon, tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "r")
    churn(daemon, repo, 300)  # more than one replay page
    with Client(daemon.socket) as c:
        c.call("events.subscribe", since=0, types=["source."])
        churn(daemon, repo, 10)
        events = [next(c.events()) for _ in range(620)]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    assert [e["type"] for e in events] == ["source.added", "source.removed"] * 310


def test_filters_by_job_and_type(daemon: Daemon, tmp_path: Path) -> None:
    with Client(daemon.socket) as c:
        a = c.call("jobs.submit", kind="prepare-model", params={"path": "/tmp"})  # no model
        c.call("jobs.submit", kind="prepare-model", params={"path": "/tmp"})
        c.call("events.subscribe", since=0, job_id=a["id"], types=["job.status"])
        statuses = []
        for event in c.events():
            assert event["job_id"] == a["id"] and event["type"] == "job.status"
            statuses.append(event["data"]["status"])
            if event["data"]["status"] == "failed":
                break
    assert statuses == ["queued", "running", "failed"]


def test_unsubscribe_stops_the_stream(daemon: Daemon, tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "r")
    with Client(daemon.socket) as c:
        sub = c.call("events.subscribe", types=["source."])
        assert c.call("events.unsubscribe", subscription=sub["subscription"]) == {"ok": True}
        churn(daemon, repo, 3)
        # Only the reply comes back: no event arrived in between.
        assert c.call("system.health")["ok"]
        assert not c.pending
        try:
            c.call("events.unsubscribe", subscription=sub["subscription"])
        except Exception as exc:
            assert getattr(exc, "code", None) == -32001
        else:
            raise AssertionError("a second unsubscribe must be refused")


def test_slow_subscriber_is_dropped_and_never_stalls_the_daemon(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = make_daemon(config="[events]\nsubscriber_queue = 100\n").start()
    repo = make_repo(tmp_path, "r")
    slow = Raw(daemon.socket, timeout=5)
    slow.request("events.subscribe", {})
    slow.recv()
    # Never read again. Meanwhile many events happen, and every call is still answered.
    with daemon.client() as c:
        for _ in range(3000):
            source = c.call("sources.add", path=str(repo))
            c.call("sources.remove", id=source["id"])
            if c.call("system.status")["subscribers"] == 0:
                break
    assert daemon.call("system.status")["subscribers"] == 0
    assert wait_for(slow.closed_by_peer, timeout=10)


def test_stopping_with_subscribers_connected_is_clean(daemon: Daemon) -> None:
    """A TUI open while the daemon stops: its connection is closed, and the log says so
    plainly, with no traceback (Python 3.11 logs a client task cancelled at loop close)."""
    watchers = [daemon.client(), daemon.client()]
    for c in watchers:
        c.__enter__()
        c.call("events.subscribe", types=["job."])
    assert daemon.stop() == 0
    for c in watchers:
        c.__exit__(None, None, None)
    said = daemon.log.read_text()
    assert "stopped" in said and "Traceback" not in said and " ERROR " not in said, said
