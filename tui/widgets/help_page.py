"""`?`: a help page for the screen you are on, not a bare list of keys.

It says what the screen is for (its module's own description, the one the code keeps true), then
its keys with what each does, then the keys that work everywhere. Escape, `q` or `?` close it.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Markdown

from tui.keys import bindings_of


def help_markdown(screen: Screen[Any], everywhere: list[Binding]) -> str:
    """The page for `screen`: what it is for, its keys, then the app's."""
    module = inspect.getmodule(type(screen))
    about = inspect.cleandoc(module.__doc__ or "") if module else ""
    lines = [f"# {screen.title or type(screen).__name__}", "", about, ""]

    def table(title: str, bindings: list[Binding]) -> list[str]:
        rows = [b for b in bindings if b.description]
        if not rows:
            return []
        keys = [f"| `{b.key_display or b.key}` | {b.description} |" for b in rows]
        return [f"## {title}", "", "| key | what it does |", "|-|-|", *keys, ""]

    lines += table("Keys here", bindings_of(type(screen).BINDINGS))
    lines += table("Everywhere", everywhere)
    lines.append("`1`…`8` switch screens; `ctrl+p` finds any screen or action by name.")
    return "\n".join(lines)


class HelpPage(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide"):
            yield Markdown(self.text, id="help-text")
