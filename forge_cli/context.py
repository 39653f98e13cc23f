"""What every `forge` command shares: its parsed arguments, a client made on first use, the
exit codes and the plain table the human output is made of."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from forge_api.paths import ForgePaths, resolve_paths
from forge_client.client import DEFAULT_TIMEOUT, Client
from forge_client.format import STATUS_STYLES

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3

Command = Callable[["Cli"], int]
Subparsers = Any
"""argparse's `_SubParsersAction`, whose type is private."""


class AddCommand(Protocol):
    """Adds one command to a group of subcommands (see `forge_cli.main.build_parser`)."""

    def __call__(
        self, parent: Subparsers, name: str, fn: Command, help_: str
    ) -> argparse.ArgumentParser: ...


class Cli:
    """One command's run: its arguments, the paths of this instance, and the socket client."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.paths: ForgePaths = resolve_paths()
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.paths.socket_file, timeout=call_timeout())
        return self._client

    def call(self, method: str, **params: Any) -> Any:
        return self.client.call(method, **params)

    def out(self, result: Any, human: Callable[[Any], None]) -> None:
        """The result as JSON with `--json`, else as `human` prints it."""
        if self.args.json:
            print(json.dumps(result, indent=2))
        else:
            human(result)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def call_timeout() -> float:
    """Seconds a call waits for its reply: FORGE_TIMEOUT, or the client's default."""
    raw = os.environ.get("FORGE_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FORGE_TIMEOUT={raw!r}: not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"FORGE_TIMEOUT={raw!r}: must be more than 0 seconds")
    return value


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    """On a terminal, a rich table with statuses in colour; piped, columns padded to their
    widest cell (what scripts and `grep` read). `(none)` for no rows."""
    if not rows:
        print("(none)")
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        shown = Table(box=None, header_style="bold", pad_edge=False)
        for name in header:
            shown.add_column(name)
        for row in rows:  # Text, not markup: a job's name may hold brackets
            shown.add_row(*(Text(str(c), style=STATUS_STYLES.get(str(c), "")) for c in row))
        Console(highlight=False).print(shown)
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
