"""`forge doctor`: is this machine ready to fine-tune, and if not, what to do about it.

One line per check, each `ok`, `warn` or `FAIL` with the fix: the accelerator and its driver,
the torch build (a CPU build on a GPU box is the usual trap), which backends train here and why
not (the engine's own rule, `forge_api.backend_rules`), memory and disk, the config file, the
daemon and its health, Ollama, and the base model the agent will train. torch is probed in a
child process, so a broken install is reported, not a crash, and the CLI stays light.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forge_api.backend_rules import BACKENDS, Machine, backend_problem, method_problem
from forge_api.config import implied_base_model
from forge_api.version import VERSION
from forge_cli.context import EXIT_ERROR, Cli
from forge_client.client import Client, DaemonNotRunning, DaemonUnresponsive, RemoteError
from forge_client.format import size
from forged.hardware import memory_available

TORCH_PROBE = """
import json, torch
mps = getattr(torch.backends, "mps", None)
print(json.dumps({
    "version": torch.__version__,
    "cuda_build": torch.version.cuda,
    "cuda": torch.cuda.is_available(),
    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "mps": bool(mps is not None and mps.is_available()),
    "threads": torch.get_num_threads(),
}))
"""
CUDA_TORCH = (
    "install the CUDA build of torch for your driver, e.g. "
    "`make TORCH_INDEX=https://download.pytorch.org/whl/cu124 .venv/.installed` after "
    "`rm .venv/.installed`, or `pip install torch --index-url https://download.pytorch.org/whl/cu124`"
)


@dataclass
class Check:
    name: str
    state: str  # "ok", "warn" or "FAIL"
    says: str
    fix: str = ""


RAY_EXTRA = "pip install 'ai-forge[ray]' (here, and Ray at the head's version on every worker)"


def _torch() -> tuple[dict[str, Any] | None, Check]:
    try:
        probe = subprocess.run(
            [sys.executable, "-c", TORCH_PROBE], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, Check("torch", "FAIL", f"could not run Python to look: {exc}")
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        fix = "pip install 'ai-forge[train]' (or `make .venv/.installed` in the checkout)"
        return None, Check("torch", "FAIL", f"does not import: {last}", fix)
    info: dict[str, Any] = json.loads(probe.stdout)
    build = f"CUDA {info['cuda_build']} build" if info["cuda_build"] else "CPU build"
    where = info["device"] or ("Apple MPS" if info["mps"] else f"CPU, {info['threads']} threads")
    return info, Check("torch", "ok", f"{info['version']} ({build}), training on {where}")


def _driver(torch: dict[str, Any] | None) -> Check:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        if torch and torch["mps"]:
            return Check("accelerator", "ok", "Apple silicon (MPS)")
        if torch and torch["cuda_build"]:
            return Check(
                "accelerator",
                "warn",
                f"no NVIDIA GPU, but torch is its CUDA {torch['cuda_build']} build (gigabytes of"
                " CUDA libraries this machine cannot use): training runs on the CPU",
                "pip install --force-reinstall torch --index-url "
                "https://download.pytorch.org/whl/cpu (the CPU build)",
            )
        return Check("accelerator", "ok", "no NVIDIA GPU: training runs on the CPU (slowly)")
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("accelerator", "FAIL", f"nvidia-smi did not answer: {exc}")
    if not out:
        return Check("accelerator", "FAIL", "nvidia-smi finds no GPU", "check the driver")
    if torch and not torch["cuda"]:
        return Check("accelerator", "FAIL", f"{out}, but torch cannot use it", CUDA_TORCH)
    return Check("accelerator", "ok", out)


def _backends(torch: dict[str, Any] | None) -> list[Check]:
    machine = Machine.here(cuda=bool(torch and torch["cuda"]))
    out = []
    for backend in BACKENDS:
        why = backend_problem(backend, machine)
        out.append(
            Check(f"backend {backend}", "ok" if why is None else "warn", why or "trains here")
        )
    if why := method_problem("qlora", machine):
        out.append(Check("method qlora", "warn", why.split(";")[0]))
    return out


def _resources(cli: Cli) -> list[Check]:
    out = []
    free = memory_available()  # the daemon's own reading, from /proc/meminfo
    if free is not None:
        state = "ok" if free > 4 * 2**30 else "warn"
        out.append(
            Check(
                "memory",
                state,
                f"{size(free)} available",
                ""
                if state == "ok"
                else "close programs, or train with a smaller max_seq_len or batch_size",
            )
        )
    data = cli.paths.data_dir
    probe = data if data.exists() else data.parent if data.parent.exists() else Path.home()
    free_disk = shutil.disk_usage(probe).free
    state = "ok" if free_disk > 10 * 2**30 else "warn"
    out.append(
        Check(
            "disk",
            state,
            f"{size(free_disk)} free under {probe}",
            "" if state == "ok" else "models and checkpoints need several GiB: free some space",
        )
    )
    return out


def _config(cli: Cli) -> tuple[Any, Check]:
    from forge_api.config import ConfigError, load_config

    path = cli.paths.config_file
    try:
        config = load_config(path)
    except ConfigError as exc:
        said = " ".join(line.strip() for line in str(exc).splitlines())
        return None, Check("config", "FAIL", said, "fix that line (`forge config check`)")
    where = str(path) if path.exists() else f"{path} absent: the defaults"
    return config, Check("config", "ok", f"valid ({where})")


def _daemon(cli: Cli) -> tuple[list[dict[str, Any]], list[Check]]:
    try:
        with Client(cli.paths.socket_file, timeout=10) as client:
            status = client.call("system.status")
            health = client.call("system.health")
            models = client.call("models.list", kind=["base"])["models"]
    except (DaemonNotRunning, DaemonUnresponsive, RemoteError, OSError) as exc:
        fix = "`forge daemon` (or `forge service install` to start it with your session)"
        return [], [Check("daemon", "warn", f"not answering: {exc}", fix)]
    checks = [Check("daemon", "ok", f"forged {status['version']}, pid {status['pid']}")]
    for name, said in health["checks"].items():
        state = "ok" if said.startswith("ok") else "FAIL"
        checks.append(Check(f"daemon {name}", state, said))
    return models, checks


def _ollama(config: Any) -> Check:
    host = (
        (config.ollama.host if config else "") or os.environ.get("OLLAMA_HOST") or "127.0.0.1:11434"
    )
    url = host if "://" in host else f"http://{host}"
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=3) as reply:
            version = json.loads(reply.read()).get("version", "?")
    except (OSError, ValueError, urllib.error.URLError) as exc:
        return Check(
            "ollama",
            "warn",
            f"not reachable at {host}: {getattr(exc, 'reason', exc)}",
            "install and start Ollama (https://ollama.com) to deploy; training works without it",
        )
    return Check("ollama", "ok", f"{version} at {host}")


def _gguf_converter() -> Check:
    """llama.cpp's converter: what exports and adapter deploys go through."""
    from engine.errors import EngineError
    from engine.llama_cpp_tools import script

    try:
        found = script("convert_lora_to_gguf.py").parent
    except EngineError as exc:
        return Check(
            "gguf",
            "warn",
            "llama.cpp's converter is not here: exports and adapter deploys to Ollama fail",
            "run " + str(exc).split(": run ", 1)[-1],
        )
    return Check(
        "gguf",
        "ok",
        f"llama.cpp's converter at {found}: adapters deploy to Ollama as GGUF LoRA adapters "
        "(DoRA goes merged), `forge models export` writes GGUF",
    )


