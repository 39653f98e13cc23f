"""The agent's two speeds, on a clone of this repository (its source, docs and history):

* commit → mission proposed: a daemon watches the clone; each round commits two files and times
  the commit's return to the `mission.proposed` event, minus `agent.debounce_s` (target < 2 s).
  Baseline: a bare watchdog observer on the same `.git` folder, timed from running `git commit`
  to its first event: the floor any watcher pays to notice a commit.
* dataset building: `build_dataset` over the whole clone in MB/s of tracked text, against
  `git ls-files -z | xargs -0 cat > /dev/null` on the same clone (reading the same files).

    .venv/bin/python -m bench.agent_speed [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from agent.dataset_build import build_dataset
from agent.secrets import forget_verdicts
from bench.scratch_daemon import scratch_daemon
from forge_api.paths import ForgePaths
from forge_client.client import Client

ROOT = Path(__file__).resolve().parent.parent
DEBOUNCE_S = 1.0


def git(repo: Path, *args: str) -> None:
    who = ["-c", "user.name=bench", "-c", "user.email=b@example.invalid"]
    subprocess.run(
        ["git", "-C", str(repo), *who, *args],
        check=True,
        capture_output=True,
    )


def commit_two_files(repo: Path, round_: int) -> float:
    """Commit two small modules; the time `git commit` returned."""
    for n in range(2):
        body = f"def bench_{round_}_{n}(x: int) -> int:\n    return x * {n + 2}\n" * 4
        (repo / f"bench_{round_}_{n}.py").write_text(body)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", f"Add bench helpers, round {round_}")
    return time.perf_counter()


def watchdog_floor(repo: Path, rounds: int) -> list[float]:
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    noticed = threading.Event()
    at: list[float] = []

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if not noticed.is_set():
                at.append(time.perf_counter())
                noticed.set()

    observer = Observer()
    observer.schedule(Handler(), str(repo / ".git"), recursive=True)
    observer.start()
    delays = []
    for n in range(rounds):
        for i in range(2):
            (repo / f"floor_{n}_{i}.py").write_text(f"X = {n}\n")
        git(repo, "add", ".")
        time.sleep(0.5)  # let the events of `git add` pass
        noticed.clear()
        at.clear()
        started = time.perf_counter()
        git(repo, "commit", "-q", "-m", f"floor {n}")
        noticed.wait(10)
        delays.append(at[0] - started if at else 10.0)
    observer.stop()
    observer.join()
    return delays


def proposal_latency(repo: Path, rounds: int) -> list[float]:
    def configure(paths: ForgePaths) -> None:
        paths.config_file.write_text(
            f'[agent]\nallowed_roots = ["{repo.parent}"]\nmin_commits = 2\nmin_tokens = 20\n'
            f"debounce_s = {DEBOUNCE_S}\nrescan_interval_s = 3600\n"
        )

    delays = []
    with (
        scratch_daemon("forge-bench-agent-", configure) as (paths, _),
        Client(paths.socket_file, timeout=120) as c,
    ):
        c.call("sources.add", path=str(repo))
        deadline = time.time() + 300
        # The first scan proposes a mission for the history there is (a first, cold dataset
        # build); the rounds time what a commit costs after that.
        while not c.call("missions.list")["missions"]:
            if time.time() > deadline:
                raise RuntimeError("the first scan proposed nothing in 5 minutes")
            time.sleep(0.2)
        time.sleep(DEBOUNCE_S + 1)
        for n in range(rounds):
            with Client(paths.socket_file, timeout=120) as follower:
                since = c.call("system.status")["last_seq"]
                follower.call("events.subscribe", since=since, types=["mission.proposed"])
                committed = commit_two_files(repo, n)
                next(follower.events())
                delays.append(time.perf_counter() - committed - DEBOUNCE_S)
    return delays


def tracked_megabytes(repo: Path) -> float:
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z"], check=True, capture_output=True
    ).stdout
    names = [n for n in listed.decode().split("\0") if n]
    return sum((repo / n).stat().st_size for n in names if (repo / n).is_file()) / 1e6


def dataset_speed(repo: Path, out: Path) -> tuple[float, float]:
    """(seconds to build the dataset from cold, seconds for git ls-files | xargs cat)."""
    start = time.perf_counter()
    subprocess.run(
        f"git -C {repo} ls-files -z | (cd {repo} && xargs -0 cat > /dev/null)",
        shell=True,
        check=True,
    )
    cat = time.perf_counter() - start
    forget_verdicts()  # a first build: no line's secret scan remembered from the one before
    start = time.perf_counter()
    build_dataset(repo, out, "bench")
    built = time.perf_counter() - start
    return built, cat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="forge-bench-agent-", dir="/tmp"))
    try:
        repo = work / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        size = tracked_megabytes(repo)
        builds = [dataset_speed(repo, work / f"datasets-{n}") for n in range(3)]
        built = statistics.median(b for b, _ in builds)
        cat = statistics.median(c for _, c in builds)
        print(f"repository: {size:.1f} MB of tracked files")
        print(f"git ls-files | xargs cat: {size / cat:,.0f} MB/s ({cat * 1000:.0f} ms)")
        print(f"dataset build: {size / built:,.1f} MB/s ({built * 1000:.0f} ms)")
        print(f"dataset build / cat: {built / cat:.1f}x the time")

        floor = statistics.median(watchdog_floor(repo, args.rounds))
        ours = proposal_latency(repo, args.rounds)
        print(f"watchdog alone notices a commit: median {floor * 1000:.0f} ms")
        print(
            f"commit -> mission proposed, minus the {DEBOUNCE_S:.0f} s debounce: "
            f"median {statistics.median(ours) * 1000:.0f} ms, max {max(ours) * 1000:.0f} ms "
            "(target < 2000 ms)"
        )
        print("each round: " + ", ".join(f"{d * 1000:.0f} ms" for d in ours))
        print(f"ratio to watchdog alone: {statistics.median(ours) / max(floor, 1e-3):.1f}x")
        return 0 if max(ours) < 2.0 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
