"""Outside text shown as it is, never read as markup.

Commit subjects, file names, dataset samples, paths, errors and a model's answers can hold
anything: HTML from a README diff, `[b]`-like brackets, Rich or Textual markup. A DataTable reads a
`str` cell as Rich markup and a Static reads a `str` as Textual's stricter markup, so such text
either changes what is shown or stops the screen with a MarkupError. Escaping by hand misses a
case sooner or later; these put the text in as text.
"""

from __future__ import annotations

from rich.text import Text
from textual.content import Content


def cell(value: object) -> Text:
    """A DataTable cell that shows `value` exactly."""
    return Text(str(value), end="")


def shown(markup: str, **values: object) -> Content:
    """Our own markup with outside values put in as plain text: `shown("[b]$name[/b]", name=x)`
    (Textual's `$variable` substitution)."""
    return Content.from_markup(markup, **{key: str(value) for key, value in values.items()})


def lines(parts: list[Content | str]) -> Content:
    """Lines joined into one Content; a `str` part is plain text."""
    return Content("\n").join(Content(p) if isinstance(p, str) else p for p in parts)