def _base_model(config: Any, bases: list[dict[str, Any]]) -> Check:
    if config is None:
        return Check("base model", "warn", "unknown: the config does not load")
    wanted = config.agent.base_model
    names = {b["name"] for b in bases} | {Path(b["path"] or "").name for b in bases}
    found = wanted in names or Path(wanted).is_dir()
    if not found and (one := implied_base_model(wanted, [b["name"] for b in bases])):
        wanted, found = one, True  # what the agent trains then (the same rule)
    if not found:
        have = ", ".join(sorted(b["name"] for b in bases)) or "none yet"
        return Check(
            "base model",
            "FAIL" if bases else "warn",
            f"agent.base_model is {wanted!r}, which is not here (base models: {have})",
            "`forge models import FILE.gguf` or `forge models pull ORG/NAME`, then set "
            "agent.base_model to it",
        )
    mapped = config.ollama.bases.get(wanted) or next(
        (
            (b["data"].get("imported") or {}).get("ollama_model")
            for b in bases
            if b["name"] == wanted
        ),
        None,
    )
    says = f"{wanted}" + (f"; its adapters deploy onto Ollama's {mapped}" if mapped else "")
    fix = "" if mapped else "map it to an Ollama model in [ollama] bases to deploy adapters small"
    return Check("base model", "ok" if mapped else "warn", says, fix)


def _tracking(config: Any) -> list[Check]:
    """A line only where `[tracking]` asks for something: is its package here?"""
    import importlib.util

    if config is None:
        return []
    wanted = {
        "TensorBoard": ("tensorboard", config.tracking.tensorboard),
        "MLflow": ("mlflow", bool(config.tracking.mlflow_uri)),
    }
    asked = [(name, module) for name, (module, on) in wanted.items() if on]
    if not asked:
        return []
    missing = [module for _, module in asked if importlib.util.find_spec(module) is None]
    if missing:
        return [
            Check(
                "tracking",
                "warn",
                f"{', '.join(missing)} not installed: metrics stay in the store only",
                "pip install 'ai-forge[tracking]' (in the Python that runs jobs)",
            )
        ]
    return [Check("tracking", "ok", "metrics also go to " + " and ".join(n for n, _ in asked))]


def _ray(config: Any) -> list[Check]:
    """A line only where jobs go to a Ray cluster: is Ray here, and does the cluster answer?"""
    import importlib.util

    if config is None or config.jobs.executor != "ray":
        return []
    address = config.jobs.ray_address
    if importlib.util.find_spec("ray") is None:
        return [Check("ray", "FAIL", "jobs.executor is ray, but Ray is not installed", RAY_EXTRA)]
    try:
        from ray.job_submission import JobSubmissionClient

        version = JobSubmissionClient(address).get_version()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = "start the cluster (ray start --head) or set jobs.ray_address to its dashboard"
        return [Check("ray", "FAIL", f"the cluster at {address!r} does not answer: {first}", fix)]
    return [Check("ray", "ok", f"jobs go to the Ray cluster at {address!r} (Ray {version})")]


def cmd_doctor(cli: Cli) -> int:
    torch, torch_check = _torch()
    config, config_check = _config(cli)
    bases, daemon_checks = _daemon(cli)
    checks = [
        Check("forge", "ok", f"{VERSION} on Python {sys.version.split()[0]}"),
        _driver(torch),
        torch_check,
        *_backends(torch),
        *_resources(cli),
        config_check,
        *daemon_checks,
        _ollama(config),
        _gguf_converter(),
        _base_model(config, bases),
        *_tracking(config),
        *_ray(config),
    ]
    if cli.args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{c.state:<4}  {c.name:<{width}}  {c.says}")
            if c.fix and c.state != "ok":
                print(f"{'':<4}  {'':<{width}}  → {c.fix}")
    return EXIT_ERROR if any(c.state == "FAIL" for c in checks) else 0
