"""`python -m engine <run-dir>/spec.json`: run one job and report it as JSON lines on stdout.

Exit codes: 0 done, 1 failed (the last `error` event says why), 143 stopped on request.
"""

from __future__ import annotations

import importlib
import os
import sys

# No tqdm bars in a job's log; no hub either (set in main), except for a pull.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import traceback
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from engine import control
from engine.data_parallel import rank_from_env
from engine.errors import EngineError, out_of_memory
from engine.events import Emitter
from engine.memory_limit import limit_memory
from engine.tracking import Tracker
from forge_api.jobs import JobSpec, kind_of

EXIT_STOPPED = 143


def _runner(kind: str) -> Callable[[JobSpec, Emitter], dict[str, object]]:
    """The `run` of the kind's engine module (`forge_api.jobs.KINDS`), imported only now: a
    job loads only what its kind needs."""
    entry = kind_of(kind)
    if entry is None:
        raise EngineError(f"this engine cannot run job kind {kind!r}")
    run: Callable[[JobSpec, Emitter], dict[str, object]] = importlib.import_module(entry.runs).run
    return run


def main(argv: list[str]) -> int:
    rank = rank_from_env()
    emitter = Emitter(errors_only_as=f"rank {rank}" if rank else None)
    if len(argv) != 2:
        emitter.error("usage: python -m engine <run-dir>/spec.json")
        return 2
    spec_path = Path(argv[1])
    try:
        spec = JobSpec.model_validate_json(spec_path.read_text(encoding="utf-8"))
        spec.typed_params()
    except (OSError, ValidationError, ValueError) as exc:
        emitter.error(f"{spec_path}: cannot use this job spec: {exc}")
        return 2
    if not str(spec.params.get("path") or "").startswith("hf:"):
        # Before anything imports huggingface_hub: only `forge models pull` reaches the hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Before the model loads: past this an allocation fails in this job, not the machine.
    if applied := limit_memory(spec.memory_limit_bytes):
        emitter.log(applied)
    parent = os.environ.get("FORGE_PARENT_PID")
    control.install(int(parent) if parent else None)
    tags = {"forge.job_id": spec.job_id, "forge.kind": spec.kind}
    if not rank:  # one process of a data-parallel job writes the metrics
        emitter.tracker = Tracker.open(spec.tracking, tags, emitter.log)
    emitter.tracker.params(spec.params)
    status = "FAILED"
    try:
        summary = _runner(spec.kind)(spec, emitter)
        status = "FINISHED"
    except control.StopRequested:
        emitter.log("stopped on request; the last checkpoint is kept", level="warning")
        status = "KILLED"
        return EXIT_STOPPED
    except EngineError as exc:
        emitter.error(str(exc))
        return 1
    except Exception as exc:
        oom = out_of_memory(exc)
        if oom is None:
            traceback.print_exc(file=sys.stdout)
        emitter.error(oom or f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        emitter.tracker.close(status)
    emitter.done(**summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
