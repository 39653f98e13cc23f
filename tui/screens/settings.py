"""Settings: theme, notifications and motion, saved to `[tui]` in the config file; the keys.

Changes apply at once; ctrl+s saves them. Keys are remapped in the config file's `[tui.keys]`
by the ids listed here.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, DataTable, Label, Select, Static

from forge_api.config import ConfigError, TuiConfig
from tui.screens.base import ForgeScreen
from tui.settings_file import save_tui_settings

SWITCHES = (
    ("reduced_motion", "reduced motion"),
    ("notify_job_finished", "notify: job finished"),
    ("notify_job_failed", "notify: job failed"),
    ("notify_mission_proposed", "notify: mission proposed"),
)


class SettingsScreen(ForgeScreen):
    TITLE = "Settings"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="settings.save", priority=True)
    ]

    def body(self) -> ComposeResult:
        s = self.forge.settings
        with VerticalScroll(id="settings"):
            yield Static(f"Saved to {self.forge.paths.config_file}, table [b]\\[tui][/b].")
            with Horizontal(classes="field"):
                yield Label("theme", classes="field-name")
                yield Select(
                    [(t, t) for t in ("dark", "light", "ansi")],
                    value=s.theme,
                    allow_blank=False,
                    id="set-theme",
                    compact=True,
                )
            for name, label in SWITCHES:
                yield Checkbox(label, value=bool(getattr(s, name)), id=f"set-{name}", compact=True)
            yield Button("Save (ctrl+s)", variant="primary", id="save", compact=True)
            yield Static("\n[b]Keys[/b]: set [b]\\[tui.keys][/b] to rebind, by id", classes="hint")
            yield DataTable(id="keys", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one("#keys", DataTable)
        table.add_columns("id", "key", "does", "where")
        keymap = self.forge.settings.keys
        for binding, where in self.forge.all_bindings():
            key = keymap.get(binding.id or "", binding.key)
            table.add_row(binding.id or "-", key, binding.description or binding.action, where)

    def chosen(self) -> TuiConfig:
        theme = self.query_one("#set-theme", Select).value
        values = self.forge.settings.model_dump()
        values["theme"] = theme
        for name, _ in SWITCHES:
            values[name] = self.query_one(f"#set-{name}", Checkbox).value
        return TuiConfig.model_validate(values)

    def on_select_changed(self) -> None:
        self._apply()

    def on_checkbox_changed(self) -> None:
        self._apply()

    def _apply(self) -> None:
        self.forge.config.tui = self.chosen()
        self.forge.apply_settings()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()

    def action_save(self) -> None:
        try:
            save_tui_settings(self.forge.paths.config_file, self.chosen())
        except (ConfigError, OSError) as exc:
            self.notify(f"not saved: {exc}", severity="error", timeout=15)
            return
        self.notify(f"saved to {self.forge.paths.config_file}")
