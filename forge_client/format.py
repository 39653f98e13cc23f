"""How numbers, times and sizes read on screen: short, and the same on every screen."""

from __future__ import annotations

import json
import time
from typing import Any


def ago(ts: float | None, now: float | None = None) -> str:
    """`12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`; `-` when there is no time."""
    if not ts:
        return "-"
    delta = max(0.0, (now or time.time()) - ts)
    if delta < 60:
        return f"{delta:.0f} s ago"
    if delta < 3600:
        return f"{delta / 60:.0f} min ago"
    if delta < 86400:
        return f"{delta / 3600:.0f} h ago"
    return f"{delta / 86400:.0f} d ago"


def clock(ts: float, now: float | None = None) -> str:
    """A moment as local time: `07:00` today, `Wed 07:00` within a week, else the date."""
    here, today = time.localtime(ts), time.localtime(now or time.time())
    if here[:3] == today[:3]:
        return time.strftime("%H:%M", here)
    if abs(ts - (now or time.time())) < 6 * 86400:
        return time.strftime("%a %H:%M", here)
    return time.strftime("%Y-%m-%d %H:%M", here)


def duration(seconds: float | None) -> str:
    """`45 s`, `3 min 20 s`, `2 h 05 min`; `-` when unknown."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def job_status(job: dict[str, Any]) -> str:
    """`running`, or `running, stalled 16 min` for one silent past jobs.stall_after_s."""
    if job.get("stalled_s"):
        return f"{job['status']}, stalled {duration(job['stalled_s'])}"
    return str(job["status"])


def mission_eta(eta_s: float | None, measuring: bool | None) -> str:
    """A mission's ETA, or that the machine is being measured for it."""
    return "measuring…" if measuring else duration(eta_s)


def size(n: int | None) -> str:
    """Bytes in binary units: `512 MiB`, `15.6 GiB`."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit in ("B", "KiB", "MiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def progress_text(progress: dict[str, Any] | None) -> str:
    """`step 40/120 · 8,210 tok/s · ETA 1 min 02 s`, or what is known of it."""
    if not progress:
        return ""
    parts = []
    total = progress.get("total")
    step = progress.get("step") or 0
    parts.append(f"{progress.get('stage') or 'step'} {step}/{total}" if total else f"step {step}")
    if progress.get("tokens_per_s"):
        parts.append(f"{progress['tokens_per_s']:,.0f} tok/s")
    if progress.get("eta_s"):  # none left (a finished job) says nothing
        parts.append(f"ETA {duration(progress['eta_s'])}")
    return " · ".join(parts)


def progress_brief(progress: dict[str, Any] | None) -> str:
    """`40/120 · ETA 1 min 02 s`: progress for a table cell, where width is short."""
    if not progress:
        return ""
    step, total = progress.get("step") or 0, progress.get("total")
    text = f"{step}/{total}" if total else f"step {step}"
    return f"{text} · ETA {duration(progress['eta_s'])}" if progress.get("eta_s") else text


def params_lines(params: dict[str, Any], summary: dict[str, Any] | None) -> list[str]:
    """A job's params as `key  value`, a value left to the engine (None) shown as what it chose
    once the job says (`auto: 8`), else `auto`."""
    chosen = (summary or {}).get("chosen") or {}
    width = max((len(k) for k in params), default=0)
    lines = []
    for key, value in params.items():
        if value is None and isinstance(chosen.get(key), float):
            shown = f"auto: {chosen[key]:g}"
        elif value is None:
            shown = f"auto: {chosen[key]}" if key in chosen else "auto"
        elif isinstance(value, str):
            shown = value
        else:
            shown = json.dumps(value)
        lines.append(f"{key:<{width}}  {shown}")
    return lines


def metric(value: Any) -> str:
    """A metric value in four significant figures; `-` when missing."""
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return "-"


def time_of_day(ts: float | None) -> str:
    """`14:05:09`, local time: how the activity lists say when something happened."""
    return time.strftime("%H:%M:%S", time.localtime(ts or time.time()))


def describe_event(event: dict[str, Any]) -> str | None:
    """One line of recent activity for an event, or None for the chatty ones (logs, tokens)."""
    kind = str(event.get("type", ""))
    data = event.get("data") or {}
    job = event.get("job_id")
    at = time_of_day(event.get("ts"))
    if kind == "job.status":
        why = data.get("error") or data.get("reason") or ""
        return f"{at} {job} {data.get('status')}" + (f": {why}" if why else "")
    if kind == "job.checkpoint":
        return f"{at} {job} checkpoint at step {data.get('step')}"
    if kind == "mission.proposed":
        return f"{at} mission proposed: {data.get('title')}"
    if kind == "mission.stage":
        why = f" at {data['step']}: {data.get('reason')}" if data.get("step") else ""
        return f"{at} mission {data.get('id')} {data.get('stage')}{why}"
    if kind in ("source.added", "source.removed"):
        return f"{at} source {data.get('id')} {kind.split('.')[1]}"
    if kind in ("dataset.added", "model.added"):
        return f"{at} {kind.split('.')[0]} {data.get('name')} added"
    return None


def printable(text: str) -> str:
    """Text with control characters dropped (newlines and tabs kept): a model or a log may
    emit any byte, and a stray escape must not reach the terminal."""
    return "".join(ch for ch in text if ch.isprintable() or ch in "\n\t")


def placement_text(placement: dict[str, Any] | None) -> str | None:
    """Where a job runs when it is not the daemon's child (`jobs.executor = "ray"`), or None."""
    if not placement:
        return None
    if placement.get("executor") == "ray":
        return f"Ray job {placement.get('ray_job_id')} on {placement.get('address')}"
    return str(placement)


STATUS_STYLES = {
    "completed": "green",
    "done": "green",
    "running": "cyan",
    "training": "cyan",
    "evaluating": "cyan",
    "deploying": "cyan",
    "queued": "yellow",
    "proposed": "yellow",
    "failed": "bold red",
    "cancelled": "magenta",
    "rejected": "magenta",
}
"""How a job's status or a mission's stage is coloured, in the CLI's tables and the TUI alike
(rich and Textual read the same style names); anything else is yellow."""


def status_style(status: str) -> str:
    return STATUS_STYLES.get(status, "yellow")
