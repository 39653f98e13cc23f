"""What a mission holds beyond its stage: the material that triggered it, its dataset's card,
the training plan, the measured speed behind its ETA, and what each step of its chain left.

One model for the daemon that writes it (the source scanner proposes, the mission chain adds
each step's outcome), the TUI and the CLI that show it. Every part is optional: a mission
gains them step by step, and one written by an older daemon may lack some. Keys this model
does not name are kept as they came (`extra="allow"`), so nothing stored is lost on a read.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class Part(BaseModel):
    """Base of the parts: unknown keys kept, so an older or newer store reads whole; only the
    fields that were set are written (to the store and the wire), so a record holds what its
    steps said and no row of nulls."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _only_set(self, write: SerializerFunctionWrapHandler) -> dict[str, Any]:
        kept = self.model_fields_set | set(self.model_extra or {})
        return {k: v for k, v in write(self).items() if k in kept}

    def changes(self) -> dict[str, Any]:
        """The fields set on this value, as JSON: what the store merges into what it holds."""
        return self.model_dump(mode="json")


class Trigger(Part):
    """The new material at the scan that proposed the mission, and why it was enough."""

    commits: int = 0
    files: int = 0
    approx_tokens: int = 0
    since: str | None = None
    why: str = ""


class SecretsLeftOut(Part):
    """Files and examples a dataset build left out for holding a secret, by kind of secret."""

    files_skipped: int = 0
    examples_dropped: int = 0
    found: dict[str, int] = {}
    left_out: list[dict[str, str]] = []
    """Each file left out: `file`, and `why` (a credential file, or the kinds it holds)."""
    dropped: list[dict[str, str]] = []
    """Each example dropped: `example` (its builder, and its first line where that only names
    it), and `why`."""
    redacted: list[dict[str, str]] = []
    """Each file (`file`) or example (`example`) kept with its secrets redacted in place, and
    `why`: how many values and of what kinds."""
    values_redacted: int = 0
    first_pass: str = ""
    """How Kingfisher's pass over the history went (`ran: N findings in S s`, or why not)."""


class DatasetCard(Part):
    """What a dataset holds and how it was built (`card.json` beside its files)."""

    source: str | None = None
    repository: str | None = None
    version: int | None = None
    commit: str | None = None
    since: str | None = None
    built_at: float | None = None
    examples: int = 0
    approx_tokens: int | None = None
    tokenizer: str | None = None
    max_seq_len: int | None = None
    per_builder: dict[str, int] = {}
    kept_per_builder: dict[str, int] = {}
    skipped: dict[str, int] = {}
    samples: dict[str, list[Any]] = {}
    secrets: SecretsLeftOut | None = None
    imported_from: str | None = None
    """For a dataset imported from a file (`forge datasets import`): that file, its size and the
    SHA-256 of its content (the same content imported again is the same dataset)."""
    bytes: int | None = None
    sha256: str | None = None


class Plan(Part):
    """The train job a mission will run: its params (train params, as the job takes them),
    the examples it covers, and the params a person changed before approving."""

    kind: str = "train"
    params: dict[str, Any] = {}
    examples: int = 0
    changed: list[str] = []


class Measured(Part):
    """What a train job of the base model measured on this machine (`measured.json`)."""

    device: str | None = None
    max_seq_len: int | None = None
    bytes_per_row: int | None = None
    available_bytes: int | None = None
    batch_size: int | None = None
    tokens_per_s: float | None = None
    load_s: float | None = None
    eval_tokens_per_s: float | None = None
    gen_step_s: float | None = None
    plain_bytes_per_row: int | None = None


class Timing(Part):
    """How the mission's time budget is divided (`agent.mission_time.schedule`): the train
    job's own budget and least steps, what its eval scores, and what each part should take."""

    train_budget_s: float | None = None
    min_steps: int | None = None
    eval_rows: int | None = None
    generations: int | None = None
    max_new_tokens: int | None = None
    train_s: float | None = None
    eval_s: float | None = None
    deploy_s: float | None = None
    eta_s: float | None = None


class ModelScore(Part):
    """One model's held-out loss, perplexity and change in loss against the base (%)."""

    loss: float
    perplexity: float | None = None
    change_pct: float | None = None


class SetScores(Part):
    """One held-out set's losses, by model (`base`, `current`, `new`), each with its change
    against the base (%)."""

    models: dict[str, ModelScore] = {}


class EvalResults(Part):
    """The eval's verdict: a score per model (`base`, `deployed`, `new adapter`) on the new
    material, the same by held-out set (`new_material`, `old_material`, `general`), and a line."""

    models: dict[str, ModelScore] = {}
    sets: dict[str, SetScores] = {}
    summary: str = ""


class Gate(Part):
    """What a mission's adapter must show to be deployed, fixed when it is proposed."""

    min_gain_pct: float
    """Lower held-out loss on new material than its rival (deployed, else base) by more than."""
    max_regression_pct: float
    """No more worse than this on old material or general text, against base and current."""


class MissionData(Part):
    """Everything a mission learned, from its proposal to its deploy."""

    head: str | None = None
    """The commit the mission's material reaches."""
    trigger: Trigger | None = None
    dataset_id: str | None = None
    card: DatasetCard | None = None
    base_model: str | None = None
    plan: Plan | None = None
    eta_s: float | None = None
    """The whole mission, approval to done, on this machine; None until it is measured."""
    timing: Timing | None = None
    measuring: bool | None = None
    """True while the calibration behind the ETA runs (the mission is shown meanwhile)."""
    measured: Measured | None = None
    rationale: str | None = None
    previous_adapter: str | None = None
    """The source's current adapter, which the new one is compared with and continues: the
    deployed one, else the last one that passed its mission's gate."""
    gate: Gate | None = None
    continues: str | None = None
    """What the train job continues, in words (the source's adapter, what it was trained on);
    None where it starts from the base."""
    fresh_start: str | None = None
    """Why the train job starts from the base although the source has an adapter."""
    held_until: float | None = None
    """The end of the quiet hours the train job waits for."""
    train_job: str | None = None
    eval_job: str | None = None
    deploy_job: str | None = None
    adapter: str | None = None
    results: EvalResults | None = None
    deploy: str | None = None
    """The deploy decision, in words (deploying as …, or not deployed and why)."""
    deployed: str | None = None
    """The Ollama tag the mission deployed."""
    gate_passed: bool | None = None
    """Whether the adapter passed the gate (deployed or not: Ollama may be off): only such an
    adapter becomes its source's current one without Ollama."""
