"""`forge tui`: the Textual app that runs a person's day with the daemon.

The app holds the one `DaemonLink`, hands every daemon event to the screens of the current
mode, turns the events a person cares about into notifications, and owns the single error
handler (`guarded`) that every call goes through. Settings (theme, notifications, motion, key
remapping) come from the `[tui]` table of the config file.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen

from forge_api.config import Config, ConfigError, TuiConfig, load_config
from forge_api.paths import REMOTE_ENV, ForgePaths, resolve_paths
from forge_client.client import DaemonNotRunning, RemoteError
from forge_client.format import describe_event
from forge_client.launch import DaemonStartFailed, spawn_daemon
from tui.keys import bindings_by_owner, bindings_of
from tui.link import DaemonLink
from tui.messages import DaemonEvent, LinkChanged, NewJob, OpenJob
from tui.modes import MODE_LABELS
from tui.screens.dashboard import ACTIVITY_LINES, DashboardScreen
from tui.screens.datasets import DatasetsScreen
from tui.screens.job_detail import JobDetailScreen
from tui.screens.jobs import JobsScreen
from tui.screens.missions import MissionsScreen
from tui.screens.models import DeployDialog, ModelsScreen
from tui.screens.new_job import NewJobScreen
from tui.screens.playground import PlaygroundScreen
from tui.screens.settings import SettingsScreen
from tui.screens.sources import SourcesScreen
from tui.widgets.dialogs import AskText, Confirm
from tui.widgets.help_page import HelpPage, help_markdown

THEMES = {"dark": "textual-dark", "light": "textual-light", "ansi": "textual-ansi"}
SCREENS_GROUP = Binding.Group("screens", compact=True)


# The screen behind each mode of `tui.modes.MODE_LABELS`.
MODE_SCREENS: dict[str, type[Screen[Any]]] = {
    "dashboard": DashboardScreen,
    "jobs": JobsScreen,
    "missions": MissionsScreen,
    "datasets": DatasetsScreen,
    "sources": SourcesScreen,
    "models": ModelsScreen,
    "playground": PlaygroundScreen,
    "settings": SettingsScreen,
}
if list(MODE_SCREENS) != [
    mode for mode, _ in MODE_LABELS
]:  # pragma: no cover - edited in one place
    raise ImportError(f"MODE_LABELS {MODE_LABELS} and MODE_SCREENS {list(MODE_SCREENS)} disagree")
# Screens and dialogs opened over the modes, whose keys the Settings screen lists too.
PUSHED: tuple[type[DOMNode], ...] = (
    JobDetailScreen,
    NewJobScreen,
    DeployDialog,
    AskText,
    Confirm,
    HelpPage,
)


def describe_error(what: str, exc: BaseException) -> str:
    """The one wording of a failed call: what was being done, and why it failed."""
    if isinstance(exc, DaemonNotRunning):
        return f"{what}: the daemon is offline (press S to start it)"
    if isinstance(exc, RemoteError):
        return f"{what}: {exc.message}"
    return f"{what}: {type(exc).__name__}: {exc}"


class ForgeApp(App[None]):
    """The terminal UI; `paths` says which daemon (its socket) and which config file."""

    TITLE = "AI Forge"
    CSS_PATH = "forge.tcss"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = dict(MODE_SCREENS)
    DEFAULT_MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(
                str(n),
                f"open_mode('{mode}')",
                label,
                id=f"nav.{mode}",
                group=SCREENS_GROUP,
                # The tab bar under the header shows them with their numbers: the footer
                # keeps its width for the keys of the screen, so "q Quit" is not cut at 80.
                show=False,
            )
            for n, (mode, label) in enumerate(MODE_LABELS, start=1)
        ),
        Binding("n", "new_job", "New", id="app.new_job"),
        Binding("S", "start_daemon", "Start daemon", id="app.start_daemon"),
        Binding("?", "show_keys", "Keys", id="app.keys"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    online: reactive[bool | None] = reactive(None)

    def __init__(self, paths: ForgePaths | None = None) -> None:
        super().__init__()
        self.paths = paths or resolve_paths()
        self.link = DaemonLink(self.paths.socket_file)
        self.remote = os.environ.get(REMOTE_ENV)
        """The `--host` this TUI drives through an ssh bridge, or None for this machine."""
        self.socket_label = self.remote or str(self.paths.socket_file)
        self.config_error: str | None = None
        try:
            self.config: Config = load_config(self.paths.config_file)
        except ConfigError as exc:
            self.config = Config()
            self.config_error = str(exc)
        self.activity: deque[str] = deque(maxlen=ACTIVITY_LINES)
        """Recent activity, one line an event, whatever screen is shown (the dashboard's)."""

    @property
    def settings(self) -> TuiConfig:
        return self.config.tui

    def on_mount(self) -> None:
        self.apply_settings()
        if self.config_error:
            self.notify(
                f"{self.config_error}\nthe TUI runs on its defaults",
                title="config",
                severity="error",
                timeout=15,
            )
        self.run_worker(
            self.link.follow(self._on_event, self._on_state),
            name="events",
            group="link",
            exit_on_error=False,
        )

    def apply_settings(self) -> None:
        """Theme, motion and keys from `[tui]`; an unknown binding id is named, not ignored."""
        self.theme = THEMES[self.settings.theme]
        self.animation_level = "none" if self.settings.reduced_motion else "full"
        known = self.binding_ids()
        unknown = sorted(set(self.settings.keys) - known)
        if unknown:
            self.notify(
                f"tui.keys: no binding with id {', '.join(unknown)}; "
                f"the ids are listed on the Settings screen",
                severity="error",
                timeout=15,
            )
        self.set_keymap({k: v for k, v in self.settings.keys.items() if k in known})

    def all_bindings(self) -> list[tuple[Binding, str]]:
        """(binding, where it applies) for the app, each screen and each dialog."""
        app = [(b, "everywhere") for b in bindings_of(ForgeApp.BINDINGS)]
        return app + bindings_by_owner([*MODE_SCREENS.values(), *PUSHED])

    def binding_ids(self) -> set[str]:
        return {b.id for b, _ in self.all_bindings() if b.id}

    # ---- the daemon link ----------------------------------------------------------------------

    def _on_state(self, online: bool) -> None:
        self.online = online
        self.refresh_bindings()
        for screen in self.screen_stack:
            screen.post_message(LinkChanged(online))

    def _on_event(self, event: dict[str, Any]) -> None:
        if line := describe_event(event):
            self.activity.append(line)
        self._notify_for(event)
        for screen in self.screen_stack:
            screen.post_message(DaemonEvent(event))

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification as plain text (a screen's `notify` comes here too): they carry
        outside text (a mission's title, a source's name, a job's error, a TOML error's
        `[table]`), which Textual would read as markup, and none of ours uses markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def _notify_for(self, event: dict[str, Any]) -> None:
        data = event.get("data") or {}
        kind = event.get("type")
        if kind == "job.status" and data.get("status") == "completed":
            if self.settings.notify_job_finished:
                self.notify(f"job {event.get('job_id')} completed", title="job finished")
        elif kind == "job.status" and data.get("status") == "failed":
            if self.settings.notify_job_failed:
                self.notify(
                    f"job {event.get('job_id')} failed: {data.get('error') or 'see its log'}",
                    title="job failed",
                    severity="error",
                    timeout=10,
                )
        elif kind == "mission.proposed" and self.settings.notify_mission_proposed:
            self.notify(f"{data.get('title')}\npress 3 to review it", title="mission proposed")

    async def guarded(self, work: Callable[[], Awaitable[Any]], what: str) -> Any:
        """Run `work()`; any failure becomes one notification that says what and why."""
        try:
            return await work()
        except Exception as exc:  # the one place a failure turns into a message, never a freeze
            self.report(what, exc)
            return None

    def report(self, what: str, exc: Exception) -> None:
        """Show a failure as `what: why`; our own bugs also go to the Textual log."""
        self.notify(describe_error(what, exc), severity="error", timeout=10)
        if not isinstance(exc, (DaemonNotRunning, RemoteError, ConnectionError, OSError)):
            self.log.error(f"{what} failed", exc_info=exc)

    # ---- actions ------------------------------------------------------------------------------

    def action_show_keys(self) -> None:
        """The help page of the screen in front: what it is for, its keys, the app's keys."""
        if isinstance(self.screen, HelpPage):
            self.screen.dismiss()
            return
        everywhere = [b for b in bindings_of(self.BINDINGS) if b.show]
        self.push_screen(HelpPage(help_markdown(self.screen, everywhere)))

    def action_new_job(self) -> None:
        self.push_screen(NewJobScreen())

    def on_new_job(self, _: NewJob) -> None:
        self.action_new_job()

    def on_open_job(self, message: OpenJob) -> None:
        self.push_screen(JobDetailScreen(message.job_id))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start_daemon":
            return self.online is False
        return True

    async def action_open_mode(self, mode: str) -> None:
        """The mode's own screen, with any screen opened over it (a job's) closed: a number
        key on a job opened from the Missions screen used to switch to the mode it was already
        in, and so did nothing."""
        if self.current_mode != mode:
            await self.switch_mode(mode)
        while len(self.screen_stack) > 1 and not isinstance(self.screen, ModalScreen):
            await self.pop_screen()

    async def action_start_daemon(self) -> None:
        if self.remote:  # the daemon is on the other machine: not one to start here
            self.notify(
                f"the daemon runs on {self.remote}: start it there (`forge daemon`, or"
                " `forge service install` for it to start on its own)",
                severity="warning",
                timeout=15,
            )
            return
        self.notify("starting the daemon…")
        self.run_worker(self._start_daemon, thread=True, group="daemon", exit_on_error=False)

    def _start_daemon(self) -> None:
        try:
            proc = spawn_daemon(self.paths)
        except (DaemonStartFailed, OSError) as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=15)
            return
        self.call_from_thread(self.notify, f"the daemon is up (pid {proc.pid})")

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        # What the screen under the palette can do (approve, reject, cancel, resume, deploy,
        # scan, …), found by name as well as by key; each asks first where its key does.
        title = screen.title or type(screen).__name__
        for binding in bindings_of(type(screen).BINDINGS):
            if binding.show and binding.description and not binding.action.startswith("app."):
                yield SystemCommand(
                    binding.description,
                    f"{title} (key {binding.key})",
                    lambda b=binding: screen.run_action(b.action),
                )
        for mode, label in MODE_LABELS:
            name = MODE_SCREENS[mode].__name__.removesuffix("Screen")
            yield SystemCommand(
                f"Open {name}", f"the {label} screen", lambda m=mode: self.action_open_mode(m)
            )
        yield SystemCommand("New job", "the training wizard", self.action_new_job)
        if self.online is False:
            yield SystemCommand(
                "Start the daemon", "run `forge daemon` in the background", self.action_start_daemon
            )

    async def on_unmount(self) -> None:
        await self.link.close()


def run(paths: ForgePaths | None = None) -> int:
    """Run the TUI until it quits; its exit code (Textual's: 1 when it stopped on an error, such
    as a stylesheet it could not read, which it has printed)."""
    app = ForgeApp(paths)
    app.run()
    return app.return_code or 0
