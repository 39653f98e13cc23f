"""The TUI driven by Textual's pilot against a real daemon: what a person does in a day.

Approve a mission and watch its job start; submit through the wizard (a bad value shows its
error and submits nothing); follow a running job's log and cancel it; keep working across a
daemon restart, started again from the TUI's own key.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Input, Label, Markdown, Select
from textual.widgets.data_table import ColumnKey

from engine.gguf_import import gguf_metadata
from engine.synthetic import write_dataset
from forge_api.config import load_config
from forge_client.client import Client
from forge_client.format import duration
from forge_client.launch import daemon_answers
from tests.support.daemon_harness import Daemon, DaemonFactory, ProcessDaemon, wait_for
from tests.support.fake_engine import fake_engine
from tests.support.missions import agent_config, measured, widgets_proposal
from tests.support.ollama_server import FakeOllama
from tests.support.repos import commit
from tests.tui.pilot import activity_line, notices, press_closing, run_app, until
from tui.app import ForgeApp
from tui.screens.job_detail import JobDetailScreen
from tui.screens.missions import MissionsScreen
from tui.screens.models import DeployDialog, ExportDialog
from tui.screens.new_job import NewJobScreen
from tui.screens.playground import PlaygroundScreen
from tui.widgets.connection_bar import ConnectionBar
from tui.widgets.dialogs import AskText, Confirm
from tui.widgets.help_page import HelpPage
from tui.widgets.log_view import LogView


def table_keys(app: ForgeApp, selector: str) -> list[str]:
    table = app.screen.query_one(selector, DataTable)
    return [str(row.key.value) for row in table.ordered_rows]


def bar_text(app: ForgeApp) -> str:
    return str(app.screen.query_one(ConnectionBar).render())


def test_approving_a_mission_starts_its_job_and_shows_it(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    # The mission's train job streams as the engine's would (TRAINING_FOR_EVER): the TUI's
    # approve, its job screen and log are the subject here, the training is test_missions'.
    config = agent_config(tiny_model) + fake_engine(tmp_path, TRAINING_FOR_EVER)
    daemon, repo, source, mission = widgets_proposal(make_daemon, config, tmp_path)

    async def scenario(app: ForgeApp, pilot: Pilot[None]) -> None:
        await until(pilot, "the daemon online", lambda: app.online)
        await pilot.press("3")
        await until(pilot, "the mission", lambda: mission["id"] in table_keys(app, "#missions"))
        await until(
            pilot,
            "the mission's rationale",
            lambda: "widgets has 3 new commits" in app.screen.query_one("#mission-md").source,  # type: ignore[attr-defined]
        )
        # `?`: this screen's own help: what it is for and its keys, then the app's.
        await pilot.press("?")
        page = await until(
            pilot, "the help page", lambda: isinstance(app.screen, HelpPage) and app.screen
        )
        text = page.query_one("#help-text", Markdown).source
        assert text.startswith("# Missions") and "approves the highlighted mission" in text
        assert "| `a` | Approve |" in text and "| `q` | Quit |" in text
        press_closing(app, "escape")
        await until(pilot, "the missions screen", lambda: isinstance(app.screen, MissionsScreen))
        # The screen's actions are in the command palette too, by name.
        await pilot.press("ctrl+p")
        await until(pilot, "the palette", lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Reject")
        await pilot.pause(0.5)
        press_closing(app, "enter")
        await until(pilot, "the reject dialog", lambda: isinstance(app.screen, AskText))
        press_closing(app, "escape")
        await until(pilot, "the missions screen", lambda: isinstance(app.screen, MissionsScreen))
        assert daemon.call("missions.get", id=mission["id"])["stage"] == "proposed"
        # Approve with changes to the plan (a bad change is refused over RPC: test_missions).
        await pilot.press("e")
        await until(pilot, "the changes dialog", lambda: isinstance(app.screen, AskText))
        await pilot.press(*"steps=7 rank=4")
        press_closing(app, "enter")
        screen = await until(
            pilot,
            "the train job's screen",
            lambda: app.screen if isinstance(app.screen, JobDetailScreen) else None,
        )
        job = daemon.call("missions.get", id=mission["id"])["data"]["train_job"]
        assert screen.job_id == job
        params = daemon.call("jobs.get", id=job)["params"]
        assert (params["max_steps"], params["rank"]) == (7, 4)
        await until(
            pilot,
            "the job running or done",
            lambda: screen.job.get("status") in ("running", "completed"),
        )
        log = screen.query_one("#job-log", LogView)
        await until(pilot, "the job's log lines", lambda: log.line_count > 2)

        # Number keys leave the job's screen too; an approved mission is not offered approval.
        await pilot.press("3")
        await until(pilot, "the missions screen", lambda: isinstance(app.screen, MissionsScreen))
        await until(
            pilot,
            "the mission approved in the list",
            lambda: app.screen.missions[mission["id"]].stage != "proposed",  # type: ignore[attr-defined]
        )
        await pilot.press("a")
        await until(
            pilot,
            "why it cannot be approved",
            lambda: any("only a proposed mission can be approved" in n for n in notices(app)),
        )
        assert isinstance(app.screen, MissionsScreen)  # no dialog asked first

        # Cancelled, it says so, and `x` puts it away.
        daemon.call("jobs.cancel", id=job)
        await until(
            pilot,
            "the mission cancelled in the list",
            lambda: app.screen.missions[mission["id"]].stage == "failed",  # type: ignore[attr-defined]
        )
        table = app.screen.query_one("#missions", DataTable)
        assert str(table.get_cell(mission["id"], "stage")) == "cancelled at train"
        await pilot.press("x")
        await until(pilot, "the mission gone", lambda: table_keys(app, "#missions") == [])
        assert daemon.call("missions.get", id=mission["id"])["stage"] == "dismissed"

        # A new proposal takes the cursor: `a` acts on what was just proposed.
        commit(repo, {"shapes.py": "def square(n: int) -> int:\n    return n * n\n"}, "Add squares")
        commit(repo, {"cubes.py": "def cube(n: int) -> int:\n    return n ** 3\n"}, "Add cubes")
        newer = daemon.call("sources.scan", id=source["id"])["mission"]
        await until(pilot, "the new mission", lambda: newer["id"] in table_keys(app, "#missions"))
        await until(
            pilot,
            "the cursor on it",
            lambda: app.screen.cursor_key("missions") == newer["id"],  # type: ignore[attr-defined]
        )

    run_app(daemon.paths, scenario)


def test_a_mission_shows_measuring_then_its_eta_in_full_at_80_columns(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    config = agent_config(tiny_model, calibrate=True)
    daemon, _, _, mission = widgets_proposal(make_daemon, config, tmp_path)

    def eta_cell(app: ForgeApp) -> str:
        table = app.screen.query_one("#missions", DataTable)
        return str(table.get_cell(mission["id"], "eta")) if mission["id"] in table.rows else ""

    async def scenario(app: ForgeApp, pilot: Pilot[None]) -> None:
        await until(pilot, "the daemon online", lambda: app.online)
        await pilot.press("3")
        await until(pilot, "the mission", lambda: mission["id"] in table_keys(app, "#missions"))
        # Listed at once: `measuring…` until the calibration ends, then its ETA.
        shown_first = eta_cell(app)
        if daemon.call("missions.get", id=mission["id"])["data"].get("measuring"):
            assert shown_first == "measuring…"  # (the calibration may already have ended)
        timed = measured(daemon, mission)
        eta = duration(timed["data"]["eta_s"])
        await until(pilot, "the ETA in the list", lambda: eta_cell(app) == eta, timeout=120)
        # At 80 columns the ETA column ends inside the table's visible width (the title, last,
        # is what is cut), wide enough for the whole ETA.
        table = app.screen.query_one("#missions", DataTable)
        widths = [(c.key, c.get_render_width(table)) for c in table.ordered_columns]
        keys = [key for key, _ in widths]
        ends = sum(w for _, w in widths[: keys.index(ColumnKey("eta")) + 1])
        assert ends <= table.scrollable_content_region.width, (widths, table.size)
        assert table.columns[ColumnKey("eta")].get_render_width(table) >= len(eta)

    run_app(daemon.paths, scenario)


def test_reloads_cutting_short_the_mission_detail_never_stop_the_app(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    """Each load of the missions screen cancels the one before it (an exclusive worker). When
    that cut a Markdown update short while it mounted its blocks, the CancelledError reached
    the app's message loop, which stopped: the TUI showed no event and took no key again."""
    daemon, _, _, mission = widgets_proposal(make_daemon, agent_config(tiny_model), tmp_path)

    async def scenario(app: ForgeApp, pilot: Pilot[None]) -> None:
        await until(pilot, "the daemon online", lambda: app.online)
        await pilot.press("3")
        await until(pilot, "the mission", lambda: mission["id"] in table_keys(app, "#missions"))
        screen = app.screen
        assert isinstance(screen, MissionsScreen)
        for i in range(40):
            screen.shown_text = ""  # so that every load renders the Markdown again
            screen.reload()
            await asyncio.sleep(0.002 * (i % 7))
        await pilot.press("1")
        await until(
            pilot, "the dashboard after the reloads", lambda: app.current_mode == "dashboard"
        )
        await pilot.press("3")
        await until(
            pilot,
            "the mission's rationale again",
            lambda: "widgets has 3 new commits" in app.screen.query_one("#mission-md").source,  # type: ignore[attr-defined]
        )

    run_app(daemon.paths, scenario)


