"""The job spec the daemon writes to `<run-dir>/spec.json` and the engine reads back.

It is shared by both sides, so the daemon can validate a job's params at `jobs.submit`, before
anything is spawned, with the same models the engine runs with. No heavy imports here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from forge_api.deploy_mode import merges_here
from forge_api.names import JOB_MAX_SEQ_LEN, JobKind

BASE_DEFAULT = "default: the base the adapter was trained on, else tiny-llama"


class KindParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrepareModelParams(KindParams):
    """Build the tiny local Llama (the default), verify a model folder given by `path`, import
    a GGUF model (`path` = a `.gguf` file, or `ollama:NAME[:TAG]` from Ollama's store), or pull
    one from the Hugging Face Hub (`path` = `hf:ORG/NAME[@REVISION]`)."""

    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="folder name under the models dir; default: tiny-llama, or the GGUF's name",
    )
    path: str | None = Field(
        None,
        description="verify this model folder, import this .gguf file or ollama:NAME[:TAG], or"
        " pull hf:ORG/NAME[@REVISION] from the Hugging Face Hub",
    )
    vocab_size: int = Field(2048, ge=300, le=65536)
    hidden_size: int = Field(128, ge=32, le=2048, multiple_of=16)
    layers: int = Field(4, ge=1, le=32)
    heads: int = Field(4, ge=1, le=32)
    seed: int = Field(0, ge=0)
    corpus: list[str] = Field(
        default_factory=list, description="extra local text files for the tokenizer"
    )


Backend = Literal["auto", "peft", "unsloth", "mlx"]
Method = Literal["lora", "dora", "pissa", "qlora"]


class TrainParams(KindParams):
    """A fine-tuning run. `None` means: sized by the engine to this machine and model (logged)."""

    base_model: str = Field(
        "tiny-llama", description="a model folder, a name under the models dir, or a HF cache id"
    )
    dataset: str = Field(description="a dataset id (ds-…), a JSONL file, or a folder of them")
    backend: Backend = Field(
        "auto", description="auto: unsloth on CUDA when installed, mlx on Apple silicon, else peft"
    )
    method: Method = Field("lora", description="lora, dora, pissa, or qlora (4-bit, CUDA only)")
    rank: int = Field(16, ge=1, le=1024, description="LoRA rank: adapter size and capacity")
    alpha: float | None = Field(None, gt=0, description="default: 2 × rank")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["auto"] = Field(
        "auto", description="auto: the attention and MLP projections of the architecture"
    )
    general_replay: float = Field(
        0.0,
        ge=0,
        le=1,
        description="against forgetting: add this share of training rows made of the base's own"
        " answers to general prompts (not the held-out ones); 0: none",
    )
    init_adapter: str | None = Field(
        None,
        description="continue this adapter (a folder, or a train job's id) rather than start from"
        " the base: same base, method, rank and target modules; the optimizer starts fresh",
    )
    learning_rate: float | None = Field(
        None, gt=0, le=1, description="default: 5e-3 under 50 M parameters, else 2e-4"
    )
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int | None = Field(
        None, ge=0, description="default: 3% of the steps (none in runs under 34 steps)"
    )
    epochs: float = Field(1.0, gt=0, le=1000, description="passes over the training examples")
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps")
    max_minutes: float | None = Field(
        None,
        gt=0,
        le=10080,
        description="wall-time budget of the job, loading and evaluation included, across"
        " resumes: training stops in time to evaluate and save the adapter within it",
    )
    min_steps: int = Field(
        1, ge=1, le=1_000_000, description="at least this many steps: a small dataset is repeated"
    )
    batch_size: int | None = Field(
        None, ge=1, le=4096, description="default: sized to the device's free memory"
    )
    grad_accum: int = Field(1, ge=1, le=1024, description="micro-batches per optimizer step")
    gradient_checkpointing: bool | None = Field(
        None,
        description="recompute each layer's activations in the backward pass: less memory, a"
        " slower step; default: on when without it fewer than 4 rows fit",
    )
    max_seq_len: int = Field(
        JOB_MAX_SEQ_LEN, ge=16, le=131072, description="longer examples are cut"
    )
    packing: bool = Field(True, description="several short examples per row: faster")
    seed: int = Field(0, ge=0)
    val_fraction: float = Field(0.1, ge=0, lt=1, description="held out to measure the loss")
    eval_every: int = Field(0, ge=0, description="steps between evaluations; 0: at the end")
    checkpoint_every: int = Field(50, ge=1)
    early_stopping_patience: int | None = Field(None, ge=1)
    early_stopping_min_delta: float = Field(
        0.0, ge=0, description="eval loss must fall by more than this to count as better"
    )
    skip_bad_examples: bool = False
    evaluate: bool = Field(
        True,
        description="measure the held-out loss before and after training (a mission's eval job"
        " measures it on the same rows, so its train job does not)",
    )
    row_bytes: int | None = Field(
        None,
        ge=1,
        description="one row's memory at max_seq_len, as a calibration of this base measured it"
        " here: the batch is sized from it without measuring again",
    )
    calibrate: bool = Field(
        False,
        description="only measure this machine's speed and memory for the model over a few"
        " small steps (2 unless max_steps says); no evaluation, no adapter",
    )
    pissa_niter: int = Field(4, ge=0, le=64)
    devices: Annotated[int, Field(ge=1, le=64)] | Literal["all"] = Field(
        1,
        description="GPUs to train on: more than 1 (or all, where there are several) runs one"
        " process per GPU through accelerate's launcher, each on its share of every step",
    )


class EvalParams(KindParams):
    """Held-out loss and perplexity of the base, an adapter and a previous adapter."""

    base_model: str | None = Field(None, description=BASE_DEFAULT)
    dataset: str
    adapter: str | None = Field(None, description="adapter folder (a train job's run dir works)")
    previous_adapter: str | None = None
    max_seq_len: int | None = Field(
        None, ge=16, le=131072, description="default: what the adapter was trained with, or 512"
    )
    val_fraction: float = Field(0.1, ge=0, lt=1, description="0: evaluate on every example")
    max_rows: int | None = Field(
        None, ge=1, description="score at most this many held-out rows, spread over all of them"
    )
    generations: int = Field(8, ge=0, le=1000, description="answers to generate and score")
    max_new_tokens: int = Field(64, ge=1, le=4096)
    old_datasets: list[str] = Field(
        default_factory=list,
        description="earlier datasets of the same source: their held-out rows are scored as the"
        " old_material set",
    )
    general: bool = Field(
        False,
        description="also score the general set: the base's own answers to the general prompts"
        " forge ships (made once per base)",
    )
    general_dataset: str | None = Field(
        None, description="score this dataset as the general set instead (a person's own)"
    )


class MergeParams(KindParams):
    """Fold an adapter into its base and save a standalone model folder."""

    base_model: str | None = Field(None, description=BASE_DEFAULT)
    adapter: str
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ExportParams(KindParams):
    """Write what llama.cpp and Ollama load: an adapter as a GGUF LoRA adapter, or (`merged`, or
    with no adapter) a whole GGUF model, by llama.cpp's own converter."""

    base_model: str | None = Field(None, description=BASE_DEFAULT)
    adapter: str | None = Field(
        None, description="adapter folder (a train job's id works); none: the base model itself"
    )
    merged: bool = Field(
        False, description="fold the adapter into its base and write one whole model"
    )
    outtype: Literal["f32", "f16", "bf16", "q8_0"] = Field(
        "f16", description="the GGUF's weight type"
    )
    output: str = Field(
        pattern=r"^/.*\.gguf$",
        max_length=4096,
        description="the .gguf file to write (an absolute path; it must not exist yet)",
    )


def _export_holds(params: dict[str, Any]) -> bool:
    return bool(params.get("merged")) or not params.get("adapter")  # a whole model is read


class InferParams(KindParams):
    """Generate an answer from a base model, a base model with an adapter, or a deployed Ollama
    model, streamed as tokens."""

    base_model: str | None = Field(None, description=BASE_DEFAULT)
    adapter: str | None = Field(None, description="adapter folder (a train job's id works)")
    ollama_model: str | None = Field(
        None, max_length=200, description="ask this Ollama model instead of loading weights here"
    )
    host: str | None = Field(None, description="the Ollama server; default: $OLLAMA_HOST")
    prompt: str = Field(min_length=1, max_length=100_000)
    system: str | None = Field(None, max_length=100_000)
    max_new_tokens: int = Field(128, ge=1, le=8192)
    temperature: float = Field(0.0, ge=0, le=5, description="0: always the likeliest token")
    seed: int = Field(0, ge=0)


OLLAMA_NAME = r"^[a-z0-9][a-z0-9._-]{0,99}(:[A-Za-z0-9][A-Za-z0-9._-]{0,99})?$"
# Model files go to Ollama as they are; `auto` keeps the upload small where Ollama allows it.
DeployMode = Literal["auto", "adapter", "merged"]


class DeployParams(KindParams):
    """Create an Ollama model from an adapter (on an Ollama base) or from a merged model folder,
    then point the alias at it. The previous deployment stays until the new one is verified."""

    base_model: str | None = Field(None, description=BASE_DEFAULT)
    adapter: str | None = Field(None, description="adapter folder (a train job's run dir works)")
    merged: str | None = Field(None, description="a merged model folder to upload whole")
    tag: str = Field(pattern=OLLAMA_NAME, description="the new Ollama model, e.g. forge-repo:3")
    alias: str | None = Field(
        None, pattern=OLLAMA_NAME, description="re-pointed to the new tag once it is verified"
    )
    mode: DeployMode = Field(
        "auto",
        description="adapter: upload only the adapter onto ollama_base; merged: merge here and "
        "upload the whole model; auto: adapter where Ollama can, else merged",
    )
    ollama_base: str | None = Field(
        None, max_length=200, description="the Ollama model that is the same base, for adapters"
    )
    system: str | None = Field(None, max_length=100_000)
    template: str | None = Field(None, max_length=100_000, description="a Go template")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Modelfile PARAMETERs")
    host: str | None = Field(None, description="the Ollama server; default: $OLLAMA_HOST")

    @model_validator(mode="after")
    def _one_source(self) -> DeployParams:
        if (self.adapter is None) == (self.merged is None):
            raise ValueError("give exactly one of adapter and merged")
        if self.mode == "adapter" and self.merged is not None:
            raise ValueError("mode adapter needs an adapter, not a merged model")
        return self


def _always(_params: dict[str, Any]) -> bool:
    return True


def _infer_holds(params: dict[str, Any]) -> bool:
    return not params.get("ollama_model")  # an answer from Ollama loads nothing here


@dataclass(frozen=True)
class Kind:
    """What the daemon and the engine know of one job kind."""

    params: type[KindParams]
    runs: str
    """The engine module whose `run(spec, events)` does the job."""
    resumable: bool
    """It writes checkpoints and can continue from one after an interruption."""
    holds_accelerator: Callable[[dict[str, Any]], bool]
    """Whether a job of this kind, with these params, loads weights here (or on the CPU, where
    that is all there is); the runner runs at most `jobs.max_parallel` such jobs at once."""


# Every job kind, in one place: adding one is this entry (and its name in `JobKind`, which the
# check below keeps in step) plus its engine module. A kind missing here is refused at submit.
KINDS: dict[JobKind, Kind] = {
    "prepare-model": Kind(PrepareModelParams, "engine.prepare_model", True, _always),
    "train": Kind(TrainParams, "engine.train", True, _always),
    "eval": Kind(EvalParams, "engine.evaluate", False, _always),
    "merge": Kind(MergeParams, "engine.merge", False, _always),
    "deploy": Kind(DeployParams, "engine.deploy", False, merges_here),
    "infer": Kind(InferParams, "engine.infer", False, _infer_holds),
    "export": Kind(ExportParams, "engine.gguf_export", False, _export_holds),
}
if set(KINDS) != set(get_args(JobKind)):  # pragma: no cover - a contract edited in one place
    raise ImportError(f"JobKind {get_args(JobKind)} and KINDS {tuple(KINDS)} disagree")


def kind_of(name: str) -> Kind | None:
    """The table's entry for a kind named on the wire or in a spec; None if there is none."""
    return KINDS.get(cast(JobKind, name))


def holds_accelerator(kind: str, params: dict[str, Any]) -> bool:
    """Whether a job loads weights here: an Ollama answer does not, a deploy that merges does."""
    entry = kind_of(kind)
    return entry is not None and entry.holds_accelerator(params)


def resumable(kind: str) -> bool:
    entry = kind_of(kind)
    return entry is not None and entry.resumable


class UnknownKind(ValueError):
    pass


def parse_params(kind: str, params: dict[str, Any]) -> KindParams:
    """Validate `params` for `kind`; raises pydantic.ValidationError or UnknownKind."""
    entry = kind_of(kind)
    if entry is None:
        raise UnknownKind(
            f"job kind {kind!r} is not available in this version of forge; "
            f"available: {', '.join(sorted(KINDS))}"
        )
    return entry.params.model_validate(params)


class TrackingSpec(BaseModel):
    """Where a job's metrics go besides its event stream (from `[tracking]`, resolved)."""

    model_config = ConfigDict(extra="forbid")

    run_name: str
    tensorboard_dir: str | None = None
    """This job's own folder of TensorBoard event files; None: none."""
    mlflow_uri: str | None = None
    mlflow_experiment: str = "ai-forge"


class JobSpec(BaseModel):
    """Everything a child process needs to run one job, and nothing it must ask the daemon."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    kind: JobKind
    params: dict[str, Any]
    run_dir: str
    models_dir: str
    datasets_dir: str
    attempt: int = 1
    resume_from: str | None = None
    memory_limit_bytes: int | None = None
    """The most address space the process may take (jobs.memory_limit_gb); None: no limit."""
    tracking: TrackingSpec | None = None

    def typed_params(self) -> KindParams:
        return parse_params(self.kind, self.params)
