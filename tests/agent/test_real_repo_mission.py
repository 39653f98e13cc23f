"""A mission on a real repository with a long history (markupsafe, 833 commits): added as a
source, proposed, approved, trained and evaluated to the end of its chain with the tiny model,
every example fitting; then new commits propose an incremental mission holding just them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.daemon_harness import DaemonFactory, wait_for
from tests.support.missions import agent_config, next_proposal
from tests.support.repos import clone_markupsafe, commit, git, needs_markupsafe


@needs_markupsafe
@pytest.mark.timeout(900)  # 833 commits built twice, a train and an eval on two cores
def test_markupsafe_mission_runs_to_its_end_then_grows(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    config = agent_config(tiny_model) + "max_seq_len = 256\n"
    daemon = make_daemon(config=config).start()
    repo = clone_markupsafe(tmp_path / "markupsafe")
    start = daemon.call("system.status")["last_seq"]
    source = daemon.call("sources.add", path=str(repo))
    mission = next_proposal(daemon, start)
    data = mission["data"]
    card = data["card"]
    assert data["trigger"]["commits"] > 500
    assert card["tokenizer"] == "tiny-llama's tokenizer" and card["max_seq_len"] == 256
    assert card["skipped"]["commit by a bot"] > 100
    assert data["plan"]["params"]["max_seq_len"] == 256
    assert data["base_model"] == str(tiny_model.resolve())

    daemon.call("missions.approve", id=mission["id"][:8])  # a short id works
    train_id = wait_for(
        lambda: daemon.call("missions.get", id=mission["id"])["data"].get("train_job"), timeout=10
    )
    train = daemon.wait_job(train_id, {"completed", "failed"}, 280)
    assert train["status"] == "completed", train["error"]
    log = "\n".join(line["line"] for line in daemon.call("jobs.logs", id=train_id)["lines"])
    assert "0 skipped" in log, log  # every example the builders made fits max_seq_len
    eval_id = wait_for(
        lambda: daemon.call("missions.get", id=mission["id"])["data"].get("eval_job"), timeout=30
    )
    evaluated = daemon.wait_job(eval_id, {"completed", "failed"}, 280)
    assert evaluated["status"] == "completed", evaluated["error"]
    assert evaluated["params"]["max_seq_len"] == 256
    done = wait_for(
        lambda: daemon.call("missions.get", id=mission["id"])["stage"] == "done", timeout=30
    )
    assert done
    eval_log = "\n".join(line["line"] for line in daemon.call("jobs.logs", id=eval_id)["lines"])
    assert "of up to 256 tokens" in eval_log

    # New commits: an incremental mission with exactly the new material.
    head = git(repo, "rev-parse", "HEAD")
    commit(
        repo,
        {"src/markupsafe/extra.py": "def shout(s: str) -> str:\n    return s.upper()\n"},
        "Add shout, which upper-cases escaped text",
    )
    commit(
        repo,
        {
            "docs/shout.rst": "Shouting\n========\n\nUse ``shout`` to upper-case text "
            "after escaping it.\n"
        },
        "Document shout in its own page",
    )
    again = daemon.call("sources.scan", id=source["id"][:8])["mission"]
    assert again is not None and again["data"]["trigger"]["commits"] == 2
    assert again["data"]["trigger"]["since"] == head
    folder = Path(again["data"]["plan"]["params"]["dataset"])
    text = "".join(p.read_text() for p in folder.glob("*.jsonl"))
    assert "def shout" in text and "Document shout in its own page" in text
    assert json.loads((folder / "card.json").read_text())["per_builder"]["commits"] == 2
    # It continues the first mission's adapter, and its card says so.
    first = daemon.call("missions.get", id=mission["id"])["data"]["adapter"]
    assert again["data"]["plan"]["params"]["init_adapter"] == first
    assert (
        f"continues the source's adapter {first} (mission {mission['id']}"
        in (again["data"]["continues"])
    )
    # Approved: its train job continues the first adapter, and its eval scores all three sets,
    # the first mission's held-out rows as old material.
    daemon.call("missions.approve", id=again["id"], set={"steps": 2})
    second = wait_for(
        lambda: (
            (m := daemon.call("missions.get", id=again["id"]))["stage"] in ("done", "failed") and m
        ),
        timeout=600,
    )
    assert second["stage"] == "done", second.get("failure")
    train_log = daemon.call("jobs.logs", id=second["data"]["train_job"])["lines"]
    assert any(f"continuing adapter {first}" in line["line"] for line in train_log)
    sets = second["data"]["results"]["sets"]
    assert set(sets) == {"new_material", "old_material", "general"}, sets
    assert set(sets["old_material"]["models"]) == {"base", "current", "new"}
    assert second["data"]["deploy"].startswith("not deployed: ")
