"""The job spec the daemon writes to `<run-dir>/spec.json` and the engine reads back.

It is shared by both sides, so the daemon can validate a job's params at `jobs.submit`, before
anything is spawned, with the same models the engine runs with. No heavy imports here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from forged.schema import JobKind

# Jobs that load a model with torch and hold the accelerator (or the CPU, where that is all there
# is); the runner runs at most `jobs.max_parallel` of these at once. `deploy` only talks to Ollama.
ACCELERATOR_KINDS: frozenset[str] = frozenset({"prepare-model", "train", "eval", "merge", "infer"})


class KindParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrepareModelParams(KindParams):
    """Build the tiny local Llama (the default), or verify a model folder given by `path`."""

    name: str = Field(
        "tiny-llama",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="folder name under the models dir",
    )
    path: str | None = Field(None, description="verify this model folder instead of building")
    vocab_size: int = Field(2048, ge=300, le=65536)
    hidden_size: int = Field(128, ge=32, le=2048, multiple_of=16)
    layers: int = Field(4, ge=1, le=32)
    heads: int = Field(4, ge=1, le=32)
    seed: int = Field(0, ge=0)
    corpus: list[str] = Field(
        default_factory=list, description="extra local text files for the tokenizer"
    )


# The job kinds this engine runs, with the params each takes. A kind that is missing here is
# refused at submit with a message that says so.
KIND_PARAMS: dict[str, type[KindParams]] = {
    "prepare-model": PrepareModelParams,
}

# Kinds that write checkpoints and can continue from one after an interruption.
RESUMABLE_KINDS: frozenset[str] = frozenset({"prepare-model"})


class UnknownKind(ValueError):
    pass


def parse_params(kind: str, params: dict[str, Any]) -> KindParams:
    """Validate `params` for `kind`; raises pydantic.ValidationError or UnknownKind."""
    model = KIND_PARAMS.get(kind)
    if model is None:
        raise UnknownKind(
            f"job kind {kind!r} is not available in this version of forge; "
            f"available: {', '.join(sorted(KIND_PARAMS))}"
        )
    return model.model_validate(params)


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

    def typed_params(self) -> KindParams:
        return parse_params(self.kind, self.params)
