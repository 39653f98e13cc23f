"""The command that runs one job's engine, wherever it runs: `python -m engine <spec>`, or, for a
train job on several GPUs (`devices`), the same module under accelerate's launcher, one process
per GPU (`engine.data_parallel` is the other half)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any


class TooFewDevices(ValueError):
    """A job asks for more GPUs than there are."""


def processes(kind: str, params: dict[str, Any], gpus: int | None) -> int:
    """How many engine processes the job runs as: `devices` for a train job (`all`: every GPU,
    one process where there is none), else 1. `gpus` is how many this machine has (None: not
    known here, as on a Ray cluster, where `all` cannot be counted)."""
    if kind != "train":
        return 1
    asked = params.get("devices", 1)
    if asked == "all":
        if gpus is None:
            raise TooFewDevices(
                "params.devices: `all` needs the GPUs counted on the machine that runs the job; "
                "on a Ray cluster give a number"
            )
        return max(gpus, 1)
    n = int(asked)
    if gpus is not None and n > 1 and n > gpus:
        have = f"{gpus} GPU{'' if gpus == 1 else 's'}" if gpus else "no GPU"
        raise TooFewDevices(
            f"params.devices: {n} GPUs asked, and this machine has {have}; train on at most "
            f'{max(gpus, 1)} here, or send the job to a Ray cluster (jobs.executor = "ray")'
        )
    return n


def engine_command(python: str, spec_file: Path, n: int) -> list[str]:
    """The argv of the job's engine: alone, or `n` data-parallel processes through accelerate."""
    if n <= 1:
        return [python, "-m", "engine", str(spec_file)]
    return [
        python,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        f"--num_processes={n}",
        "--num_machines=1",
        f"--main_process_port={_free_port()}",
        "--mixed_precision=no",  # the engine picks its own dtype
        "--dynamo_backend=no",
        "-m",
        "engine",
        str(spec_file),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
