"""What this machine has: the accelerator and memory, found without importing torch.

The accelerator is probed once at start-up (nvidia-smi, or Apple silicon by platform); memory
is read from the OS each time it is asked for, since it changes.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import sys
from dataclasses import dataclass

from forge_api.schema import Accelerator


@dataclass
class Hardware:
    accelerator: Accelerator

    @staticmethod
    async def detect() -> Hardware:
        return Hardware(await _detect_accelerator())


async def _detect_accelerator() -> Accelerator:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            proc = await asyncio.create_subprocess_exec(
                smi,
                "--query-gpu=name,memory.total",
                "--format=csv,noheader,nounits",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=5)
            gpus = out.decode().strip().splitlines()
            name, mem = (part.strip() for part in gpus[0].split(",", 1))
            return Accelerator(
                kind="cuda",
                name=name,
                memory_bytes=int(float(mem)) * 1024 * 1024,
                count=visible_gpus(len(gpus), os.environ.get("CUDA_VISIBLE_DEVICES")),
            )
        except (OSError, ValueError, IndexError, TimeoutError):
            pass
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return Accelerator(kind="mps", name="Apple silicon", memory_bytes=memory_total())
    return Accelerator(kind="cpu", name=_cpu_name(), memory_bytes=None)


def visible_gpus(installed: int, visible: str | None) -> int:
    """The GPUs jobs may use: all installed, or those CUDA_VISIBLE_DEVICES names (jobs inherit
    the daemon's environment)."""
    if visible is None:
        return installed
    names = [v for v in visible.split(",") if v.strip()]
    return min(installed, len(names))


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                key, rest = line.split(":", 1)
                values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return values


def memory_total() -> int | None:
    info = _meminfo()
    if "MemTotal" in info:
        return info["MemTotal"]
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def memory_available() -> int | None:
    return _meminfo().get("MemAvailable")
