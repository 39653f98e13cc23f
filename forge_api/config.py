"""An instance's settings: `config.toml`, read with tomllib and validated by pydantic; the
daemon reads all of it, the TUI its `[tui]` table, `forge config check` checks it.

A missing file means the embedded defaults. A wrong key or value is an error that names the
file, the line where we can find it and the dotted key; it is never replaced by a default.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from forge_api.names import MISSION_MAX_SEQ_LEN


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DaemonConfig(_Section):
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="how much the daemon logs: debug, info, warning or error"
    )


class JobsConfig(_Section):
    max_parallel: int = Field(
        1,
        ge=1,
        le=64,
        description="model-loading jobs (prepare-model, train, eval, merge, infer) at once",
    )
    cancel_grace_s: float = Field(
        10.0, gt=0, le=600, description="seconds between SIGTERM and SIGKILL on cancel"
    )
    shutdown_grace_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description="seconds running jobs get to checkpoint when the daemon stops",
    )
    python: str = Field(
        "",
        description="the Python that runs jobs, e.g. a venv with CUDA torch (empty: the daemon's)",
    )
    stall_after_s: float = Field(
        900.0,
        gt=0,
        le=86_400,
        description="a running job that says nothing (no log line, no progress) for this long "
        "shows as stalled (stopped or hung) in health, the CLI and the TUI",
    )
    warm_engine_idle_s: float = Field(
        600.0,
        ge=0,
        le=86_400,
        description="seconds the warm engine host (torch and transformers imported once, each "
        "local job forked from it; Linux) waits for a job before it leaves (0: no host, every "
        "job imports them itself)",
    )
    memory_limit_gb: float = Field(
        0,
        ge=0,
        le=65536,
        description="GiB of address space a job may use before its allocations fail (0: none; "
        "keep 0 for CUDA jobs); either way, on Linux a job's private memory may not exceed the "
        "machine's",
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="where jobs run: local (child processes of the daemon) or ray (a Ray "
        "cluster at ray_address; needs the ray extra)",
    )
    ray_address: str = Field(
        "auto",
        description="the Ray cluster: its dashboard (http://head:8265), a Ray Client address "
        "(ray://head:10001), or auto (the cluster this machine belongs to)",
    )
    ray_gpus_per_job: float = Field(
        1,
        ge=0,
        le=64,
        description="GPUs a model-loading job asks of the Ray cluster (0 on a CPU-only cluster)",
    )
    ray_cpus_per_job: float = Field(
        1,
        gt=0,
        le=1024,
        description="CPUs a job asks of the Ray cluster; its torch threads follow (Ray sets "
        "OMP_NUM_THREADS to it)",
    )
    ray_lost_after_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="seconds without an answer from the Ray cluster before its jobs fail",
    )


class EventsConfig(_Section):
    subscriber_queue: int = Field(
        10_000,
        ge=100,
        le=1_000_000,
        description="events buffered per subscriber before it is dropped",
    )


class AgentConfig(_Section):
    allowed_roots: list[str] = Field(
        default_factory=lambda: ["~"], description="sources must lie inside one of these folders"
    )
    rescan_interval_s: float = Field(
        300.0, ge=1, le=86_400, description="seconds between rescans of every source"
    )
    min_commits: int = Field(
        3, ge=1, description="new commits a source needs before a mission is proposed"
    )
    min_tokens: int = Field(
        2000, ge=0, description="new material (approximate tokens) a mission needs"
    )
    base_model: str = Field(
        "tiny-llama",
        description="the base model missions train: anything `forge models ls` shows (a name, "
        "an id, a folder)",
    )
    max_seq_len: int = Field(
        MISSION_MAX_SEQ_LEN,
        ge=64,
        le=131072,
        description="tokens per example in missions: datasets are cut to fit it in the base "
        "model's own tokens, and train and eval use it",
    )
    min_gain_pct: float = Field(
        2.0,
        ge=0,
        le=100,
        description="a mission deploys only when its adapter lowers the held-out loss by more than"
        " this % against the source's current adapter (else the base), and the change's 95 %"
        " interval over the held-out rows is all gain; anything less is no measurable change",
    )
    general_dataset: str = Field(
        "",
        description="your own general examples (a dataset id or a JSONL file in the data dir),"
        " scored as the general held-out set instead of the base's answers to forge's prompts",
    )
    max_regression_pct: float = Field(
        2.0,
        ge=0,
        le=100,
        description="a mission does not deploy an adapter whose held-out loss on old material or"
        " general text is more than this % worse than the base's or the current adapter's",
    )
    max_train_minutes: float = Field(
        30.0,
        gt=0,
        le=10080,
        description="wall-time budget of a mission, approval to done: the plan divides it among"
        " its training, evaluation and deploy",
    )
    calibrate: bool = Field(
        True,
        description="before the first mission on a base model, measure its speed and memory "
        "here in a few real steps (the mission is listed meanwhile), so every plan has an ETA",
    )
    replay_fraction: float = Field(
        0.1, ge=0, le=1, description="share of unchanged files replayed in incremental datasets"
    )
    quiet_hours: str = Field(
        "",
        pattern=r"^$|^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$",
        description='approved missions wait out this daily window, e.g. "09:00-18:00"; "" for none',
    )
    debounce_s: float = Field(
        5.0, ge=0, le=3600, description="quiet seconds after a commit before the source is scanned"
    )


class AdvisorConfig(_Section):
    model: str = Field(
        "", description='litellm model id ("openai/gpt-4o-mini", "ollama/llama3.2"); "" for none'
    )
    api_base: str = Field("", description="the provider's URL, for local or proxied servers")
    api_key_env: str = Field("", description="name of the environment variable with the key")
    qa_pairs: int = Field(0, ge=0, le=20, description="Q/A pairs to synthesise per docs section")
    timeout_s: float = Field(30.0, gt=0, le=600, description="seconds per advisor request")


class TuiConfig(_Section):
    theme: Literal["dark", "light", "ansi"] = Field(
        "dark",
        description='colours of `forge tui`: "dark", "light", or "ansi" (the terminal\'s own)',
    )
    reduced_motion: bool = Field(False, description="no animations in the TUI")
    notify_job_finished: bool = Field(True, description="a TUI notification when a job completes")
    notify_job_failed: bool = Field(True, description="a TUI notification when a job fails")
    notify_mission_proposed: bool = Field(
        True, description="a TUI notification when the agent proposes a mission"
    )
    keys: dict[str, str] = Field(
        default_factory=dict,
        description='TUI keys by binding id, e.g. {"mission.approve" = "A"}; ids in the guide',
    )


class ModelsConfig(_Section):
    folders: list[str] = Field(
        default_factory=list,
        description="folders holding base models (each a transformers model folder), listed too",
    )
    hf_cache: bool = Field(True, description="list the models in the Hugging Face cache")


class OllamaConfig(_Section):
    host: str = Field("", description='the Ollama server; "" for $OLLAMA_HOST or 127.0.0.1:11434')
    deploy_missions: bool = Field(
        True,
        description="an approved mission ends with a deploy when its adapter beats the deployed "
        "model",
    )
    bases: dict[str, str] = Field(
        default_factory=dict,
        description="base model → the same model in Ollama, to deploy adapters onto it, e.g. "
        '{"meta-llama/Llama-3.2-1B-Instruct" = "llama3.2:1b"}; others are merged and uploaded',
    )
    system: str = Field("", description="system prompt of the deployed models")
    parameters: dict[str, str] = Field(
        default_factory=dict,
        description='Modelfile parameters of the deployed models, e.g. {"num_ctx" = "4096"}',
    )


class TrackingConfig(_Section):
    """Where train and eval metrics go besides the store: tools people already look at."""

    tensorboard: bool = Field(
        False,
        description="also write train and eval metrics as TensorBoard event files, one folder per"
        " job (the `tracking` extra)",
    )
    tensorboard_dir: str = Field(
        "", description='where those folders go; "" for tensorboard/ in the data dir'
    )
    mlflow_uri: str = Field(
        "",
        description="also log params and metrics to this MLflow tracking URI, one run per job"
        ' (http://host:5000, sqlite:///path/mlflow.db; the `tracking` extra); "" for none',
    )
    mlflow_experiment: str = Field("ai-forge", description="the MLflow experiment of those runs")


class McpConfig(_Section):
    """What a coding agent may do through `forge mcp`."""

    allow_approve: bool = Field(
        False,
        description="let agents approve missions through `forge mcp` (off: a person approves,"
        " and the tool says how)",
    )


class HostConfig(_Section):
    """A machine `forge --host NAME` drives: `[hosts.NAME]` with these keys."""

    target: str = Field(pattern=r"^ssh://[^/\s]+$", description="where: ssh://[user@]host[:port]")
    forge: str = Field("forge", description="the forge command on that machine")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="its environment for forge there",
    )


class Config(_Section):
    daemon: DaemonConfig = DaemonConfig()
    jobs: JobsConfig = JobsConfig()
    events: EventsConfig = EventsConfig()
    agent: AgentConfig = AgentConfig()
    advisor: AdvisorConfig = AdvisorConfig()
    tui: TuiConfig = TuiConfig()
    models: ModelsConfig = ModelsConfig()
    ollama: OllamaConfig = OllamaConfig()
    tracking: TrackingConfig = TrackingConfig()
    mcp: McpConfig = McpConfig()
    hosts: dict[str, HostConfig] = Field(
        default_factory=dict, description="named machines for `forge --host NAME`"
    )


def implied_base_model(configured: str, bases: Sequence[str]) -> str | None:
    """The base model missions train when `agent.base_model` names none that is here: where it
    was left at its default (the tiny model, which a real install never built) and there is
    exactly one base model, that one (a person who imported one model means it); else None."""
    default = AgentConfig.model_fields["base_model"].default
    return bases[0] if configured == default and len(bases) == 1 else None


def flat_config(config: Config) -> dict[str, Any]:
    """`section.key` → value, to compare two configs key by key (what a reload changed, what
    `forge config check` finds set to other than its default)."""
    return {
        f"{section}.{key}": value
        for section, keys in config.model_dump().items()
        for key, value in keys.items()
    }


def changed_keys(old: Config, new: Config) -> list[str]:
    """The `section.key`s whose values differ, sorted."""
    before, after = flat_config(old), flat_config(new)
    return sorted(key for key, value in after.items() if before.get(key) != value)


class ConfigError(ValueError):
    """A config file that cannot be used; the message says which key, where, and why."""


def load_config(path: Path) -> Config:
    """Read and validate `path`; the defaults when it does not exist."""
    if not path.exists():
        return Config()
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw_bytes[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (byte {raw_bytes[exc.start]:#04x} at offset {exc.start})"
        ) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, text, exc)) from exc


def _describe(path: Path, text: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        line = _line_of(text, [str(p) for p in err["loc"]])
        where = f"{path}:{line}" if line else str(path)
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        got = "" if err["type"] == "missing" else f" (got {err['input']!r})"
        lines.append(f"{where}: {key}: {msg}{got}")
    return "invalid config:\n  " + "\n  ".join(lines)


_TABLE = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def _line_of(text: str, loc: list[str]) -> int | None:
    """The 1-based line where the dotted key `loc` is set, found by a plain scan of the file."""
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if m := _TABLE.match(line):
            table = [p.strip().strip("\"'") for p in m.group(1).split(".")]
            if table == loc:
                return number
            continue
        if m := _KEY.match(line):
            key = [p.strip().strip("\"'") for p in m.group(1).split(".")]
            if table + key == loc[: len(table) + len(key)]:
                return number
    return None


def default_config_text() -> str:
    """A commented config file with every key at its default, for `forge config init` and docs."""
    out: list[str] = []
    for section, field in Config.model_fields.items():
        if section == "hosts":  # a table of named machines, none by default: shown as an example
            out += [
                "# Named machines for `forge --host NAME` (none by default), one table each:",
                "# [hosts.gpu-box]",
                *(
                    f"# {name} = {example}  ({sub.description})"
                    for (name, sub), example in zip(
                        HostConfig.model_fields.items(),
                        (
                            '"ssh://me@gpu-box"',
                            '"~/ai-forge/.venv/bin/forge"',
                            '{FORGE_HOME = "/data/forge"}',
                        ),
                        strict=True,
                    )
                ),
                "",
            ]
            continue
        model: Any = field.default
        out.append(f"[{section}]")
        for name, sub in type(model).model_fields.items():
            if sub.description:
                out.append(f"# {sub.description}")
            value = getattr(model, name)
            if isinstance(value, str):
                rendered = f'"{value}"'
            elif isinstance(value, list):
                rendered = "[" + ", ".join(f'"{v}"' for v in value) + "]"
            elif isinstance(value, dict):
                rendered = "{" + ", ".join(f'"{k}" = "{v}"' for k, v in value.items()) + "}"
            else:
                rendered = str(value).lower()
            out.append(f"{name} = {rendered}")
        out.append("")
    return "\n".join(out)
