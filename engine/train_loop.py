"""The training loop of the `train` job, apart from its set-up (`engine.train`), the way mlx-lm
keeps its `train` loop apart from loading: each piece a reader can hold in mind.

* `TrainLoop.run`: the steps (gradient accumulation, data-parallel sums, clipping), a progress
  event each step, checkpoints, a stop between or inside steps;
* `TrainLoop.evaluate`: the held-out loss (the first process only);
* `TrainLoop.ends_after`: early stopping and the wall-time budget;
* `TrainLoop.eta`: seconds left, within the budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import checkpoint, control
from engine.batching import collate, evaluate, loss_sum, perplexity
from engine.data import Row
from engine.data_parallel import Ranks
from engine.events import Emitter
from engine.memory_probe import Measured
from forge_api.jobs import TrainParams

FOOTING = (
    " (a step's loss is the mean over the answer tokens of that step's rows only; the held-out"
    " loss is the same mean over every held-out row, so the two differ by the rows they read,"
    " and a step's loss moves with its rows)"
)
"""Said once, with the first step's loss: the two losses are computed alike (loss per answer
token, `engine.batching.loss_sum`), and differ only in the rows they read."""

EARLY_STOP, OUT_OF_TIME = 1, 2
"""Why a run ends before its last step (`ends_after`)."""


@dataclass
class Optimizing:
    """What the loop steps: the model, its optimizer and learning-rate schedule, and where
    checkpoints go."""

    model: Any
    optimizer: Any
    scheduler: Any
    checkpoints: Path


@dataclass
class Outcome:
    """How the loop ended: the last completed step, whether the held-out loss stopped it, the
    tokens trained on, and the seconds spent stepping and preparing batches."""

    completed: int
    stopped_early: bool = False
    tokens: int = 0
    seconds: float = 0.0
    data_seconds: float = 0.0
    first_eval: float | None = None


@dataclass
class TrainLoop:
    """One attempt at a train job's steps, from `start` (a resumed checkpoint's step) to
    `total`; `state` is what a checkpoint keeps (best held-out loss, evaluations without gain,
    seconds spent by earlier attempts)."""

    p: TrainParams
    run: Optimizing
    train: list[Row]
    val: list[Row]
    batch: int
    total: int
    pad_id: int
    device: str
    ranks: Ranks
    events: Emitter
    measured: Measured
    start: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state.setdefault("best_eval", None)
        self.state.setdefault("bad_evals", 0)
        self.rows_per_micro = self.batch * self.ranks.world
        self.micro_per_epoch = math.ceil(len(self.train) / self.rows_per_micro)
        self._orders: dict[int, list[int]] = {}
        self.started = time.monotonic()
        # The budget is wall time: this attempt's from the job's start (loading included), and
        # what earlier attempts spent.
        self.spent_before = float(self.state.get("train_seconds", 0.0))
        self.budget_s = self.p.max_minutes * 60 if self.p.max_minutes else None

    def micro_batch(self, m: int) -> list[Row]:
        """This process's rows of micro-batch `m`: its share of the same shuffled order every
        process draws (alone, all of it)."""
        import torch

        epoch, index = divmod(m, self.micro_per_epoch)
        if epoch not in self._orders:
            g = torch.Generator().manual_seed(self.p.seed * 1000 + epoch)
            self._orders[epoch] = torch.randperm(len(self.train), generator=g).tolist()
        first = index * self.rows_per_micro + self.ranks.rank * self.batch
        return [self.train[i] for i in self._orders[epoch][first : first + self.batch]]

    def evaluate(self, step: int) -> float | None:
        """The held-out loss at `step` (None where there is nothing to measure, or not here)."""
        if not self.val or not self.ranks.main or not self.p.evaluate:
            return None
        # Said before it starts: on a real model on a CPU this takes minutes.
        self.events.log(f"step {step}: measuring held-out loss on {len(self.val)} rows")
        began = time.monotonic()
        loss = evaluate(self.run.model, self.val, self.batch, self.pad_id, self.device)
        self.state["eval_s"] = time.monotonic() - began  # what the last evaluation will take
        self.measured.eval_tokens_per_s = round(
            sum(r.tokens for r in self.val) / max(self.state["eval_s"], 1e-9), 1
        )
        self.events.metric(step, eval_loss=loss, perplexity=perplexity(loss))
        self.events.log(
            f"step {step}: held-out loss {loss:.4f} (perplexity {perplexity(loss):.2f}),"
            f" measured in {time.monotonic() - began:.0f} s"
        )
        return loss

    def spent(self) -> float:
        return self.spent_before + time.monotonic() - self.events.started

    def per_step(self, done: int) -> float:
        """This attempt's pace so far."""
        return (time.monotonic() - self.started) / max(done - self.start, 1)

    def after_steps_s(self, done: int) -> float:
        """What follows the last step: the held-out loss (as long as the first took), or, in a
        calibration, timing the held-out loss and generation (about a step, measured)."""
        if self.p.calibrate:
            return self.per_step(done)
        return float(self.state.get("eval_s", 0.0)) if self.p.evaluate else 0.0

    def eta(self, done: int) -> float:
        """Seconds left: the steps to go at this pace and what follows them, within what is
        left of the budget. A budget ends the steps when the next would not fit, half a step
        early on average (measured: the ETA was a step long all the way through)."""
        left = self.per_step(done) * (self.total - done) + self.after_steps_s(done)
        if not self.budget_s:
            return round(left, 1)
        budget_left = self.budget_s - self.spent() - self.per_step(done) / 2
        return round(min(left, max(0.0, budget_left)), 1)

    def save_checkpoint(self, done: int) -> None:
        if not self.ranks.main:
            return
        self.state["train_seconds"] = self.spent()
        run = self.run
        path = checkpoint.save(
            run.checkpoints, done, run.model, run.optimizer, run.scheduler, self.state
        )
        self.events.checkpoint(str(path), done)

    def _early_stop(self, done: int) -> bool:
        """Whether the held-out loss, measured every `eval_every` steps, stopped improving."""
        p = self.p
        if not (p.eval_every and done % p.eval_every == 0 and done < self.total):
            return False
        loss = self.evaluate(done)
        if loss is None or not p.early_stopping_patience:
            return False
        best = self.state["best_eval"]
        if best is None or loss < best - p.early_stopping_min_delta:
            self.state["best_eval"], self.state["bad_evals"] = loss, 0
            return False
        self.state["bad_evals"] += 1
        if self.state["bad_evals"] < p.early_stopping_patience:
            return False
        self.events.log(f"early stop at step {done}: eval loss stopped improving")
        return True

    def ends_after(self, done: int) -> int:
        """Whether training ends after step `done`: the held-out loss stopped improving
        (EARLY_STOP), or the time budget is spent (OUT_OF_TIME); else 0."""
        if self._early_stop(done):
            return EARLY_STOP
        # Another step, then the last evaluation, must still fit the budget.
        reserve = self.per_step(done) + self.after_steps_s(done)
        if self.budget_s and self.spent() + reserve >= self.budget_s and done < self.total:
            self.events.log(
                f"time budget of {self.p.max_minutes:g} min: stopping after step"
                f" {done}/{self.total} ({self.spent() / 60:.1f} min spent, {reserve:.0f} s"
                " needed for the next step and the last evaluation); saving the adapter"
            )
            return OUT_OF_TIME
        return 0

    def _step(self, step: int, outcome: Outcome, trained: list[Any]) -> float:
        """One optimizer step over `grad_accum` micro-batches; its loss per label token."""
        import torch

        p, ranks = self.p, self.ranks
        tick = time.monotonic()
        batches = [self.micro_batch(step * p.grad_accum + a) for a in range(p.grad_accum)]
        mine = sum(sum(1 for t in r.labels if t != -100) for b in batches for r in b)
        n_tokens = max(ranks.sum([float(mine)])[0], 1.0)  # the whole step's, every process
        outcome.data_seconds += time.monotonic() - tick
        loss_total, step_tokens = 0.0, 0
        for rows in batches:
            if not rows:  # the last, short micro-batch of an epoch left none to this process
                continue
            tick = time.monotonic()
            tensors = collate(rows, self.pad_id, self.device)
            outcome.data_seconds += time.monotonic() - tick
            with control.interruptible():  # a stop mid-step keeps the steps before it
                s, _ = loss_sum(self.run.model, tensors)
                (s / n_tokens).backward()
            loss_total += float(s.detach())
            step_tokens += sum(r.tokens for r in rows)
        ranks.sum_gradients(trained)
        loss_total, all_tokens = ranks.sum([loss_total, float(step_tokens)])
        outcome.tokens += int(all_tokens)
        self.last_grad_norm = float(torch.nn.utils.clip_grad_norm_(trained, 1.0))
        self.run.optimizer.step()
        self.run.scheduler.step()
        self.run.optimizer.zero_grad(set_to_none=True)
        return loss_total / n_tokens

    def run_steps(self) -> Outcome:
        """Every step from `start` to `total`, or until `ends_after` says so."""
        p, total = self.p, self.total
        outcome = Outcome(completed=self.start)
        # The starting point, to show the gain (a calibration only measures speed).
        if self.start == 0 and not p.calibrate:
            outcome.first_eval = self.evaluate(0)
        self.run.model.train()
        self.started = time.monotonic()
        log_every = max(1, total // 10)
        said_footing = False
        trained = [t for t in self.run.model.parameters() if t.requires_grad]
        try:
            for step in range(self.start, total):
                step_loss = self._step(step, outcome, trained)
                done = outcome.completed = step + 1
                rate = outcome.tokens / max(time.monotonic() - self.started, 1e-9)
                lr = self.run.scheduler.get_last_lr()[0]
                self.events.metric(done, loss=step_loss, lr=lr, grad_norm=self.last_grad_norm)
                self.events.progress(
                    done, total, stage="train", tokens_per_s=round(rate, 1), eta_s=self.eta(done)
                )
                if done % log_every == 0 or done == total:
                    self.events.log(
                        f"step {done}/{total}: loss {step_loss:.4f}, {rate:,.0f} tokens/s"
                        + (FOOTING if not said_footing else "")
                    )
                    said_footing = True
                # What ends the run early is decided by the first process, for every process.
                end = self.ranks.from_main(self.ends_after(done))
                if end:
                    outcome.stopped_early = end == EARLY_STOP
                    break
                if done % p.checkpoint_every == 0 and done < total:
                    self.save_checkpoint(done)
                control.check()
        except control.StopRequested:
            # Stopped between steps, or mid-step before the optimizer moved: the weights are
            # those of the last completed step, and that is what the checkpoint holds.
            if outcome.completed > self.start:
                self.save_checkpoint(outcome.completed)
            raise
        outcome.seconds = time.monotonic() - self.started
        return outcome
