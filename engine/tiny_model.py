"""The tiny local Llama: the embedded default model of the demo and the tests.

A byte-level BPE tokenizer trained with `tokenizers` on local text, with a chat template, and a
randomly initialised 4-layer Llama of about 1.3 M parameters. Built from a fixed corpus and a
fixed seed, so the same params give byte-identical files on every machine, in seconds on a CPU,
with nothing downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from forge_api.jobs import PrepareModelParams

PAD, BOS, END = "<|pad|>", "<|bos|>", "<|end|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
SPECIAL_TOKENS = [PAD, BOS, END, *ROLE_TOKENS]

# Each turn is `<|role|>\n…<|end|>\n`. The assistant's text sits in a {% generation %} block so
# `return_assistant_tokens_mask` can mask the loss to the answer tokens.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + '<|end|>' }}"
    "{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# The same conversation format as a Go template, for the model Ollama serves after a deploy.
OLLAMA_TEMPLATE = (
    "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n"
)
OLLAMA_STOP = [END]


def corpus_lines(extra: list[str]) -> Iterator[str]:
    """The bundled corpus, then any extra files the person named (errors name the file)."""
    yield from (
        resources.files("engine")
        .joinpath("assets/tiny_corpus.txt")
        .read_text(encoding="utf-8")
        .splitlines()
    )
    for name in extra:
        path = Path(name).expanduser()
        try:
            yield from path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            raise EngineError(f"params.corpus: cannot read {path}: {exc.strerror}") from exc


def train_tokenizer(params: PrepareModelParams, out_dir: Path) -> None:
    """Train the BPE tokenizer and save it as a transformers fast tokenizer in `out_dir`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=params.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(params.corpus), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=ROLE_TOKENS,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)


def build_model(params: PrepareModelParams, tokenizer_dir: Path, out_dir: Path) -> int:
    """Initialise the Llama from `params.seed`, save it with the tokenizer; returns #params."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if params.hidden_size % params.heads:
        raise EngineError(
            f"params.hidden_size ({params.hidden_size}) must be a multiple of params.heads "
            f"({params.heads})"
        )
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    kv_heads = params.heads // 2 if params.heads % 2 == 0 else params.heads
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=params.hidden_size,
        intermediate_size=(params.hidden_size * 11 // 4 + 15) // 16 * 16,
        num_hidden_layers=params.layers,
        num_attention_heads=params.heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(params.seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())


def smoke_test(model_dir: Path) -> dict[str, Any]:
    """Load the saved folder back and run one chat prompt through it: the files really work."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What does forged do?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    if not torch.isfinite(logits).all():
        raise EngineError(f"{model_dir}: the model produced non-finite logits")
    return {"probe_tokens": int(ids.shape[1])}
