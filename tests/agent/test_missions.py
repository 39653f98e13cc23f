"""Missions end to end against a real daemon: commits land, a mission is proposed and streamed,
approving it trains and evaluates the tiny model, rejecting it stops re-proposal."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from forge_client.client import RemoteError
from forge_client.format import mission_eta
from tests.support.cli import forge
from tests.support.daemon_harness import Daemon, DaemonFactory, ProcessDaemonFactory, wait_for
from tests.support.fake_engine import fake_engine
from tests.support.missions import (
    agent_config,
    make_repo,
    measured,
    next_proposal,
    widgets_proposal,
)
from tests.support.repos import commit, git


def test_commits_to_proposal_to_trained_and_evaluated(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon, repo, source, mission = widgets_proposal(
        make_daemon, agent_config(tiny_model, calibrate=True), tmp_path
    )

    assert mission["stage"] == "proposed" and mission["source_id"] == source["id"]
    data = mission["data"]
    assert data["head"] == git(repo, "rev-parse", "HEAD")
    assert data["trigger"]["commits"] == 3
    assert data["card"]["examples"] > 0 and data["card"]["per_builder"]["commits"] == 3
    assert "widgets has 3 new commits" in data["rationale"]
    # What it must show to be deployed is on it before approval, from the config of the day.
    assert data["gate"] == {"min_gain_pct": 2.0, "max_regression_pct": 2.0}
    # Its counts add up: the examples by builder are those the dataset holds.
    held = re.search(r"holds (\d+) examples \(([^)]*)\)", data["rationale"])
    assert held, data["rationale"]
    assert sum(int(part.split()[0]) for part in held[2].split(", ")) == int(held[1])
    # The first mission on this base is shown at once, measuring the machine: its ETA comes
    # when the calibration job (which registers no adapter) ends.
    assert data["measuring"] is True and data.get("eta_s") is None
    assert "measuring this machine first" in data["rationale"]
    assert mission_eta(data.get("eta_s"), data["measuring"]) == "measuring…"
    listed = forge("missions", "ls", home=daemon.home).stdout
    assert mission["id"] in listed and "ETA" in listed, listed
    mission = measured(daemon, mission)
    data = mission["data"]
    assert data["eta_s"] > 0 and "tokens/s measured here at batch" in data["rationale"]
    assert data["measured"]["tokens_per_s"] > 0 and data["measured"]["bytes_per_row"] > 0
    for key in ("load_s", "eval_tokens_per_s", "gen_step_s"):
        assert data["measured"][key] > 0, key
    # The budget is the whole mission's: training, evaluation and deploy add up to the ETA.
    assert data["plan"]["params"]["max_minutes"] == 30
    timing = data["timing"]
    assert timing["train_s"] + timing["eval_s"] + timing["deploy_s"] == pytest.approx(
        data["eta_s"], abs=0.2
    )
    assert timing["train_budget_s"] < 30 * 60 and timing["eval_rows"] >= 1
    (calibration,) = daemon.call("jobs.list", text="calibrate")["jobs"]
    assert calibration["status"] == "completed" and calibration["mission_id"] is None
    calibration_log = [x["line"] for x in daemon.call("jobs.logs", id=calibration["id"])["lines"]]
    assert any("MiB" in line and "GiB free on cpu" in line for line in calibration_log)
    # Two small steps: speed is per token, so the calibration need not run the plan's batch.
    assert data["measured"]["steps"] == 2
    assert any(line.startswith("calibrating at batch") for line in calibration_log)
    assert daemon.call("models.list", kind=["adapter"])["models"] == []
    datasets = daemon.call("datasets.list", source_id=source["id"])["datasets"]
    assert [d["id"] for d in datasets] == [data["dataset_id"]]
    assert data["plan"]["params"]["dataset"] == datasets[0]["path"]
    assert Path(datasets[0]["path"], "card.json").exists()
    # A built dataset is a folder of one file per builder; its preview takes from each in turn.
    preview = daemon.call("datasets.preview", id=data["dataset_id"], limit=4)
    kinds = {next(iter(ex)) for ex in preview["examples"]}  # "text" (code), "messages" …
    assert len(preview["examples"]) == 4 and preview["total"] == data["card"]["examples"]
    assert len(kinds) >= 2, preview["examples"]
    # In a shell, what to do next is said in commands, not in the TUI's keys.
    shown = forge("missions", "show", mission["id"], home=daemon.home)
    assert f"forge missions approve {mission['id']}" in shown.stdout, shown.stdout
    assert "Press" not in shown.stdout

    # The same material is not proposed twice.
    assert daemon.call("sources.scan", id=source["id"])["mission"] is None

    daemon.call("missions.approve", id=mission["id"])
    train_id = wait_for(
        lambda: daemon.call("missions.get", id=mission["id"])["data"].get("train_job"), timeout=10
    )
    trained = daemon.wait_job(train_id, {"completed", "failed"}, 240)
    assert trained["status"] == "completed"
    # An ended job has no time left; the train job sized its batch from the calibration's
    # measure of a row, without measuring again, and left the held-out loss to the eval job.
    assert trained["progress"]["eta_s"] is None, trained["progress"]
    assert trained["params"]["row_bytes"] == data["measured"]["plain_bytes_per_row"]
    assert trained["params"]["evaluate"] is False
    assert trained["params"]["max_minutes"] == round(timing["train_budget_s"] / 60, 3)
    train_log = [x["line"] for x in daemon.call("jobs.logs", id=train_id)["lines"]]
    assert any("(the calibration's measure)" in line for line in train_log), train_log
    eval_id = wait_for(
        lambda: daemon.call("missions.get", id=mission["id"])["data"].get("eval_job"), timeout=30
    )
    assert daemon.wait_job(eval_id, {"completed", "failed"}, 240)["status"] == "completed"
    wait_for(lambda: daemon.call("missions.get", id=mission["id"])["stage"] == "done", timeout=30)
    # No Ollama answers here: the chain ends after eval, saying why it did not deploy (where
    # the gate let it: the tiny model may well lose more than 2 % on general text).
    data = daemon.call("missions.get", id=mission["id"])["data"]
    decision = data["deploy"]
    assert decision.startswith("not deployed: "), decision
    assert any(
        why in decision
        for why in ("Ollama is not reachable at 127.0.0.1:9", "does not beat", "the limit is")
    ), decision
    metrics = {m["name"] for m in daemon.call("jobs.metrics", id=eval_id)["metrics"]}
    assert {"base_eval_loss", "adapter_eval_loss", "adapter_eval_loss_general"} <= metrics
    # The general set is scored for every model; the first mission has no old material yet.
    sets = data["results"]["sets"]
    assert set(sets) == {"new_material", "general"}, sets
    assert set(sets["general"]["models"]) == {"base", "new"}
    # The CLI shows the mission as the TUI does, from the same typed record: readable, no JSON.
    shown = forge("missions", "show", mission["id"], home=daemon.home)
    assert shown.returncode == 0, shown.stderr
    for part in (
        "### Results (held-out)",
        "| new adapter | ",
        "- 3 commits, ",
        f"### Dataset `{data['dataset_id']}`",
        f"- eval job: `{eval_id}`",
        "- deploy: not deployed: ",
        "**Deployed only if** the new adapter lowers the held-out loss by more than 2 %",
        "| held-out set | base | current | new |",
    ):
        assert part in shown.stdout, (part, shown.stdout)
    assert '{"' not in shown.stdout and "dataset_id" not in shown.stdout
    head = git(repo, "rev-parse", "HEAD")
    src = next(s for s in daemon.call("sources.list")["sources"] if s["id"] == source["id"])
    assert src["trained_commit"] == head and src["last_commit"] == head

    # New material is counted from the trained commit: two more commits propose again.
    commit(repo, {"shapes.py": "def square(n: int) -> int:\n    return n * n\n"}, "Add squares")
    commit(
        repo,
        {
            "shapes.py": 'def square(n: int) -> int:\n    """n squared."""\n'
            "    return n * n\n\n\ndef cube(n: int) -> int:\n    return n ** 3\n"
        },
        "Add cubes next to squares",
    )
    again = daemon.call("sources.scan", id=source["id"])["mission"]
    assert again is not None and again["data"]["trigger"]["commits"] == 2
    # This machine has now trained once: the ETA comes from its measured throughput.
    assert again["data"]["eta_s"] > 0
    assert "on this machine" in again["data"]["rationale"]
    assert (
        again["data"]["previous_adapter"]
        == daemon.call("missions.get", id=mission["id"])["data"]["adapter"]
    )


def test_a_cancelled_mission_says_so_and_can_be_dismissed(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon, _, _, mission = widgets_proposal(make_daemon, agent_config(tiny_model), tmp_path)
    with pytest.raises(RemoteError) as refused:
        daemon.call("missions.dismiss", id=mission["id"])
    assert "only a failed mission can be dismissed" in refused.value.message
    approved = daemon.call("missions.approve", id=mission["id"])
    daemon.call("jobs.cancel", id=approved["data"]["train_job"])
    wait_for(lambda: daemon.call("missions.get", id=mission["id"])["stage"] == "failed", 60)
    listed = forge("missions", "ls", home=daemon.home).stdout
    assert "cancelled at train" in listed, listed
    shown = forge("missions", "show", mission["id"], home=daemon.home).stdout
    assert f"forge missions dismiss {mission['id']}" in shown, shown

    dismissed = forge("missions", "dismiss", mission["id"], home=daemon.home)
    assert dismissed.returncode == 0 and "dismissed" in dismissed.stdout, dismissed.stderr
    assert daemon.call("missions.list")["missions"] == []  # it leaves the list, and is kept
    (kept,) = daemon.call("missions.list", stage=["dismissed"])["missions"]
    assert kept["id"] == mission["id"] and kept["failed_step"] == "train"


def listed_source(daemon: Daemon, source_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        s for s in daemon.call("sources.list")["sources"] if s["id"] == source_id
    )
    return found


def test_a_force_push_that_drops_the_trained_commit_is_new_history_not_a_wedge(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    # Every job succeeds at once: the chain, not training, is the subject.
    config = agent_config(tiny_model) + fake_engine(tmp_path, 'emit(type="done", summary={})')
    daemon, repo, source, mission = widgets_proposal(make_daemon, config, tmp_path)
    daemon.call("missions.approve", id=mission["id"])
    wait_for(lambda: daemon.call("missions.get", id=mission["id"])["stage"] == "done", 60)
    trained = git(repo, "rev-parse", "HEAD")
    assert listed_source(daemon, source["id"])["trained_commit"] == trained

    # The history is rewritten and the old commits are gone for good.
    git(repo, "checkout", "-q", "--orphan", "rewritten")
    commit(repo, {"gadgets.py": "def gadget() -> str:\n    return 'g'\n"}, "Start over")
    commit(repo, {"gizmos.py": "def gizmo() -> str:\n    return 'z'\n"}, "Add gizmos")
    git(repo, "branch", "-D", "main")
    git(repo, "branch", "-m", "main")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    again = daemon.call("sources.scan", id=source["id"])
    assert again["mission"] is not None, again
    assert again["mission"]["data"]["trigger"]["commits"] == 2
    assert again["mission"]["data"]["trigger"]["since"] is None  # all of it is new
    pending = listed_source(daemon, source["id"])["pending"]
    assert f"history rewritten: the last trained commit {trained[:12]}" in pending["why"]


def test_a_deleted_repository_is_said_to_be_gone_and_watched_again_once_back(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon = make_daemon(config=agent_config(tiny_model)).start()
    repo = make_repo(tmp_path)
    source = daemon.call("sources.add", path=str(repo))
    kept = tmp_path / "kept"
    shutil.move(repo, kept)
    with pytest.raises(RemoteError) as refused:
        daemon.call("sources.scan", id=source["id"])
    assert f"the repository is gone: {repo} does not exist" in refused.value.message
    assert "internal error" not in refused.value.message
    assert "is gone" in listed_source(daemon, source["id"])["pending"]["why"]
    shutil.move(kept, repo)
    daemon.call("sources.scan", id=source["id"])  # answered, no longer refused
    assert "gone" not in listed_source(daemon, source["id"])["pending"]["why"]
    assert len(daemon.call("missions.list")["missions"]) == 1


def test_rejection_is_remembered_and_newer_material_supersedes(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon, repo, source, first = widgets_proposal(make_daemon, agent_config(tiny_model), tmp_path)
    daemon.call("missions.reject", id=first["id"], reason="not this week")
    assert daemon.call("sources.scan", id=source["id"])["mission"] is None
    assert daemon.call("missions.get", id=first["id"])["reason"] == "not this week"

    commit(repo, {"extra.py": "def extra() -> int:\n    return 42\n"}, "Add the extra helper")
    second = daemon.call("sources.scan", id=source["id"])["mission"]
    assert second is not None and second["data"]["trigger"]["commits"] == 4
    commit(repo, {"more.py": "def more() -> int:\n    return 43\n"}, "Add one more helper")
    third = daemon.call("sources.scan", id=source["id"])["mission"]
    assert daemon.call("missions.get", id=second["id"])["stage"] == "superseded"
    assert daemon.call("missions.list", stage=["proposed"])["missions"][0]["id"] == third["id"]


def test_sources_outside_allowed_roots_or_not_repos_are_refused(
    daemon: Daemon, tmp_path: Path
) -> None:
    with daemon.client() as c:
        for path, expected in [
            ("/etc", "outside the allowed roots"),
            (str(tmp_path), "not a git work tree"),
            (str(tmp_path / "missing"), "no such folder"),
            ("relative/path", "must be absolute"),
        ]:
            try:
                c.call("sources.add", path=path)
            except Exception as exc:
                assert expected in str(exc), (path, exc)
                assert getattr(exc, "code", None) == -32602
            else:
                raise AssertionError(f"{path} was accepted")


def test_a_commit_landing_proposes_a_mission_without_being_asked(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    config = agent_config(tiny_model).replace("rescan_interval_s = 3600", "debounce_s = 0.5")
    daemon = make_daemon(config=config).start()
    repo = tmp_path / "quiet"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"a.py": "def a() -> int:\n    return 1\n" * 3}, "Add the first helper")
    source = daemon.call("sources.add", path=str(repo))
    wait_for(lambda: daemon.call("sources.list")["sources"][0]["last_commit"], timeout=10)
    assert daemon.call("missions.list")["missions"] == []  # one commit: below the threshold
    start = daemon.call("system.status")["last_seq"]
    with daemon.client() as c:
        c.call("events.subscribe", since=start, types=["mission.proposed"])
        commit(repo, {"b.py": "def b() -> int:\n    return 2\n" * 3}, "Add the second helper")
        event = next(c.events())  # no scan asked for: the watcher saw the commit
    mission = daemon.call("missions.get", id=event["data"]["id"])
    assert mission["source_id"] == source["id"]
    assert mission["data"]["head"] == git(repo, "rev-parse", "HEAD")
    # A scan reads the repository; reading must not look like a change and scan again.
    scans = daemon.log.read_text().count("scanning quiet")
    time.sleep(3)  # several debounce periods
    assert daemon.log.read_text().count("scanning quiet") == scans


def test_quiet_hours_windows() -> None:
    from forged.mission_chain import quiet_until

    def at(h: int, m: int = 0) -> float:
        return dt.datetime(2026, 11, 22, h, m).timestamp()

    assert quiet_until("", at(10)) is None
    assert quiet_until("09:00-18:00", at(10)) == at(18)
    assert quiet_until("09:00-18:00", at(19)) is None
    assert quiet_until("22:00-07:00", at(23)) == dt.datetime(2026, 11, 23, 7).timestamp()
    assert quiet_until("22:00-07:00", at(6, 30)) == at(7)
    assert quiet_until("22:00-07:00", at(12)) is None


def test_an_approved_mission_waits_out_quiet_hours(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    now = dt.datetime.now()
    window = f"{(now - dt.timedelta(hours=1)):%H:%M}-{(now + dt.timedelta(hours=1)):%H:%M}"
    config = agent_config(tiny_model) + f'quiet_hours = "{window}"\n'
    daemon, _, _, mission = widgets_proposal(make_daemon, config, tmp_path)
    daemon.call("missions.approve", id=mission["id"])
    data = daemon.call("missions.get", id=mission["id"])["data"]
    job = daemon.call("jobs.get", id=data["train_job"])
    assert data["held_until"] == job["not_before"] > time.time() + 3000
    assert daemon.call("jobs.get", id=job["id"])["status"] == "queued"
    # Ordinary jobs are not held, and one run to its end is the runner's every chance to have
    # started the held job: it must not have.
    other = daemon.call("jobs.submit", kind="prepare-model", params={"path": str(tiny_model)})
    assert daemon.wait_job(other["id"], {"completed", "failed"})["status"] == "completed"
    assert daemon.call("jobs.get", id=job["id"])["status"] == "queued"


def test_per_source_builders_thresholds_and_pending(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon = make_daemon(config=agent_config(tiny_model)).start()
    repo = make_repo(tmp_path)
    with daemon.client() as c:
        try:
            c.call("sources.add", path=str(repo), builders=["poems"])
        except Exception as exc:
            assert "builders.0" in str(exc)
        else:
            raise AssertionError("an unknown builder was accepted")
    source = daemon.call(
        "sources.add", path=str(repo), builders=["commits"], thresholds={"min_commits": 5}
    )
    pending = wait_for(lambda: daemon.call("sources.list")["sources"][0]["pending"], timeout=10)
    assert pending["commits"] == 3 and pending["enough"] is False
    assert "fewer than 5" in pending["why"]
    commit(repo, {"d.py": "def d() -> int:\n    return 4\n"}, "Add the fourth helper d")
    commit(repo, {"e.py": "def e() -> int:\n    return 5\n"}, "Add the fifth helper e")
    mission = daemon.call("sources.scan", id=source["id"])["mission"]
    assert mission is not None
    assert mission["data"]["card"]["per_builder"] == {"commits": 5}


def stages_of(daemon: Daemon, mission_id: str, last: str) -> list[str]:
    """Every stage a mission went through up to `last`, from its `mission.stage` events (a
    subscription from the start replays them all)."""
    stages: list[str] = []
    with daemon.client(timeout=10) as c:
        c.call("events.subscribe", since=0, types=["mission.stage"])
        for event in c.events():
            if event["data"]["id"] == mission_id:
                stages.append(event["data"]["stage"])
                if stages[-1] == last:
                    return stages
    return stages


def test_a_failed_mission_says_where_and_retries_from_there(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon, _, _, mission = widgets_proposal(make_daemon, agent_config(tiny_model), tmp_path)
    assert mission["stage"] == "proposed" and mission["failed_step"] is None

    # A bad change to the plan is refused naming it, and changes nothing.
    for bad, where in (({"rank": 0}, "set.rank"), ({"epoch": 2}, "set.epoch")):
        with pytest.raises(RemoteError) as refused:
            daemon.call("missions.approve", id=mission["id"], set=bad)
        assert refused.value.code == -32602 and where in refused.value.message
    # A plan this machine cannot run meets the same checks a submitted job does, at approval.
    with pytest.raises(RemoteError) as refused:
        daemon.call("missions.approve", id=mission["id"], set={"backend": "unsloth"})
    said = refused.value.message
    assert refused.value.code == -32602 and "its train job cannot run" in said, said
    assert "CUDA" in said and refused.value.data["param"] == "params.backend", said
    assert daemon.call("missions.get", id=mission["id"])["stage"] == "proposed"
    assert daemon.call("jobs.list", kind=["train"])["total"] == 0

    # Approved with changes: a long run on a time budget, checkpointing every step.
    changes = {
        "steps": 100_000,
        "minutes": 0.25,
        "rank": 4,
        "checkpoint_every": 1,
        "lr_schedule": "constant",  # a cosine over 100,000 steps would barely move in 15 s
        "warmup_steps": 0,
        "min_steps": 2,  # a person's own value stands: the budget's timing does not replace it
    }
    approved = daemon.call("missions.approve", id=mission["id"], set=changes)
    params = approved["data"]["plan"]["params"]
    assert (params["max_steps"], params["max_minutes"], params["rank"]) == (100_000, 0.25, 4)
    assert approved["stage"] == "training"
    train_id = approved["data"]["train_job"]
    train_params = daemon.call("jobs.get", id=train_id)["params"]
    assert (train_params["max_steps"], train_params["min_steps"]) == (100_000, 2)

    # Cancelled mid-run: the mission fails at its train step, saying why.
    wait_for(lambda: daemon.call("jobs.get", id=train_id)["checkpoint"], timeout=120)
    daemon.call("jobs.cancel", id=train_id)
    failed = wait_for(
        lambda: (m := daemon.call("missions.get", id=mission["id"]))["stage"] == "failed" and m,
        timeout=60,
    )
    assert failed["failed_step"] == "train" and "cancelled" in failed["failure"]
    with pytest.raises(RemoteError) as refused:
        daemon.call("missions.approve", id=mission["id"])
    assert "failed" in refused.value.message

    # Retried: the same train job continues from its checkpoint until its time budget ends,
    # then eval runs and the mission is done, with the losses a person decides on.
    retried = daemon.call("missions.retry", id=mission["id"][:10])
    assert retried["stage"] == "training" and retried["failure"] is None
    train = daemon.wait_job(train_id, {"completed", "failed", "cancelled"}, 240)
    assert train["status"] == "completed", train["error"]
    # Stopped by its budget with steps to go, it keeps its last step but has no time left.
    assert train["progress"]["step"] < 100_000 and train["progress"]["eta_s"] is None
    log = "\n".join(line["line"] for line in daemon.call("jobs.logs", id=train_id)["lines"])
    # The plan's 0.25 min are the whole mission's: its train job got its share of them.
    share = daemon.call("jobs.get", id=train_id)["params"]["max_minutes"]
    assert 0 < share < 0.25
    assert "resuming from checkpoint" in log and f"time budget of {share:g} min: stopping" in log
    done = wait_for(
        lambda: (m := daemon.call("missions.get", id=mission["id"]))["stage"] == "done" and m,
        timeout=240,
    )
    results = done["data"]["results"]
    assert set(results["models"]) == {"base", "new adapter"}
    assert results["models"]["base"]["change_pct"] is None
    assert results["models"]["new adapter"]["change_pct"] < 0  # it learned the repository
    # The summary states the change, as a gain or, within agent.min_gain_pct, as no measurable
    # change (this run's gain varies around the 2 % line with the machine's timing).
    change = results["models"]["new adapter"]["change_pct"]
    assert f"{change:+.1f} %" in results["summary"] and "against the base" in results["summary"]
    assert stages_of(daemon, mission["id"], "done") == [
        "approved",
        "training",
        "failed",
        "training",
        "evaluating",
        "deploying",
        "done",
    ]
    with pytest.raises(RemoteError) as refused:
        daemon.call("missions.retry", id=mission["id"])
    assert "only a failed mission can be retried" in refused.value.message


def test_the_verdict_compares_the_new_adapter_with_the_base_and_the_current_one() -> None:
    from agent.policy import compare_scores

    scores = {
        "base": {"eval_loss": 2.5, "perplexity": 12.18},
        "previous": {"eval_loss": 2.25, "perplexity": 9.49},
        "adapter": {"eval_loss": 2.0, "perplexity": 7.39},
    }
    verdict = compare_scores(scores)
    assert {k: v["change_pct"] for k, v in verdict["models"].items()} == {
        "base": None,
        "deployed": -10.0,
        "new adapter": -20.0,
    }
    assert verdict["models"]["new adapter"]["perplexity"] == 7.39
    assert verdict["summary"] == (
        "new adapter: -20.0 % loss against the base, -11.1 % loss against the current adapter"
    )
    # A change within the gate's minimum gain is noise, and says so.
    scores["adapter"] = {"eval_loss": 2.23, "perplexity": 9.3}
    assert compare_scores(scores, min_gain_pct=2.0)["summary"] == (
        "new adapter: -10.8 % loss against the base,"
        " no measurable change against the current adapter (-0.9 %)"
    )
    # So is one past it whose paired-bootstrap interval over the held-out rows holds zero.
    scores["adapter"] = {
        "eval_loss": 2.15,
        "change_low_pct_vs_previous": -8.0,
        "change_high_pct_vs_previous": 1.5,
        "change_low_pct_vs_base": -18.0,
        "change_high_pct_vs_base": -9.0,
    }
    assert compare_scores(scores)["summary"] == (
        "new adapter: -14.0 % loss against the base, 95 % interval -18.0 to -9.0 %,"
        " no measurable change against the current adapter (-4.4 %, 95 % interval -8.0 to +1.5 %)"
    )


def test_the_table_scores_every_held_out_set_and_the_gate_refuses_forgetting() -> None:
    from agent.policy import compare_scores, regression

    scores = {
        "base": {"eval_loss": 2.5, "eval_loss_old_material": 2.0, "eval_loss_general": 1.0},
        "previous": {"eval_loss": 2.2, "eval_loss_old_material": 1.8, "eval_loss_general": 1.01},
        "adapter": {"eval_loss": 2.0, "eval_loss_old_material": 1.8, "eval_loss_general": 1.01},
    }
    sets = compare_scores(scores)["sets"]
    assert list(sets) == ["new_material", "old_material", "general"]
    assert sets["general"]["models"] == {
        "base": {"loss": 1.0, "change_pct": None},
        "current": {"loss": 1.01, "change_pct": 1.0},
        "new": {"loss": 1.01, "change_pct": 1.0},
    }
    assert regression(scores, 2.0) is None  # 1 % worse on general text: within the limit
    scores["adapter"]["eval_loss_general"] = 1.031
    said = regression(scores, 2.0)
    assert said == "general +3.1 % against the base, the limit is 2 % (agent.max_regression_pct)"
    # Old material is held to the current adapter too, not only to the base.
    scores["adapter"] |= {"eval_loss_general": 1.0, "eval_loss_old_material": 1.9}
    assert "old material +5.6 % against the current adapter" in str(regression(scores, 2.0))


def test_a_plan_continues_the_sources_adapter_only_where_it_fits(tmp_path: Path) -> None:
    from forge_api.mission_data import MissionData, Plan
    from forged.mission_plan import with_continuation

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    base = str(tmp_path / "base")
    (adapter / "adapter_config.json").write_text(
        json.dumps({"r": 16, "target_modules": ["q_proj", "v_proj"]})
    )
    (adapter / "forge_train.json").write_text(
        json.dumps({"base_model": base, "method": "lora", "target_modules_asked": "auto"})
    )
    params = {"base_model": base, "dataset": "/d"}
    data = MissionData(base_model=base, plan=Plan(params=params))
    fits = with_continuation(data, str(adapter), " (mission msn-1: 3 commits up to abc1234)")
    assert fits.plan is not None and fits.plan.params["init_adapter"] == str(adapter)
    assert fits.continues == (
        f"continues the source's adapter {adapter} (mission msn-1: 3 commits up to abc1234)"
    )
    for change, why in (
        ({"rank": 4}, "it has rank 16, this job asks for rank 4"),
        ({"method": "dora"}, "it was trained by lora, this job trains by dora"),
        ({"target_modules": ["q_proj"]}, "it was trained on target_modules auto"),
    ):
        other = data.model_copy(update={"plan": Plan(params=params | change)})
        fresh = with_continuation(other, str(adapter))
        assert fresh.plan is not None and "init_adapter" not in fresh.plan.params
        assert fresh.fresh_start and why in fresh.fresh_start, fresh.fresh_start
    other = data.model_copy(update={"base_model": str(tmp_path / "other")})
    assert "it was trained on" in str(with_continuation(other, str(adapter)).fresh_start)


def test_a_calibration_cut_by_a_daemon_kill_is_taken_up_again_not_repeated(
    make_process_daemon: ProcessDaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon = make_process_daemon(config=agent_config(tiny_model, calibrate=True)).start()
    repo = make_repo(tmp_path)
    daemon.call("sources.add", path=str(repo))
    calibration = wait_for(
        lambda: daemon.call("jobs.list", text="calibrate", status=["running"])["jobs"], 60
    )[0]
    daemon.kill()
    daemon.start()
    # Replayed from the start: the one proposal, shown before the kill, timed after it.
    mission = measured(daemon, next_proposal(daemon, 0))
    (again,) = daemon.call("jobs.list", text="calibrate")["jobs"]
    assert again["id"] == calibration["id"] and again["status"] == "completed"
    assert again["attempt"] >= 2  # the same job, run again after the restart
    assert mission["data"]["eta_s"] > 0 and mission["data"]["measured"]["tokens_per_s"] > 0


def test_with_the_default_base_model_absent_missions_train_the_one_there_is(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    """A person who imported one model and set nothing trains that one (the default, the tiny
    model, is not built here)."""
    config = (
        '[ollama]\nhost = "127.0.0.1:9"\n\n[agent]\nallowed_roots = ["/tmp"]\nmin_commits = 2\n'
        "min_tokens = 20\nrescan_interval_s = 3600\ncalibrate = false\n"
    )
    daemon = make_daemon(config=config).start()
    mine = tmp_path / "my-llama"  # not named like the default
    shutil.copytree(tiny_model, mine)
    imported = daemon.call("jobs.submit", kind="prepare-model", params={"path": str(mine)})
    assert daemon.wait_job(imported["id"], {"completed", "failed"})["status"] == "completed"
    start = daemon.call("system.status")["last_seq"]
    daemon.call("sources.add", path=str(make_repo(tmp_path)))
    mission = next_proposal(daemon, start)
    assert mission["data"]["base_model"] == str(mine.resolve())
    assert mission["data"]["plan"]["params"]["base_model"] == str(mine.resolve())
    assert mission["title"].startswith("Fine-tune my-llama on 3 new commits")
    assert "missions train the one base model there is" in daemon.log.read_text()


def test_a_mission_whose_adapter_forgets_general_text_is_not_deployed_and_says_why(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    # No Ollama listens here: the gate decides before a deploy would need one.
    daemon, _, _, mission = widgets_proposal(make_daemon, agent_config(tiny_model), tmp_path)
    # Made to forget: a very high learning rate, no self-replay.
    forget = {"learning_rate": 0.05, "general_replay": 0, "steps": 30, "lr_schedule": "constant"}
    daemon.call("missions.approve", id=mission["id"], set=forget)
    done = wait_for(
        lambda: (
            (m := daemon.call("missions.get", id=mission["id"]))["stage"] in ("done", "failed")
            and m
        ),
        timeout=300,
    )
    assert done["stage"] == "done", done.get("failure")
    decision = done["data"]["deploy"]
    assert re.match(
        r"not deployed: general \+\d+\.\d % against the base, the limit is 2 %", decision
    ), decision
    general = done["data"]["results"]["sets"]["general"]["models"]["new"]
    assert general["change_pct"] > 2.0, general
