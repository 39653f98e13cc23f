"""The strongest baseline a person would write today: TRL's `SFTTrainer` with packing, on the same
tokenized examples (answer-only loss through a completion mask), the same LoRA settings as
`bench.peft_trainer`, and the same seed.

TRL 1.0.0 is the one used here: later versions (1.15, the newest Unsloth accepts) fuse the LM
head with Triton and do not train on a CPU-only torch. TRL warns that packing without
flash-attention lets examples attend to each other; transformers derives a block-diagonal mask
from the position ids TRL's padding-free packing passes, as it does for ours.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.peft_trainer import peft_lora, trainer_settings
from engine.data import IGNORE


def trl_sft(
    base: Path,
    tokenizer: Any,
    features: list[dict[str, list[int]]],
    out: Path,
    *,
    rank: int,
    lr: float,
    rows: int,
    seq: int,
    max_steps: int = -1,
    warmup_steps: int = 0,
    strategy: str = "bfd",
) -> tuple[Any, Any, float]:
    """Train one epoch (or `max_steps`) of `rows` packed sequences of `seq` tokens per step;
    returns the PEFT model, the trainer and the seconds `train()` took."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model = peft_lora(base, rank)
    data = Dataset.from_list(
        [
            {
                "input_ids": f["input_ids"],
                "completion_mask": [int(label != IGNORE) for label in f["labels"]],
            }
            for f in features
        ]
    )
    args = SFTConfig(
        **trainer_settings(out, rows, lr, max_steps, warmup_steps),
        max_length=seq,
        packing=True,
        packing_strategy=strategy,
        # Ours does not checkpoint at this size either; TRL's default (on) costs it a third.
        gradient_checkpointing=False,
        # TRL turns bf16 autocast on by default; on a CPU without bf16 units that is several
        # times slower, and ours (and the Trainer baseline) train in float32 there.
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        completion_only_loss=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    return model, trainer, time.perf_counter() - started
