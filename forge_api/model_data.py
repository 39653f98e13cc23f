"""What the registry knows about a model beyond its kind, name and path.

A base model: its architecture and size, read from its folder, and which backends can train it
here. An adapter: how it was trained, the source and commit it covers, its eval scores. An
Ollama tag: where it serves, what it was built from, the alias it may serve as. One model for
the daemon that writes it (the engine's artifact fields, then the registry as jobs finish) and
for the TUI and CLI that show it. Keys it does not name are kept (`extra="allow"`).
"""

from __future__ import annotations

from typing import Any

from forge_api.mission_data import Part

Scores = dict[str, dict[str, float]]
"""Eval metrics by candidate (`base`, `previous`, `adapter`): scores["adapter"]["eval_loss"]."""


class Verdict(Part):
    """Whether a backend can train a model here, and why (not)."""

    ok: bool
    why: str = ""


class ModelData(Part):
    # A base model (and a merged one): what its folder holds.
    architecture: str | None = None
    model_type: str | None = None
    parameters: int | None = None
    vocab_size: int | None = None
    hidden_size: int | None = None
    layers: int | None = None
    has_chat_template: bool | None = None
    weights: list[str] | None = None
    size_bytes: int | None = None
    hf_id: str | None = None
    trainable: dict[str, Verdict] | None = None
    """By backend (`peft`, `unsloth`, `mlx`)."""
    problem: str | None = None
    """Why the model cannot be used (its folder is gone or unreadable)."""
    imported: dict[str, Any] | None = None
    pulled: dict[str, Any] | None = None
    sha256: str | None = None

    # An adapter: how it was made and what it covers.
    dataset: str | None = None
    method: str | None = None
    rank: int | None = None
    eval_loss: float | None = None
    backend: str | None = None
    mission_id: str | None = None
    dataset_id: str | None = None
    commit: str | None = None
    source_id: str | None = None
    source: str | None = None
    eval: Scores | None = None
    eval_job: str | None = None

    # A merged model: what it was merged from, and how far its logits are from the adapter's.
    adapter: str | None = None
    max_logit_diff: float | None = None

    # An Ollama tag: where it serves and what it serves as.
    host: str | None = None
    alias: str | None = None
    mode: str | None = None
    merged: str | None = None
    current: bool | None = None
    """This tag is what its alias serves now."""
    uploaded_bytes: int | None = None
    details: dict[str, Any] | None = None
    """What Ollama says of the tag (format, family, parameter size, quantization)."""
    deploy_job: str | None = None
    adapter_model_id: str | None = None
