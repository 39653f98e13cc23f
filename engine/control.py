"""How a job learns it must stop: SIGTERM from a cancel, or the daemon dying.

A job calls `check()` at safe points (between stages or steps); after SIGTERM it raises
`StopRequested`, so the job can write a checkpoint first and exit cleanly. On Linux the child
also asks the kernel for SIGTERM when its parent (the daemon) dies, so a kill -9 of the daemon
leaves no orphan training on: the restarted daemon resumes from the checkpoint instead.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

PR_SET_PDEATHSIG = 1


class StopRequested(Exception):
    """Raised at a safe point after SIGTERM."""


_stop = False
_interruptible = False


def _on_term(signum: int, frame: FrameType | None) -> None:
    global _stop
    _stop = True
    if _interruptible:
        raise StopRequested("stop requested")


@contextmanager
def interruptible() -> Iterator[None]:
    """Work that may be abandoned half-way: a forward and backward pass, an evaluation batch.
    A stop inside it raises at once instead of at the next safe point, so a step that takes
    minutes on a CPU does not outlast the cancel's grace period. Nothing the model keeps is
    changed inside (the optimizer steps outside), so the last checkpoint stays right."""
    global _interruptible
    check()
    _interruptible = True
    try:
        yield
    finally:
        _interruptible = False


def install(parent_pid: int | None) -> None:
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    if parent_pid is not None and not die_with_parent(parent_pid):
        _on_term(signal.SIGTERM, None)  # the daemon died before prctl took effect


def die_with_parent(parent_pid: int) -> bool:
    """Ask Linux for SIGTERM when the parent (`parent_pid`) dies; False when it already has.
    Elsewhere nothing is asked, and the daemon's next start stops what it left running."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    return os.getppid() == parent_pid


def stopping() -> bool:
    """Whether a stop was asked for, for loops that cannot take an exception mid-way."""
    return _stop


def check() -> None:
    if _stop:
        raise StopRequested("stop requested")
