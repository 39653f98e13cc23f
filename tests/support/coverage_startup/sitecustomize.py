"""Under coverage, other people's libraries import untraced.

On Python 3.11 coverage measures through `sys.settrace`, which puts the interpreter in its slow
tracing mode for every frame, measured or not. Importing torch + transformers + peft then takes
about half as long again (an engine job's start: 13 s instead of 9), and the suite starts about
a hundred engines (test_restart and test_job_faults: 133 s under coverage, 95 s without, 111 s
with this). Code of ours runs inside those imports only when a signal handler of ours lands
during one (a cancel while a job imports torch): that handler then runs untraced, and its lines
count where the suite stops a job elsewhere. Nothing else changes: the imports still happen
where and when the product does them (nothing is imported ahead), and the tracer is back as
soon as each one returns or raises.

tests/conftest.py installs this in the test workers and, while coverage measures, puts this
folder on PYTHONPATH so every Python process the tests start (daemons, engines, the CLI) runs it
at start-up, after coverage's own start-up hook.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

OURS: frozenset[str] = frozenset()
"""The packages coverage measures (its `source`, read from the running coverage): traced."""


def _theirs(name: str, package: str | None) -> bool:
    """Whether importing `name` (relative to `package` when it starts with a dot) runs only
    code coverage does not measure."""
    absolute = (package or "") if name.startswith(".") or not name else name
    return absolute.partition(".")[0] not in OURS


def _paused(load: Callable[[], ModuleType]) -> ModuleType:
    tracer = sys.gettrace()
    if tracer is None:
        return load()
    sys.settrace(None)  # this thread only; its frames already traced stay traced
    try:
        return load()
    finally:
        sys.settrace(tracer)


def _wrap_import(real: Callable[..., ModuleType]) -> Callable[..., ModuleType]:
    def import_(
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] = (),
        level: int = 0,
    ) -> ModuleType:
        def load() -> ModuleType:
            return real(name, globals, locals, fromlist, level)

        package = str((globals or {}).get("__package__") or "")
        return _paused(load) if _theirs("." * level + name, package) else load()

    import_.untraced = True  # type: ignore[attr-defined]
    return import_


def _wrap_import_module(real: Callable[..., ModuleType]) -> Callable[..., ModuleType]:
    """transformers loads its models lazily through importlib.import_module."""

    def import_module(name: str, package: str | None = None) -> ModuleType:
        def load() -> ModuleType:
            return real(name, package)

        return _paused(load) if _theirs(name, package) else load()

    import_module.untraced = True  # type: ignore[attr-defined]
    return import_module


REPOSITORY = Path(__file__).resolve().parents[3]


def _someone_elses_script() -> bool:
    """Whether this process runs a script from outside the repository (llama.cpp's converter,
    a test's stand-in engine): none of its code is ours to measure."""
    first = sys.argv[0] if sys.argv else ""
    if first in ("", "-c", "-m"):
        return False
    script = Path(first)
    return script.is_file() and not script.resolve().is_relative_to(REPOSITORY)


def install() -> None:
    """Wrap `__import__` and `importlib.import_module` once in this process, if coverage runs
    in it; stop it in a process that runs someone else's script (llama.cpp's converter ran 8x
    slower traced: 55 s instead of 7 for SmolLM2's vocabulary)."""
    global OURS
    import coverage

    running = coverage.Coverage.current()
    if running is None:
        return
    if _someone_elses_script():
        running.stop()
        return
    # Each is a package name, or (as a child process receives it) the package's folder.
    OURS = frozenset(Path(name).name.partition(".")[0] for name in running.config.source or ())
    if not getattr(builtins.__import__, "untraced", False):
        builtins.__import__ = _wrap_import(builtins.__import__)
    if not getattr(importlib.import_module, "untraced", False):
        importlib.import_module = _wrap_import_module(importlib.import_module)


if sys.gettrace() is not None:  # coverage started in this process (its .pth ran first)
    install()
