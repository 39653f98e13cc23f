"""Every key binding of the TUI with its id, for the Settings screen, the guide and `[tui.keys]`."""

from __future__ import annotations

import importlib

from textual.binding import Binding, BindingType
from textual.dom import DOMNode

from tui.modes import SCREENS


def _bindings(declared: list[BindingType]) -> list[Binding]:
    return [b for b in declared if isinstance(b, Binding)]


def all_bindings() -> list[tuple[Binding, str]]:
    """(binding, where it applies) for the app, each screen and each dialog."""
    from tui.app import ForgeApp
    from tui.screens.job_detail import JobDetailScreen
    from tui.screens.models import DeployDialog
    from tui.screens.new_job import NewJobScreen
    from tui.widgets.dialogs import AskText, Confirm

    found = [(b, "everywhere") for b in _bindings(ForgeApp.BINDINGS)]
    classes: list[type[DOMNode]] = []
    for _, _, target in SCREENS:
        module, _, name = target.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    classes += [JobDetailScreen, NewJobScreen, DeployDialog, AskText, Confirm]
    for cls in classes:
        where = getattr(cls, "TITLE", None) or cls.__name__
        found += [(b, str(where)) for b in _bindings(cls.BINDINGS)]
    return found
