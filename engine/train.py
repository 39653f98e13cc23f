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
from pathlib import Path
from typing import Any

from engine import checkpoint, control
from engine.backends import choose_backend, device_name
from engine.batching import LOSS_CHUNK, collate, evaluate, loss_sum, perplexity
from engine.calibration import eval_speeds
from engine.data import Row
from engine.data_parallel import data_parallel_backend, join, leave
from engine.events import Emitter
from engine.memory_probe import Measured, available_bytes, batch_for, measure_row, row_floor
from engine.model_source import TRAINING_RECORD, resolve_base
from engine.train_setup import pick_targets, prepare_data, size_learning_rate, use_physical_cores
from forge_api.jobs import JobSpec, TrainParams


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


EARLY_STOP, OUT_OF_TIME = 1, 2
"""Why a run ends before its last step (`ends_after`)."""


def run(spec: JobSpec, events: Emitter) -> dict[str, Any]:
    import torch
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
    if backend == "mlx":
        from engine.mlx_backend import train_mlx

        result = train_mlx(spec, p, base, data, events)
        events.artifact(
            "adapter",
            result["adapter"],
            name=f"{base.name}-mlx-{spec.job_id}",
            base=str(base),
            dataset=p.dataset,
            method=p.method,
            rank=p.rank,
            eval_loss=result["eval_loss"],
            backend="mlx",
        )
        return {
            **result,
            "backend": "mlx",
            "base_model": str(base),
            "method": p.method,
            "data": data.report.as_dict(),
        }

    random.seed(p.seed)
    torch.manual_seed(p.seed)
    model = load_model(p, base, backend, device, events)
    loaded_s = time.monotonic() - events.started
    run_dir = Path(spec.run_dir)
    pissa_init = run_dir / "pissa-init"
    if p.method == "pissa" and not pissa_init.exists() and ranks.main:
        # Kept to turn the trained PiSSA adapter into a plain LoRA one for the untouched base.
        cfg = model.peft_config["default"]
        cfg.init_lora_weights, saved = True, cfg.init_lora_weights
        model.save_pretrained(pissa_init)
        cfg.init_lora_weights = saved
    ranks.barrier()
    n_params = sum(t.numel() for t in model.parameters())
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    measured, reason, checkpointing = size_batch(
        p, model, data.train, pad_id, device, spec.memory_limit_bytes
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
    rows_per_micro = batch * ranks.world
    per_epoch = max(1, math.ceil(len(data.train) / rows_per_micro / p.grad_accum))
    total = p.max_steps or max(p.min_steps, math.ceil(p.epochs * per_epoch))
    if p.calibrate:  # however small the dataset: its rows come round again
        total = p.max_steps or CALIBRATION_STEPS
    events.log(
        f"{total} step{'' if total == 1 else 's'} ({per_epoch} per epoch × grad_accum "
        f"{p.grad_accum}), "
        f"{trainable:,} trainable of {n_params:,} parameters"
    )

    lr, lr_reason = size_learning_rate(p, n_params)
    events.log(f"learning rate {lr:g} ({p.lr_schedule}): {lr_reason}")
    optimizer = torch.optim.AdamW(
        [t for t in model.parameters() if t.requires_grad], lr=lr, weight_decay=0.0
    )
    scheduler = _schedule(p, optimizer, total)
    state: dict[str, Any] = {"best_eval": None, "bad_evals": 0}
    start = 0
    if spec.resume_from and Path(spec.resume_from).is_dir():
        state = checkpoint.load(Path(spec.resume_from), model, optimizer, scheduler)
        start = int(state["step"])
        events.log(f"resuming from checkpoint {spec.resume_from} at step {start}")

    micro_per_epoch = math.ceil(len(data.train) / rows_per_micro)
    orders: dict[int, list[int]] = {}

    def micro_batch(m: int) -> list[Row]:
        """This process's rows of micro-batch `m`: its share of the same shuffled order every
        process draws (alone, all of it)."""
        epoch, index = divmod(m, micro_per_epoch)
        if epoch not in orders:
            g = torch.Generator().manual_seed(p.seed * 1000 + epoch)
            orders[epoch] = torch.randperm(len(data.train), generator=g).tolist()
        first = index * rows_per_micro + ranks.rank * batch
        return [data.train[i] for i in orders[epoch][first : first + batch]]

    def run_eval(step: int) -> float | None:
        if not data.val or not ranks.main or not p.evaluate:
            return None
        # Said before it starts: on a real model on a CPU this takes minutes.
        events.log(f"step {step}: measuring held-out loss on {len(data.val)} rows")
        began = time.monotonic()
        loss = evaluate(model, data.val, batch, pad_id, device)
        state["eval_s"] = time.monotonic() - began  # what the last evaluation will take
        measured.eval_tokens_per_s = round(
            sum(r.tokens for r in data.val) / max(state["eval_s"], 1e-9), 1
        )
        events.metric(step, eval_loss=loss, perplexity=perplexity(loss))
        events.log(
            f"step {step}: held-out loss {loss:.4f} (perplexity {perplexity(loss):.2f}),"
            f" measured in {time.monotonic() - began:.0f} s"
        )
        return loss

    log_every = max(1, total // 10)
    # The starting point, to show the gain (a calibration only measures speed).
    first_eval = run_eval(0) if start == 0 and not p.calibrate else None
    model.train()
    ckpt_root = run_dir / "checkpoints"
    started, tokens_done = time.monotonic(), 0
    # The budget is wall time: this attempt's from the job's start (loading included), and
    # what earlier attempts spent.
    spent_before = float(state.get("train_seconds", 0.0))
    budget_s = p.max_minutes * 60 if p.max_minutes else None

    def spent() -> float:
        return spent_before + time.monotonic() - events.started

    def per_step(done: int) -> float:
        """This attempt's pace so far."""
        return (time.monotonic() - started) / max(done - start, 1)

    def after_steps_s(done: int) -> float:
        """What follows the last step: the held-out loss (as long as the first took), or, in a
        calibration, timing the held-out loss and generation (about a step, measured)."""
        if p.calibrate:
            return per_step(done)
        return float(state.get("eval_s", 0.0)) if p.evaluate else 0.0

    def eta(done: int) -> float:
        """Seconds left: the steps to go at this pace and what follows them, within what is
        left of the budget. A budget ends the steps when the next would not fit, half a step
        early on average (measured: the ETA was a step long all the way through)."""
        left = per_step(done) * (total - done) + after_steps_s(done)
        if not budget_s:
            return round(left, 1)
        return round(min(left, max(0.0, budget_s - spent() - per_step(done) / 2)), 1)

    def save_checkpoint(done: int) -> None:
        if not ranks.main:
            return
        state["train_seconds"] = spent()
        path = checkpoint.save(ckpt_root, done, model, optimizer, scheduler, state)
        events.checkpoint(str(path), done)

    def ends_after(done: int) -> int:
        """Whether training ends after step `done`: the held-out loss stopped improving
        (EARLY_STOP), or the time budget is spent (OUT_OF_TIME); else 0."""
        if p.eval_every and done % p.eval_every == 0 and done < total:
            loss = run_eval(done)
            if loss is not None and p.early_stopping_patience:
                best = state["best_eval"]
                if best is None or loss < best - p.early_stopping_min_delta:
                    state["best_eval"], state["bad_evals"] = loss, 0
                else:
                    state["bad_evals"] += 1
                    if state["bad_evals"] >= p.early_stopping_patience:
                        events.log(f"early stop at step {done}: eval loss stopped improving")
                        return EARLY_STOP
        # Another step, then the last evaluation, must still fit the budget.
        reserve = per_step(done) + after_steps_s(done)
        if budget_s and spent() + reserve >= budget_s and done < total:
            events.log(
                f"time budget of {p.max_minutes:g} min: stopping after step {done}/{total}"
                f" ({spent() / 60:.1f} min spent, {reserve:.0f} s needed for the next step and"
                " the last evaluation); saving the adapter"
            )
            return OUT_OF_TIME
        return 0

    stopped_early = False
    step = completed = start
    data_seconds = 0.0  # choosing and collating rows; the rest of a step is the model's
    trained = [t for t in model.parameters() if t.requires_grad]
    try:
        for step in range(start, total):
            tick = time.monotonic()
            batches = [micro_batch(step * p.grad_accum + a) for a in range(p.grad_accum)]
            mine = sum(sum(1 for t in r.labels if t != -100) for b in batches for r in b)
            n_tokens = max(ranks.sum([float(mine)])[0], 1.0)  # the whole step's, every process
            data_seconds += time.monotonic() - tick
            loss_total, step_tokens = 0.0, 0
            for rows in batches:
                if not rows:  # the last, short micro-batch of an epoch left none to this process
                    continue
                tick = time.monotonic()
                tensors = collate(rows, pad_id, device)
                data_seconds += time.monotonic() - tick
                with control.interruptible():  # a stop mid-step keeps the steps before it
                    s, _ = loss_sum(model, tensors)
                    (s / n_tokens).backward()
                loss_total += float(s.detach())
                step_tokens += sum(r.tokens for r in rows)
            ranks.sum_gradients(trained)
            loss_total, all_tokens = ranks.sum([loss_total, float(step_tokens)])
            step_loss = loss_total / n_tokens
            tokens_done += int(all_tokens)
            grad_norm = torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done = completed = step + 1
            rate = tokens_done / max(time.monotonic() - started, 1e-9)
            events.metric(
                done, loss=step_loss, lr=scheduler.get_last_lr()[0], grad_norm=float(grad_norm)
            )
            events.progress(
                done, total, stage="train", tokens_per_s=round(rate, 1), eta_s=eta(done)
            )
            if done % log_every == 0 or done == total:
                events.log(f"step {done}/{total}: loss {step_loss:.4f}, {rate:,.0f} tokens/s")
            # What ends the run early is decided by the first process, for every process.
            end = ranks.from_main(ends_after(done))
            if end:
                stopped_early = end == EARLY_STOP
                break
            if done % p.checkpoint_every == 0 and done < total:
                save_checkpoint(done)
            control.check()
    except control.StopRequested:
        # Stopped between steps, or mid-step before the optimizer moved: the weights are those
        # of the last completed step, and that is what the checkpoint holds.
        if completed > start:
            save_checkpoint(completed)
        raise

    leave(ranks)
    if not ranks.main:  # the first process evaluates, saves and speaks for the job
        return {"rank": ranks.rank, "steps": completed}
    seconds = time.monotonic() - started
    measured.tokens_per_s = round(tokens_done / max(seconds, 1e-9), 1)
    measured.load_s = round(loaded_s, 2)
    if p.calibrate:  # what a mission's other parts take, so its plan can divide a budget
        measured.eval_tokens_per_s, measured.gen_step_s = eval_speeds(
            model, data.train, pad_id, device
        )
    measured.write(run_dir, base_model=str(base), steps=completed - start)
    data_share = data_seconds / max(seconds, 1e-9)
    events.log(
        f"measured {measured.tokens_per_s:,.0f} tokens/s at batch {batch} × {p.max_seq_len}"
        f" on {device}; {data_share:.1%} of the time preparing batches, the rest in the model"
    )
    if p.calibrate:
        events.log(
            f"loading took {loaded_s:.1f} s; held-out loss goes at"
            f" {measured.eval_tokens_per_s:,.0f} tokens/s, generation at"
            f" {measured.gen_step_s:.3f} s a token"
        )
        return {"calibration": True, "base_model": str(base), **measured.__dict__}
    final_eval = run_eval(completed)
    adapter = run_dir / "adapter"
    if p.method == "pissa":
        model.save_pretrained(adapter, path_initial_model_for_weight_conversion=str(pissa_init))
    else:
        model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    record = {"base_model": str(base), "max_seq_len": p.max_seq_len, "method": p.method}
    (adapter / TRAINING_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
    if final_eval is not None:
        before = f"{first_eval:.4f} → " if first_eval is not None else ""
        events.log(f"held-out loss {before}{final_eval:.4f}; adapter saved in {adapter}")
    summary = {
        "adapter": str(adapter),
        "base_model": str(base),
        "backend": backend,
        "method": p.method,
        "steps": completed,
        "eval_loss": final_eval,
        "tokens_per_s": measured.tokens_per_s,
        "stopped_early": stopped_early,
        "data_share": round(data_share, 4),
        "data": data.report.as_dict(),
        # The values the engine chose where the params said None (`auto`): shown beside the
        # params (the job's Params tab, `forge jobs show`).
        "chosen": {
            "batch_size": batch,
            "learning_rate": lr,
            "alpha": p.alpha or 2 * p.rank,
            "warmup_steps": p.warmup_steps if p.warmup_steps is not None else total * 3 // 100,
            "max_steps": total,
            "gradient_checkpointing": checkpointing,
        },
    }
    events.artifact(
        "adapter",
        str(adapter),
        name=f"{base.name}-{p.method}-{spec.job_id}",
        base=str(base),
        dataset=p.dataset,
        method=p.method,
        rank=p.rank,
        eval_loss=final_eval,
    )
    return summary
