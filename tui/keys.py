"""Listing key bindings with their ids, for the Settings screen, the guide and `[tui.keys]`."""

from __future__ import annotations

from collections.abc import Iterable

from textual.binding import Binding, BindingType
from textual.dom import DOMNode


def bindings_of(declared: list[BindingType]) -> list[Binding]:
    """The `Binding`s of a BINDINGS list (which may also hold plain tuples)."""
    return [b for b in declared if isinstance(b, Binding)]


def bindings_by_owner(owners: Iterable[type[DOMNode]]) -> list[tuple[Binding, str]]:
    """(binding, where it applies) for each screen or dialog class, named by its title."""
    found: list[tuple[Binding, str]] = []
    for cls in owners:
        where = getattr(cls, "TITLE", None) or cls.__name__
        found += [(b, str(where)) for b in bindings_of(cls.BINDINGS)]
    return found