def test_the_wizard_shows_a_bad_value_submits_nothing_then_submits_a_good_one(
    daemon: Daemon, tiny_model: Path, tmp_path: Path
) -> None:
    data = daemon.imported(write_dataset(tmp_path / "chat.jsonl", 40))

    async def scenario(app: ForgeApp, pilot: Pilot[None]) -> None:
        await until(pilot, "the daemon online", lambda: app.online)
        await pilot.press("n")
        wizard = await until(
            pilot,
            "the wizard",
            lambda: app.screen if isinstance(app.screen, NewJobScreen) else None,
        )
        # The wizard opens in its first field: typed keys fill it, none reaches the app's keys.
        await until(pilot, "the name field focused", lambda: app.focused is not None)
        assert app.focused is wizard.query_one("#f-name", Input)
        await pilot.press(*"2?n")
        assert app.screen is wizard and wizard.query_one("#f-name", Input).value == "2?n"
        wizard.query_one("#f-base_model", Input).value = str(tiny_model)
        wizard.query_one("#f-dataset", Input).value = "ds-nope"  # no such dataset: said at once
        await until(
            pilot,
            "the unknown dataset refused",
            lambda: "no dataset ds-nope" in str(wizard.query_one("#h-dataset").render()),
        )
        wizard.query_one("#f-dataset", Input).value = data
        rank = wizard.query_one("#f-rank", Input)
        rank.focus()
        await pilot.press("0")
        help_text = wizard.query_one("#h-rank")
        await until(pilot, "rank's error", lambda: "✖" in str(help_text.render()))
        assert "greater than or equal to 1" in str(help_text.render())
        await pilot.press("ctrl+s")
        await until(
            pilot, "a refusal", lambda: any("not submitted: rank" in n for n in notices(app))
        )
        assert daemon.call("jobs.list")["total"] == 0
        assert isinstance(app.screen, NewJobScreen)

        await pilot.press("backspace", "4")
        wizard.query_one("#f-max_steps", Input).value = "3"
        await until(pilot, "rank accepted", lambda: "✖" not in str(help_text.render()))
        await pilot.press("ctrl+s")
        screen = await until(
            pilot,
            "the new job's screen",
            lambda: app.screen if isinstance(app.screen, JobDetailScreen) else None,
        )
        jobs = daemon.call("jobs.list")["jobs"]
        assert [j["id"] for j in jobs] == [screen.job_id]
        assert jobs[0]["params"]["rank"] == 4 and jobs[0]["params"]["max_steps"] == 3

    run_app(daemon.paths, scenario)


