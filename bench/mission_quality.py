"""What a mission's adapter reaches with the default budget, on a real model and repository.

The quality goal of issue 31: on a fresh repository, the mission's adapter has at least 10 %
lower held-out loss on new material than the base, and is no more than 2 % worse on old
material and general text. A real daemon with SmolLM2-135M-Instruct as its base (imported as
`bench.mission_real` does) watches a clone of markupsafe (`tests/data`) split `--split` commits
before its head: the first mission (a fresh repository) is approved as proposed, with the
default budget (`agent.max_train_minutes`) unless `--minutes` says otherwise; then the rest of the
history comes in and the second mission, continuing the first's adapter, is approved the same
way. Each mission's 3 x 3 table (held-out loss of base, current and new adapter on new material,
old material and general text, change against the base) is printed with its verdict, its steps
and its wall time. Without Ollama the chain ends after its eval.

    .venv/bin/python -m bench.mission_quality [--missions 2] [--split 40] [--minutes M]
        [--set learning_rate=1e-3 ...]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.mission_real import real_model
from bench.scratch_daemon import agent_on, scratch_daemon
from forge_client.client import Client
from forged.registry import parameter_value
from tests.support.daemon_harness import wait_for
from tests.support.repos import clone_markupsafe, git


def table(data: dict[str, Any]) -> str:
    """The mission's held-out sets as a Markdown table, each change against the base."""
    lines = ["| set | base | current | new |", "|---|---|---|---|"]
    for name, scores in data["results"]["sets"].items():
        cells = []
        for model in ("base", "current", "new"):
            got = scores["models"].get(model)
            if got is None:
                cells.append("-")
            elif got["change_pct"] is None:
                cells.append(f"{got['loss']:.4f}")
            else:
                cells.append(f"{got['loss']:.4f} ({got['change_pct']:+.1f} %)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_mission(client: Client, mission_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    began = time.monotonic()
    client.call("missions.approve", id=mission_id, set=changes)
    done: dict[str, Any] = wait_for(
        lambda: (
            (m := client.call("missions.get", id=mission_id))["stage"] in ("done", "failed") and m
        ),
        4 * 3600,
        interval=5,
    )
    if done["stage"] != "done":
        raise SystemExit(f"mission failed at {done['failed_step']}: {done['failure']}")
    data = done["data"]
    train = client.call("jobs.get", id=data["train_job"])
    steps = (train.get("summary") or {}).get("steps")
    print(f"\nmission {mission_id}: {time.monotonic() - began:.0f} s from approval to done,")
    print(f"{steps} steps; budget {data['plan']['params'].get('max_minutes')} min")
    print(data.get("continues") or data.get("fresh_start") or "(from the base)")
    print(table(data))
    print(f"verdict: {data['deploy']}", flush=True)
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--missions", type=int, default=2, choices=(1, 2))
    ap.add_argument("--split", type=int, default=40, help="commits before the head to split at")
    ap.add_argument("--minutes", type=float, help="each mission's budget (default: the config's)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a plan change at approval, as `forge missions approve --set` (a number or text)",
    )
    args = ap.parse_args()
    changes: dict[str, Any] = {"minutes": args.minutes} if args.minutes else {}
    for item in args.set:
        key, _, value = item.partition("=")
        changes[key] = parameter_value(value)
    model = real_model()

    with scratch_daemon("forge-bench-quality-", agent_on(model)) as (paths, _):
        repo = clone_markupsafe(
            Path(tempfile.mkdtemp(prefix="forge-bench-repo-", dir="/tmp")) / "markupsafe"
        )
        head = git(repo, "rev-parse", "HEAD")
        subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard", f"HEAD~{args.split}"])
        with Client(paths.socket_file, timeout=120) as client:
            source = client.call("sources.add", path=str(repo))
            first = wait_for(lambda: client.call("missions.list")["missions"], 900, interval=2)[0]
            wait_for(
                lambda: not client.call("missions.get", id=first["id"])["data"].get("measuring"),
                1800,
                interval=2,
            )
            run_mission(client, first["id"], changes)
            if args.missions == 1:
                return
            subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard", head], check=True)
            again = client.call("sources.scan", id=source["id"])["mission"]
            if again is None:
                raise SystemExit("no second mission was proposed")
            run_mission(client, again["id"], changes)


if __name__ == "__main__":
    main()
