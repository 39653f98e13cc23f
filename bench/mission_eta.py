"""Does a mission take the time its card says, within its budget? Measured on a real model.

A real daemon watches a clone of markupsafe (`tests/data`)
with SmolLM2-135M-Instruct as its base (imported as `bench.mission_real` does). It prints how
long `forge sources add` took to list the mission, how long until its ETA was measured, then,
for each mission (approved with `--set minutes=M`; a later one on two new commits), the ETA the
card gave, the time from approval to done, their ratio, and the budget. Without Ollama the
chain ends after its eval, as it does for a person who has none.

    .venv/bin/python -m bench.mission_eta [--minutes 5] [--missions 2] [--seq 1024]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.mission_real import real_model
from bench.scratch_daemon import agent_on, scratch_daemon
from forge_client.client import Client
from tests.support.daemon_harness import wait_for
from tests.support.repos import clone_markupsafe, commit


def mission(client: Client, mission_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.call("missions.get", id=mission_id)
    return found


def run_one(client: Client, mission_id: str, minutes: float) -> tuple[float, float]:
    """(ETA on the card after approval's changes, seconds from approval to done)."""
    began = time.monotonic()
    approved = client.call("missions.approve", id=mission_id, set={"minutes": minutes})
    eta = float(approved["data"]["eta_s"] or 0)
    done = wait_for(
        lambda: (m := mission(client, mission_id))["stage"] in ("done", "failed") and m,
        minutes * 60 * 3,
        interval=1,
    )
    took = time.monotonic() - began
    if done["stage"] != "done":
        raise SystemExit(f"mission failed at {done['failed_step']}: {done['failure']}")
    return eta, took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--missions", type=int, default=2)
    ap.add_argument("--seq", type=int, default=1024)
    args = ap.parse_args()
    model = real_model()

    configure = agent_on(model, f"max_seq_len = {args.seq}\n")
    with scratch_daemon("forge-bench-eta-", configure) as (paths, _):
        repo = clone_markupsafe(
            Path(tempfile.mkdtemp(prefix="forge-bench-repo-", dir="/tmp")) / "markupsafe"
        )
        with Client(paths.socket_file, timeout=60) as client:
            added = time.monotonic()
            source = client.call("sources.add", path=str(repo))
            first = wait_for(lambda: client.call("missions.list")["missions"], 600, interval=1)[0]
            listed = time.monotonic() - added
            timed = wait_for(
                lambda: not (m := mission(client, first["id"]))["data"].get("measuring") and m,
                900,
                interval=1,
            )
            print(
                f"listed {listed:.0f} s after `sources add`; timed {time.monotonic() - added:.0f} s"
            )
            print(f"calibration: {timed['data'].get('measured')}")
            rows = []
            mission_id = first["id"]
            for n in range(args.missions):
                eta, took = run_one(client, mission_id, args.minutes)
                rows.append((n + 1, eta, took))
                print(
                    f"mission {n + 1}: ETA {eta:.0f} s, took {took:.0f} s, ratio "
                    f"{took / eta:.2f}, budget {args.minutes * 60:.0f} s",
                    flush=True,
                )
                if n + 1 == args.missions:
                    break
                for i in range(3):  # new material for the next mission (agent.min_commits)
                    body = "".join(
                        f"def helper_{n}_{i}_{k}(value: int) -> int:\n"
                        f'    """Add {k} to the value, for mission {n}."""\n'
                        f"    return value + {k}\n\n\n"
                        for k in range(120)
                    )
                    commit(repo, {f"bench_{n}_{i}.py": body}, f"Add helpers {n}.{i}")
                again = client.call("sources.scan", id=source["id"])["mission"]
                if again is None:
                    raise SystemExit("no second mission was proposed")
                mission_id = again["id"]
            print("\n| mission | ETA (s) | took (s) | took/ETA | budget (s) |")
            print("|---|---|---|---|---|")
            for n, eta, took in rows:
                print(
                    f"| {n} | {eta:.0f} | {took:.0f} | {took / eta:.2f} | {args.minutes * 60:.0f} |"
                )


if __name__ == "__main__":
    main()