TRAINING_FOR_EVER = """
import itertools, time
for step in itertools.count(1):
    emit(type="progress", step=step, stage="train")
    emit(type="log", message=f"step {step}: loss {4 / step:.4f}")
    emit(type="metric", step=step, values={"loss": 4 / step})
    time.sleep(0.2)
"""
"""A train job's stream (steps logged, a loss per step) until it is cancelled: the TUI's
subject, without loading a model (the real engine's stream is test_jobs' and test_train's)."""


def test_following_a_running_jobs_log_then_cancelling_it(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon = make_daemon(config=fake_engine(tmp_path, TRAINING_FOR_EVER)).start()
    data = daemon.imported(write_dataset(tmp_path / "chat.jsonl", 200))
    job = daemon.call(
        "jobs.submit",
        kind="train",
        params={"base_model": str(tiny_model), "dataset": data, "epochs": 1000},
    )

    async def scenario(app: ForgeApp, pilot: Pilot[None]) -> None:
        await until(pilot, "the daemon online", lambda: app.online)
        await pilot.press("2")
        await until(pilot, "the job in the list", lambda: job["id"] in table_keys(app, "#jobs"))
        await pilot.press("enter")
        screen = await until(
            pilot,
            "the job's screen",
            lambda: app.screen if isinstance(app.screen, JobDetailScreen) else None,
        )
        log = screen.query_one("#job-log", LogView)
        await until(pilot, "the job running", lambda: screen.job.get("status") == "running")
        seen = log.line_count
        await until(
            pilot,
            "a step logged after opening",
            lambda: log.line_count > seen and any("step " in line for line in log.lines),
            timeout=120,
        )
        metrics = screen.query_one("#job-metrics", DataTable)

        def shows_the_stored_loss() -> bool:
            if "loss" not in metrics.rows:
                return False
            step = int(metrics.get_cell("loss", "step"))
            stored = daemon.call("jobs.metrics", id=job["id"], names=["loss"])["metrics"]
            value = {m["step"]: m["value"] for m in stored}.get(step)
            shown = metrics.get_cell("loss", "latest")
            return step > 1 and value is not None and shown == f"{value:.4g}"

        await until(pilot, "a pushed loss in the metrics table", shows_the_stored_loss)
        # Cancelling asks first; `n` leaves the job running.
        await pilot.press("c")
        await until(pilot, "the question", lambda: isinstance(app.screen, Confirm))
        press_closing(app, "n")
        await until(pilot, "the job's screen again", lambda: app.screen is screen)
        assert daemon.call("jobs.get", id=job["id"])["status"] == "running"
        await pilot.press("c")
        await until(pilot, "the question", lambda: isinstance(app.screen, Confirm))
        press_closing(app, "y")
        await until(pilot, "the job cancelled", lambda: screen.job.get("status") == "cancelled")
        assert "cancelled" in str(screen.query_one("#job-head").render())
        await pilot.press("escape")
        await until(
            pilot,
            "cancelled in the list",
            lambda: "cancelled" in str(app.screen.query_one("#jobs", DataTable).get_row(job["id"])),
        )
        # The dashboard was hidden all along; its recent activity has what happened meanwhile.
        what = "the cancel in the dashboard's activity"
        lines = await activity_line(app, pilot, what, f"{job['id']} cancelled")
        assert any(f"{job['id']} running" in line for line in lines)

    run_app(daemon.paths, scenario)
    assert daemon.call("jobs.get", id=job["id"])["status"] == "cancelled"


def test_a_daemon_restart_while_open_loses_no_event(
    process_daemon: ProcessDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline is shown; S starts the daemon; events stored meanwhile arrive, once, in order."""
    daemon = process_daemon  # stopped, run elsewhere and started by the TUI: processes
    monkeypatch.setenv("FORGE_HOME", str(daemon.home))
    elsewhere = daemon.home / "elsewhere.sock"

    async def scenario(app: ForgeApp, pilot: Pilot[None]) -> None:
        await until(pilot, "the daemon online", lambda: app.online)
        daemon.stop()
        await until(pilot, "daemon offline", lambda: "daemon offline" in bar_text(app))
        assert "S" in {b.binding.key for b in app.active_bindings.values()}

        # The daemon runs a while on another socket, out of the TUI's reach, and stores a job.
        away = daemon.spawn({"FORGE_SOCKET": str(elsewhere)})
        wait_for(lambda: elsewhere.exists())
        with Client(elsewhere) as c:
            queued = c.call("jobs.submit", kind="prepare-model", params={"name": "while-away"})
            c.call("jobs.cancel", id=queued["id"])
        away.terminate()
        assert away.wait(60) == 0

        await pilot.press("S")
        await until(pilot, "the daemon online again", lambda: app.online, timeout=60)
        activity = app.screen.query_one("#activity")
        await until(
            pilot,
            "the job stored while away, in the activity",
            lambda: any(f"{queued['id']} queued" in line for line in activity.lines),  # type: ignore[attr-defined]
        )
        lines = [line for line in activity.lines if queued["id"] in line]  # type: ignore[attr-defined]
        assert [line.split()[2].rstrip(":") for line in lines] == ["queued", "cancelled"], lines

    try:
        run_app(daemon.paths, scenario)
    finally:
        from forge_cli.main import main as forge

        forge(["daemon", "stop"])
    wait_for(lambda: not daemon_answers(daemon.paths), 30)


def test_the_playground_streams_from_a_trained_adapter_and_an_ollama_tag(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    ollama = FakeOllama().start()
    config = f'[ollama]\nhost = "{ollama.host}"\nbases = {{"{tiny_model}" = "llama3.2:1b"}}\n'
    daemon = make_daemon(config=config).start()
    data = daemon.imported(write_dataset(tmp_path / "chat.jsonl", 40, seed=5))
    params = {"base_model": str(tiny_model), "dataset": data, "max_steps": 2, "rank": 4}
    trained = daemon.call("jobs.submit", kind="train", params=params | {"max_seq_len": 256})
    assert daemon.wait_job(trained["id"], {"completed", "failed"}, 120)["status"] == "completed"
    adapter = daemon.call("models.list", kind=["adapter"])["models"][0]
    deploy = daemon.call("models.deploy", id=adapter["id"], tag="forge-widgets:1")
    assert deploy["params"]["mode"] == "adapter"  # the base is in Ollama: only the adapter goes
    assert daemon.wait_job(deploy["id"], {"completed", "failed"}, 60)["status"] == "completed"

    async def ask(app: ForgeApp, pilot: Pilot[None], label: str, question: str) -> str:
        screen = app.screen
        select = screen.query_one("#play-model", Select)
        key = next(k for k, t in screen.targets.items() if t["label"] == label)  # type: ignore[attr-defined]
        select.value = key
        prompt = screen.query_one("#play-prompt", Input)
        prompt.focus()
        prompt.value = question
        await pilot.press("enter")
        state = screen.query_one("#play-state")
        await until(pilot, f"{label} answered", lambda: "completed" in str(state.render()))
        job_id = str(state.render()).split(":")[0]
        tokens = [e for e in daemon_events(daemon, job_id) if e["type"] == "job.token"]
        assert len(tokens) > 1  # streamed in pieces, not at once
        answer = str(screen.query_one("#play-answer").render())
        assert answer.strip() == "".join(t["data"]["text"] for t in tokens).strip()
        job = daemon.call("jobs.get", id=job_id)
        assert job["params"]["prompt"] == question
        return answer

    async def scenario(app: ForgeApp, pilot: Pilot[None]) -> None:
        await until(pilot, "the daemon online", lambda: app.online)
        await pilot.press("7")
        await until(
            pilot,
            "the Ollama tag among the playground's models",
            lambda: any(
                t["label"] == "ollama forge-widgets:1"
                for t in getattr(app.screen, "targets", {}).values()
            ),
        )
        # The prompt has the focus: a typed `2` is text, not the Jobs screen; Escape leaves it.
        prompt = app.screen.query_one("#play-prompt", Input)
        await until(pilot, "the prompt focused", lambda: app.focused is prompt)
        await pilot.press("2")
        assert isinstance(app.screen, PlaygroundScreen) and prompt.value == "2"
        await pilot.press("escape")
        assert app.focused is None
        await ask(app, pilot, f"adapter {adapter['name']} on {tiny_model.name}", "Widget sizes?")
        said = await ask(app, pilot, "ollama forge-widgets:1", "How big is a widget?")
        assert said.strip() == "forge-widgets:1 heard: How big is a widget?"

        # Deploying from the Models screen: a tag and the way it goes to Ollama.
        await pilot.press("escape")  # leave the prompt, so `6` switches screens
        await pilot.press("6")
        table = await until(
            pilot,
            "the adapter in the models",
            lambda: (
                (t := app.screen.query_one("#models", DataTable)).row_count
                and adapter["id"] in t.rows
                and t
            ),
        )
        table.move_cursor(row=table.get_row_index(adapter["id"]))
        await pilot.press("d")
        dialog = await until(
            pilot, "the deploy dialog", lambda: isinstance(app.screen, DeployDialog) and app.screen
        )
        dialog.query_one("#tag", Input).value = "forge-widgets:9"
        dialog.query_one("#mode", Select).value = "merged"
        dialog.query_one("#deploy").press()
        merged = await until(
            pilot,
            "the merged deploy queued",
            lambda: next(
                (
                    j
                    for j in daemon.call("jobs.list", kind=["deploy"])["jobs"]
                    if j["params"]["tag"] == "forge-widgets:9"
                ),
                None,
            ),
        )
        assert merged["params"]["mode"] == "merged"

        # Exporting it as a GGUF LoRA adapter: a bad path is said in the dialog, then it runs.
        # The merged deploy's events reload the table meanwhile: the adapter stays highlighted.
        await until(
            pilot, "the models screen back", lambda: not isinstance(app.screen, DeployDialog)
        )
        await asyncio.to_thread(daemon.wait_job, merged["id"], {"completed", "failed"}, 120)
        await pilot.pause(0.5)
        assert app.screen.current().id == adapter["id"]  # type: ignore[attr-defined]
        await pilot.press("e")
        dialog = await until(
            pilot, "the export dialog", lambda: isinstance(app.screen, ExportDialog) and app.screen
        )
        assert not dialog.query_one("#merged", Checkbox).value  # an adapter leaves as one
        dialog.query_one("#output", Input).value = "relative.gguf"
        dialog.query_one("#export").press()
        said = dialog.query_one("#export-error", Label)
        await until(pilot, "the path refused", lambda: "output" in str(said.render()))
        dialog.query_one("#output", Input).value = str(exported)
        dialog.query_one("#outtype", Select).value = "q8_0"
        dialog.query_one("#export").press()
        job = await until(
            pilot,
            "the export queued",
            lambda: next(iter(daemon.call("jobs.list", kind=["export"])["jobs"]), None),
        )
        assert job["params"] | {"merged": False, "outtype": "q8_0"} == job["params"]
        assert job["params"]["adapter"] == adapter["path"]

    exported = tmp_path / "widgets-lora.gguf"
    try:
        run_app(daemon.paths, scenario)
        done = daemon.wait_job(
            daemon.call("jobs.list", kind=["export"])["jobs"][0]["id"], {"completed", "failed"}, 120
        )
        assert done["status"] == "completed", done
        assert gguf_metadata(exported)["general.type"] == "adapter"
    finally:
        ollama.stop()


def daemon_events(daemon: Daemon, job_id: str) -> list[dict[str, Any]]:
    with daemon.client() as c:
        last = c.call("system.status")["last_seq"]
        c.call("events.subscribe", since=0, job_id=job_id)
        events = []
        for event in c.events():
            events.append(event)
            if event["seq"] >= last or event["data"].get("status") == "completed":
                break
    return events


def test_settings_apply_save_and_keys_remap(make_daemon: DaemonFactory) -> None:
    config = (
        '[agent]\nallowed_roots = ["/tmp"]  # kept as written\n\n'
        '[tui]\nkeys = {"nav.jobs" = "J", "no.such" = "x"}\n'
    )
    daemon = make_daemon(config=config).start()

    async def scenario(app: ForgeApp, pilot: Pilot[None]) -> None:
        await until(pilot, "the daemon online", lambda: app.online)
        assert any("tui.keys: no binding with id no.such" in n for n in notices(app))
        await pilot.press("J")
        await until(
            pilot, "the jobs screen by the remapped key", lambda: app.current_mode == "jobs"
        )
        await pilot.press("8")
        await until(pilot, "settings", lambda: app.current_mode == "settings")
        app.screen.query_one("#set-theme", Select).value = "light"
        await until(pilot, "the light theme", lambda: app.theme == "textual-light")
        await pilot.press("ctrl+s")
        await until(pilot, "saved", lambda: any("saved to" in n for n in notices(app)))

    run_app(daemon.paths, scenario)
    saved = daemon.paths.config_file.read_text()
    assert 'allowed_roots = ["/tmp"]  # kept as written' in saved
    assert 'theme = "light"' in saved and '"nav.jobs" = "J"' in saved
    assert load_config(daemon.paths.config_file).tui.theme == "light"
