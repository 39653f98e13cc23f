"""The top two lines of every screen: whether the daemon answers, and where each key leads.

The first line says online (with the socket) or offline (with the key that starts the daemon).
The second names the screens behind the number keys, the current one highlighted, so the
footer can show those keys as one group and still fit in 80 columns.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui.modes import MODE_LABELS


class ConnectionBar(Widget):
    DEFAULT_CSS = """
    ConnectionBar {
        height: 2;
        background: $panel;
        color: $text;
    }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "online", self._changed, init=False)
        self.watch(self.app, "current_mode", self._changed, init=False)

    def _changed(self, _: object) -> None:
        self.refresh()

    def render(self) -> Text:
        online = getattr(self.app, "online", None)
        where = getattr(self.app, "socket_label", "")
        text = Text(" AI Forge ", style="bold reverse")
        if online:
            text.append("  ● online ", style="bold green")
            text.append(where, style="dim")
        elif online is None:
            text.append("  … connecting ", style="bold yellow")
            text.append(where, style="dim")
        else:
            text.append("  ✖ daemon offline ", style="bold red")
            remote = getattr(self.app, "remote", None)
            text.append(f"on {remote}: start it there" if remote else "press S to start it")
        text.append("\n")
        current = getattr(self.app, "current_mode", "")
        for key, (mode, label) in enumerate(MODE_LABELS, start=1):
            style = "bold reverse" if mode == current else ""
            text.append(f" {key}", style="bold " + ("reverse" if mode == current else "cyan"))
            text.append(f" {label} ", style=style)
        return text
