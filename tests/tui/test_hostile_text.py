"""Repository text reaches every screen as text: a repository whose folder name, commit subjects
and files hold Rich and Textual markup, HTML and ANSI codes is listed, proposed and previewed,
and the TUI shows each piece exactly as written, never as styling, an action or a crash (a real
README's `<p align="center">` once stopped the Datasets screen with a MarkupError)."""

from __future__ import annotations

from pathlib import Path

from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from textual.widgets._data_table import default_cell_formatter

from tests.support.daemon_harness import DaemonFactory
from tests.support.missions import agent_config, next_proposal
from tests.support.repos import commit, git
from tests.tui.pilot import activity_line, run_app, until
from tui.app import ForgeApp

NAME = 'w[b] [@click=app.quit]x [$accent]y <p align="center">'
"""The repository's folder name, so the source's, the mission's and the dataset's names (a
folder name holds no `/`: the closing tags are in the commits and files)."""

HOSTILE = (
    '<p align="center"><img src="logo.png" alt="[b]logo"></p>\n'
    "[bold red]not bold[/bold red] [/] [link=https://example.com]x[/link] [$accent]y\n"
    "\x1b[31mANSI red\x1b[0m and a [/closing] tag with nothing open\n"
)


HTML = '<p align=\\"center\\">'
"""The README's HTML as the dataset preview shows it (each sample is a JSON line)."""


def hostile_repo(root: Path) -> Path:
    repo = root / NAME
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"README.md": "# Widgets\n\n" + HOSTILE}, "Describe [/b] the <b>widgets</b>")
    commit(repo, {"widgets.py": f"WIDGET = {HOSTILE!r}\n"}, "Add [@click=app.quit] widgets")
    commit(repo, {"docs/use.md": HOSTILE * 3}, "[red]Document[/red] usage")
    return repo


def cells(app: ForgeApp) -> list[str]:
    """Every cell of the screen's tables, as the table shows it (through the formatter that
    DataTable renders each cell with: a `str` is read as markup there)."""
    return [
        str(default_cell_formatter(cell))
        for table in app.screen.query(DataTable)
        for row in table.ordered_rows
        for cell in table.get_row(row.key)
    ]


def panels(app: ForgeApp) -> str:
    """The screen's text panels, as plain text."""
    return "\n".join(str(static.render()) for static in app.screen.query(Static))


def test_markup_html_and_ansi_from_a_repository_are_shown_as_written(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    daemon = make_daemon(config=agent_config(tiny_model)).start()
    start = daemon.call("system.status")["last_seq"]
    repo = hostile_repo(tmp_path)
    source = daemon.call("sources.add", path=str(repo))
    mission = next_proposal(daemon, start)
    assert NAME in mission["title"]

    async def scenario(app: ForgeApp, pilot: Pilot[None]) -> None:
        await until(pilot, "the daemon online", lambda: app.online)
        for key, what, shown in (
            ("1", "the mission waiting on the dashboard", lambda: NAME in " ".join(cells(app))),
            ("3", "the mission's title", lambda: NAME in " ".join(cells(app))),
            ("5", "the source's name", lambda: NAME in cells(app)),
            ("4", "the dataset's name", lambda: any(NAME in c for c in cells(app))),
            ("4", "the dataset's samples, HTML and all", lambda: HTML in panels(app)),
        ):
            await pilot.press(key)
            await until(pilot, what, shown)
            assert app.is_running, what
        # The dashboard's activity, opened after the proposal, still tells of it.
        said = f"mission proposed: {mission['title']}"
        await activity_line(app, pilot, "the proposal in the recent activity", said)
        # A notification of a new proposal shows its title as written (Textual reads a
        # notification as markup unless told not to: `[b]`, `[$accent]` and the rest vanished).
        commit(repo, {"more.py": f"MORE = {HOSTILE!r}\n"}, "[/] More [b]widgets")
        newer = daemon.call("sources.scan", id=source["id"])["mission"]
        assert newer is not None and NAME in newer["title"]
        told = await until(
            pilot,
            "the notification of the new proposal",
            lambda: next((n for n in app._notifications if newer["title"] in n.message), None),
        )
        # As the toast renders it (`textual.widgets._toast.Toast.render`).
        text = Content.from_markup(told.message) if told.markup else Content(told.message)
        assert newer["title"] in text.plain
        # Nothing was taken for an action: the app did not quit on `[@click=app.quit]`.
        assert app.is_running

    run_app(daemon.paths, scenario, size=(160, 50))
