"""The `train` job: a LoRA-family adapter trained on a dataset, on this machine's accelerator.

One loop serves every backend that runs through PyTorch: the backend only decides how the model
is loaded and wrapped (PEFT, or Unsloth's FastLanguageModel on CUDA). Examples are packed into
full rows, so no step is spent on padding; that is where most of the speed over a padded
Trainer comes from on every device.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import checkpoint, control
from engine.backends import choose_backend, device_name
from engine.batching import LOSS_CHUNK, collate, loss_sum
from engine.calibration import eval_speeds
from engine.continuation import continue_adapter
from engine.data import Row
from engine.data_parallel import Ranks, data_parallel_backend, join, leave
from engine.errors import EngineError
from engine.events import Emitter
from engine.held_out import replay_rows, sets_folder
from engine.memory_probe import Measured, available_bytes, batch_for, measure_row, row_floor
from engine.model_source import TRAINING_RECORD, resolve_base
from engine.train_loop import Optimizing, Outcome, TrainLoop
from engine.train_setup import (
    Data,
    pick_targets,
    prepare_data,
    size_learning_rate,
    use_physical_cores,
)
from forge_api.jobs import JobSpec, TrainParams
from forge_api.run_dir import RunDir


def target_modules(model: Any, asked: list[str] | str) -> list[str]:
    return pick_targets({name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}, asked)


CALIBRATION_STEPS = 2
CALIBRATION_TOKENS = 1024
"""A calibration measures speed per token, which a CPU or GPU keeps at any batch that fills it,
so it runs two small steps (at most this many tokens each) rather than the plan's batch: on a
135 M model on two cores that is about 40 s instead of minutes before a mission is shown."""


CHECKPOINTING_BELOW_ROWS = 4
"""With `gradient_checkpointing` left to the engine, it is turned on when fewer rows than this
fit without it: a batch that grows pays for the recomputation; one that fits does not need it."""


def set_checkpointing(model: Any, on: bool) -> None:
    """Gradient checkpointing of the decoder layers on or off (non-reentrant: no input grads)."""
    if on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def size_batch(
    p: TrainParams, model: Any, rows: list[Row], pad_id: int, device: str, limit: int | None
) -> tuple[Measured, str, bool]:
    """Rows per micro-batch, from one measured forward and backward pass on the longest row
    (or from the calibration's measure, `row_bytes`), with the reason the person is shown, and
    whether gradient checkpointing is on."""
    longest = max(rows, key=lambda r: r.tokens)
    floor = row_floor(model, p.max_seq_len, LOSS_CHUNK)
    floored: list[int] = []  # measures below the floor: memory the allocator already held

    def fit() -> tuple[int | None, int, int]:
        def one_row() -> None:
            with control.interruptible():
                s, _ = loss_sum(model, collate([longest], pad_id, device))
                s.backward()

        per_row = measure_row(one_row, device)
        model.zero_grad(set_to_none=True)
        free = available_bytes(device, limit)
        if per_row is not None:  # rows are at most max_seq_len; memory grows with the tokens
            per_row = per_row * p.max_seq_len // max(longest.tokens, 1)
            if per_row < floor:
                floored.append(per_row)
                per_row = floor
        return per_row, batch_for(per_row, free, device, p.max_seq_len) if per_row else 1, free

    checkpointing = bool(p.gradient_checkpointing)
    if checkpointing:
        set_checkpointing(model, True)
    plain: int | None = None  # a row's memory without checkpointing, measured first or given
    per_row: int | None
    whose, said = "", ""  # where the row's measure came from; what changed the batch
    if p.row_bytes and not checkpointing:
        plain, free = p.row_bytes, available_bytes(device, limit)
        per_row, fits = plain, batch_for(plain, free, device, p.max_seq_len)
        whose = " (the calibration's measure)"
    else:
        per_row, fits, free = fit()
        plain = None if checkpointing else per_row
    auto = p.gradient_checkpointing is None and not p.batch_size
    if auto and per_row and fits < CHECKPOINTING_BELOW_ROWS:
        # Measured with checkpointing on: the first pass of a job given `row_bytes` (a true
        # measure), else a second one (on a CPU the allocator may hold the first's memory).
        set_checkpointing(model, True)
        again = fit()
        if again[0] and again[1] > fits:
            said = f"; gradient checkpointing on: {again[1]} rows fit with it, {fits} without"
            (per_row, fits, free), checkpointing = again, True
        else:
            set_checkpointing(model, False)
    measured = Measured(device, p.max_seq_len, per_row or 0, free, p.batch_size or fits)
    measured.plain_bytes_per_row = plain
    seen = (
        f"one row of {p.max_seq_len} tokens takes {per_row / 2**20:,.1f} MiB{whose}"
        if per_row
        else "this machine cannot measure a row's memory"
    )
    if floored and per_row == floor:
        seen += (
            f" (measured {floored[-1] / 2**20:,.1f} MiB, less than its layers' inputs alone:"
            " memory the allocator already held)"
        )
    if p.batch_size:
        warn = "" if p.batch_size <= fits or not per_row else f"; more than the {fits} that fit"
        return measured, f"asked for ({seen}, {free / 2**30:.1f} GiB free{warn})", checkpointing
    reason = f"{seen}, {free / 2**30:.1f} GiB free on {device}: batch {fits}{said}"
    return measured, reason, checkpointing


def load_model(p: TrainParams, base: Path, backend: str, device: str, events: Emitter) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model

    alpha = p.alpha or 2 * p.rank
    if p.init_adapter and backend != "peft":
        raise EngineError(
            f"params.init_adapter: the {backend} backend does not continue an adapter yet;"
            " use backend peft"
        )
    if backend == "unsloth":
        from unsloth import FastLanguageModel  # CUDA only, imported only here

        model, _ = FastLanguageModel.from_pretrained(
            str(base), max_seq_length=p.max_seq_len, load_in_4bit=p.method == "qlora"
        )
        modules = target_modules(model, p.target_modules)
        return FastLanguageModel.get_peft_model(
            model,
            r=p.rank,
            lora_alpha=alpha,
            lora_dropout=p.dropout,
            target_modules=modules,
            random_state=p.seed,
        )
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if device == "cuda":
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if p.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, **kwargs)
    if p.method != "qlora":
        model.to(device)
    modules = target_modules(model, p.target_modules)
    if p.init_adapter:
        return continue_adapter(model, p, base, modules, events)
    init: bool | str = f"pissa_niter_{p.pissa_niter}" if p.method == "pissa" else True
    config = LoraConfig(
        r=p.rank,
        lora_alpha=alpha,
        lora_dropout=p.dropout,
        target_modules=modules,
        use_dora=p.method == "dora",
        init_lora_weights=init,
        task_type="CAUSAL_LM",
    )
    events.log(f"{p.method}: rank {p.rank}, alpha {alpha:g}, on {', '.join(modules)}")
    return get_peft_model(model, config)


def _schedule(p: TrainParams, optimizer: Any, total: int) -> Any:
    from transformers import get_scheduler

    # A warm-up step starts at rate 0: in a very short run it would be a step that learns nothing.
    warmup = p.warmup_steps if p.warmup_steps is not None else total * 3 // 100
    name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
    return get_scheduler(name[p.lr_schedule], optimizer, warmup, total)


@dataclass
class Setup:
    """What every backend's run starts from: the params, where it runs, the base model, its
    tokenizer and the prepared rows."""

    spec: JobSpec
    p: TrainParams
    backend: str
    device: str
    ranks: Ranks
    base: Path
    tokenizer: Any
    pad_id: int
    data: Data


def set_up(spec: JobSpec, events: Emitter) -> Setup:
    """The backend and device, the base model's tokenizer, and the dataset cut into rows."""
    from transformers import AutoTokenizer

    p = spec.typed_params()
    assert isinstance(p, TrainParams)
    backend, why = choose_backend(p)
    ranks = join()
    if ranks.world > 1:
        backend, why = data_parallel_backend(p.backend, backend, why)
    device = device_name()
    events.log(f"backend {backend} on {device}: {why}")
    if device == "cpu" and (threads := use_physical_cores()):
        events.log(threads)
    base = resolve_base(p.base_model, spec.models_dir)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # mlx-lm batches examples itself: it gets them one per row.
    packing = p.packing and backend != "mlx"
    data = prepare_data(
        p.dataset,
        tokenizer,
        p.max_seq_len,
        p.val_fraction,
        packing,
        p.skip_bad_examples,
        spec.datasets_dir,
    )
    skipped = sum(data.report.skipped.values())
    formats = ", ".join(f"{n} {fmt}" for fmt, n in sorted(data.report.formats.items()))
    events.log(
        f"data: {data.report.examples} examples ({formats}), "
        f"{skipped} skipped, {len(data.train)} train rows, {len(data.val)} validation rows"
    )
    for line in data.report.skipped_at:
        events.log(f"skipped {line}", level="warning")
    return Setup(spec, p, backend, device, ranks, base, tokenizer, pad_id, data)


def run(spec: JobSpec, events: Emitter) -> dict[str, Any]:
    """Train the adapter `spec` asks for; the summary the job's result holds."""
    import torch

    s = set_up(spec, events)
    if s.backend == "mlx":
        return run_mlx(s, events)
    p = s.p
    random.seed(p.seed)
    torch.manual_seed(p.seed)
    model = load_model(p, s.base, s.backend, s.device, events)
    if p.general_replay:
        s.data.train += replay(s, model, events)
    loaded_s = time.monotonic() - events.started
    pissa_init = keep_pissa_init(s, model)
    plan = plan_steps(s, model, events)
    lr, lr_reason = size_learning_rate(p, plan.n_params)
    events.log(f"learning rate {lr:g} ({p.lr_schedule}): {lr_reason}")
    optimizer = torch.optim.AdamW(
        [t for t in model.parameters() if t.requires_grad], lr=lr, weight_decay=0.0
    )
    scheduler = _schedule(p, optimizer, plan.total)
    state: dict[str, Any] = {}
    start = 0
    if spec.resume_from and Path(spec.resume_from).is_dir():
        state = checkpoint.load(Path(spec.resume_from), model, optimizer, scheduler)
        start = int(state["step"])
        events.log(f"resuming from checkpoint {spec.resume_from} at step {start}")
    run_dir = Path(spec.run_dir)
    loop = TrainLoop(
        p,
        Optimizing(model, optimizer, scheduler, RunDir(run_dir).checkpoints),
        s.data.train,
        s.data.val,
        plan.measured.batch_size,
        plan.total,
        s.pad_id,
        s.device,
        s.ranks,
        events,
        plan.measured,
        start,
        state,
    )
    outcome = loop.run_steps()
    leave(s.ranks)
    if not s.ranks.main:  # the first process evaluates, saves and speaks for the job
        return {"rank": s.ranks.rank, "steps": outcome.completed}
    measured = record_speed(s, model, plan, outcome, start, loaded_s, events)
    if p.calibrate:
        return {"calibration": True, "base_model": str(s.base), **measured.__dict__}
    final_eval = loop.evaluate(outcome.completed)
    adapter = save_adapter(s, model, pissa_init)
    if final_eval is not None:
        before = f"{outcome.first_eval:.4f} → " if outcome.first_eval is not None else ""
        events.log(f"held-out loss {before}{final_eval:.4f}; adapter saved in {adapter}")
    events.artifact(
        "adapter",
        str(adapter),
        name=f"{s.base.name}-{p.method}-{spec.job_id}",
        base=str(s.base),
        dataset=p.dataset,
        method=p.method,
        rank=p.rank,
        eval_loss=final_eval,
    )
    return {
        "adapter": str(adapter),
        "base_model": str(s.base),
        "backend": s.backend,
        "method": p.method,
        "steps": outcome.completed,
        "eval_loss": final_eval,
        "tokens_per_s": measured.tokens_per_s,
        "stopped_early": outcome.stopped_early,
        "data_share": round(outcome.data_seconds / max(outcome.seconds, 1e-9), 4),
        "data": s.data.report.as_dict(),
        # The values the engine chose where the params said None (`auto`): shown beside the
        # params (the job's Params tab, `forge jobs show`).
        "chosen": {
            "batch_size": plan.measured.batch_size,
            "learning_rate": lr,
            "alpha": p.alpha or 2 * p.rank,
            "warmup_steps": p.warmup_steps if p.warmup_steps is not None else plan.total * 3 // 100,
            "max_steps": plan.total,
            "gradient_checkpointing": plan.checkpointing,
        },
    }


def run_mlx(s: Setup, events: Emitter) -> dict[str, Any]:
    """The run on Apple silicon, through mlx-lm's own trainer."""
    from engine.mlx_backend import train_mlx

    p = s.p
    result = train_mlx(s.spec, p, s.base, s.data, events)
    events.artifact(
        "adapter",
        result["adapter"],
        name=f"{s.base.name}-mlx-{s.spec.job_id}",
        base=str(s.base),
        dataset=p.dataset,
        method=p.method,
        rank=p.rank,
        eval_loss=result["eval_loss"],
        backend="mlx",
    )
    return {
        **result,
        "backend": "mlx",
        "base_model": str(s.base),
        "method": p.method,
        "data": s.data.report.as_dict(),
    }


def replay(s: Setup, model: Any, events: Emitter) -> list[Row]:
    """`general_replay`'s rows (`engine.held_out.replay_rows`), said in the log."""
    rows = replay_rows(
        model,
        s.tokenizer,
        s.base,
        s.device,
        sets_folder(s.spec.datasets_dir),
        events,
        share=s.p.general_replay,
        train_rows=len(s.data.train),
        max_len=s.p.max_seq_len,
    )
    events.log(f"replay: {len(rows)} rows of the base's own answers to general prompts")
    return rows


def keep_pissa_init(s: Setup, model: Any) -> Path:
    """A PiSSA run keeps its initial adapter, to turn the trained one into a plain LoRA adapter
    for the untouched base; where it is (or would be)."""
    pissa_init = RunDir.of(s.spec.run_dir).pissa_init
    if s.p.method == "pissa" and not pissa_init.exists() and s.ranks.main:
        cfg = model.peft_config["default"]
        cfg.init_lora_weights, saved = True, cfg.init_lora_weights
        model.save_pretrained(pissa_init)
        cfg.init_lora_weights = saved
    s.ranks.barrier()
    return pissa_init


@dataclass
class StepPlan:
    """How many steps of how many rows, from a measured row's memory."""

    measured: Measured
    total: int
    n_params: int
    checkpointing: bool


def plan_steps(s: Setup, model: Any, events: Emitter) -> StepPlan:
    """The batch (measured, or the calibration's), the number of steps, and what it says."""
    p, ranks = s.p, s.ranks
    n_params = sum(t.numel() for t in model.parameters())
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    measured, reason, checkpointing = size_batch(
        p, model, s.data.train, s.pad_id, s.device, s.spec.memory_limit_bytes
    )
    # Every process of a data-parallel job takes the first's: their shares of a step must agree.
    batch = measured.batch_size = ranks.from_main(measured.batch_size)
    events.log(f"batch size {batch} rows of up to {p.max_seq_len} tokens: {reason}")
    if p.calibrate and not p.batch_size:
        batch = measured.batch_size = min(batch, max(1, CALIBRATION_TOKENS // p.max_seq_len))
        events.log(f"calibrating at batch {batch}: speed is measured per token")
    if ranks.world > 1:
        events.log(
            f"data-parallel on {ranks.world} processes: {batch} rows each, "
            f"{batch * ranks.world} a micro-batch; gradients summed every step"
        )
    per_epoch = max(1, math.ceil(len(s.data.train) / (batch * ranks.world) / p.grad_accum))
    total = p.max_steps or max(p.min_steps, math.ceil(p.epochs * per_epoch))
    if p.calibrate:  # however small the dataset: its rows come round again
        total = p.max_steps or CALIBRATION_STEPS
    events.log(
        f"{total} step{'' if total == 1 else 's'} ({per_epoch} per epoch × grad_accum "
        f"{p.grad_accum}), "
        f"{trainable:,} trainable of {n_params:,} parameters"
    )
    return StepPlan(measured, total, n_params, checkpointing)


def record_speed(
    s: Setup,
    model: Any,
    plan: StepPlan,
    outcome: Outcome,
    start: int,
    loaded_s: float,
    events: Emitter,
) -> Measured:
    """The speeds measured (written beside the run, read by a mission's plan) and said."""
    measured, p = plan.measured, s.p
    measured.tokens_per_s = round(outcome.tokens / max(outcome.seconds, 1e-9), 1)
    measured.load_s = round(loaded_s, 2)
    if p.calibrate:  # what a mission's other parts take, so its plan can divide a budget
        measured.eval_tokens_per_s, measured.gen_step_s = eval_speeds(
            model, s.data.train, s.pad_id, s.device
        )
    measured.write(Path(s.spec.run_dir), base_model=str(s.base), steps=outcome.completed - start)
    data_share = outcome.data_seconds / max(outcome.seconds, 1e-9)
    events.log(
        f"measured {measured.tokens_per_s:,.0f} tokens/s at batch {measured.batch_size} ×"
        f" {p.max_seq_len} on {s.device}; {data_share:.1%} of the time preparing batches,"
        " the rest in the model"
    )
    if p.calibrate:
        events.log(
            f"loading took {loaded_s:.1f} s; held-out loss goes at"
            f" {measured.eval_tokens_per_s:,.0f} tokens/s, generation at"
            f" {measured.gen_step_s:.3f} s a token"
        )
    return measured


def save_adapter(s: Setup, model: Any, pissa_init: Path) -> Path:
    """The adapter, its tokenizer and what it was trained from, in the run's `adapter/`."""
    adapter = RunDir.of(s.spec.run_dir).adapter
    if s.p.method == "pissa":
        model.save_pretrained(adapter, path_initial_model_for_weight_conversion=str(pissa_init))
    else:
        model.save_pretrained(adapter)
    s.tokenizer.save_pretrained(adapter)
    record = {
        "base_model": str(s.base),
        "max_seq_len": s.p.max_seq_len,
        "method": s.p.method,
        "target_modules_asked": s.p.target_modules,  # "auto" is resolved alike on one base
        "init_adapter": s.p.init_adapter,
    }
    (adapter / TRAINING_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return adapter
