"""The baseline the training benches compare with: what a person would write with
`transformers.Trainer` + PEFT, one example per row, padded per batch, LoRA on every projection."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine.data import IGNORE

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def peft_lora(base: Path, rank: int) -> Any:
    """The base model with LoRA of `rank` (alpha 2 × rank) on every projection, seeded."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=PROJECTIONS, task_type="CAUSAL_LM"),
    )


def trainer_settings(
    out: Path, rows: int, lr: float, max_steps: int, warmup_steps: int
) -> dict[str, Any]:
    """What `Trainer` and TRL's `SFTTrainer` are both given: one epoch (or `max_steps`), a
    cosine schedule after `warmup_steps`, no logging, saving or reporting, seed 0."""
    import torch

    return dict(
        output_dir=str(out),
        per_device_train_batch_size=rows,
        num_train_epochs=1,
        max_steps=max_steps,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        warmup_steps=warmup_steps,
        logging_steps=10**6,
        save_strategy="no",
        report_to=[],
        seed=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )


def trainer_peft(
    base: Path,
    tokenizer: Any,
    features: list[dict[str, list[int]]],
    out: Path,
    *,
    rank: int,
    lr: float,
    rows: int,
    max_steps: int = -1,
    warmup_steps: int = 0,
) -> tuple[Any, Any, float]:
    """Train one epoch (or `max_steps`); returns the PEFT model, the Trainer and the seconds
    `train()` took."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    model = peft_lora(base, rank)
    args = TrainingArguments(**trainer_settings(out, rows, lr, max_steps, warmup_steps))
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE)
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=collator)
    started = time.perf_counter()
    trainer.train()
    return model, trainer, time.perf_counter() - started
