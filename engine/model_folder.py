"""Checks that a folder holds a usable base model, reading headers rather than weights.

Used for the tiny model after it is built and for any model folder a person points us at, so a
missing tokenizer or a torn download is found before a training job spends time on it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from engine.errors import EngineError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def inspect_model_folder(path: Path) -> dict[str, Any]:
    """What the folder holds (architecture, parameter count, tokenizer); EngineError if unusable."""
    if not path.is_dir():
        raise EngineError(f"{path}: not a folder")
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EngineError(f"{config_file}: missing; is this a transformers model folder?") from exc
    except json.JSONDecodeError as exc:
        raise EngineError(f"{config_file}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        raise EngineError(f"{path}: no tokenizer ({' or '.join(TOKENIZER_FILES)})")
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not sorted(path.glob("pytorch_model*.bin")):
        raise EngineError(f"{path}: no weights (*.safetensors or pytorch_model*.bin)")
    parameters = sum(_count_safetensors(w) for w in weights) if weights else None
    tokenizer_config: dict[str, Any] = {}
    tc_file = path / "tokenizer_config.json"
    if tc_file.exists():
        tokenizer_config = json.loads(tc_file.read_text(encoding="utf-8"))
    has_template = (
        bool(tokenizer_config.get("chat_template")) or (path / "chat_template.jinja").exists()
    )
    return {
        "architecture": (config.get("architectures") or [config.get("model_type", "unknown")])[0],
        "model_type": config.get("model_type"),
        "parameters": parameters,
        "vocab_size": config.get("vocab_size"),
        "hidden_size": config.get("hidden_size"),
        "layers": config.get("num_hidden_layers"),
        "has_chat_template": has_template,
        "weights": [w.name for w in weights],
    }


def _count_safetensors(file: Path) -> int:
    """Parameters in one safetensors file, from its JSON header alone."""
    try:
        with file.open("rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            if size <= 0 or size > 100 * 1024 * 1024:
                raise EngineError(f"{file}: not a safetensors file (header size {size})")
            header = json.loads(fh.read(size))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngineError(f"{file}: unreadable safetensors header: {exc}") from exc
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in info["shape"]:
            count *= int(dim)
        total += count
    return total


def weights_digest(path: Path) -> str:
    """sha256 over the weight and tokenizer files: equal digests mean identical models."""
    digest = hashlib.sha256()
    for file in [*sorted(path.glob("*.safetensors")), path / "tokenizer.json"]:
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
