"""The `eval` job: held-out loss and perplexity of the base, the new adapter and a previous
adapter on the same validation rows, plus, for chat and instruction data, generated answers
scored against the references with chrF. Each figure is a job metric the UI can compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.backends import device_name
from engine.batching import evaluate, mean_loss, perplexity, row_losses
from engine.data import Example
from engine.events import Emitter
from engine.loss_interval import Change, paired_change
from engine.model_source import base_for, resolve_adapter, training_record
from engine.train_setup import prepare_data
from forge_api.jobs import EvalParams, JobSpec
from forge_api.names import JOB_MAX_SEQ_LEN
from forge_api.run_dir import RunDir

EVAL_BATCH = 8


def left_padded(prompts: list[list[int]], pad_id: int, device: str) -> tuple[Any, Any]:
    """Token ids and attention mask of prompts padded on the left, so that every row's answer
    starts at the same column and a batch decodes in one pass per token."""
    import torch

    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(x)) + x for x in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in prompts], device=device)
    return ids, mask


def generate_answers(
    model: Any, tokenizer: Any, examples: list[Example], max_new: int, device: str
) -> list[str]:
    """Greedy answers to the examples' first prompts, EVAL_BATCH at a time: the prompts are
    padded on the left, so each row's answer starts at the same column and a batch decodes in
    one pass per token instead of one per answer (on a CPU most of an eval's generation time)."""
    import torch

    model.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prompts: list[list[int]] = [
        list(
            tokenizer.apply_chat_template(
                [m for m in ex.messages() if m["role"] != "assistant"][:1],
                add_generation_prompt=True,
                return_dict=True,
            )["input_ids"]
        )
        for ex in examples
    ]
    answers = []
    for first in range(0, len(prompts), EVAL_BATCH):
        ids, mask = left_padded(prompts[first : first + EVAL_BATCH], pad_id, device)
        width = ids.shape[1]
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=pad_id,
            )
        answers += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
    return answers


def chrf(hypotheses: list[str], references: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_chrf(hypotheses, [references]).score)


def spread(rows: list[Any], most: int | None) -> list[Any]:
    """At most `most` of the rows, evenly spaced over all of them (a mission's eval scores a
    sample its time budget holds, drawn from the whole held-out set, not its first files)."""
    if not most or len(rows) <= most:
        return rows
    gap = len(rows) / most
    return [rows[int(i * gap)] for i in range(most)]


def eval_length(adapter: str | None) -> int:
    """The max_seq_len the adapter was trained with (the same rows, the same losses), or a
    job's default."""
    if adapter:
        trained = training_record(resolve_adapter(adapter)).get("max_seq_len")
        if isinstance(trained, int):
            return trained
    return JOB_MAX_SEQ_LEN


def other_sets(
    p: EvalParams,
    spec: JobSpec,
    model: Any,
    tokenizer: Any,
    base_dir: Path,
    max_len: int,
    device: str,
    events: Emitter,
) -> dict[str, list[Any]]:
    """The held-out sets scored besides the new material (`engine.held_out`): `old_material`
    from the source's earlier datasets, `general` from the base's own answers (made now with the
    base, before any adapter is loaded, where this base has none yet)."""
    from engine.held_out import general_set, set_rows, sets_folder

    sets: dict[str, list[Any]] = {}
    if p.old_datasets:
        old = set_rows(p.old_datasets, tokenizer, max_len, p.val_fraction, spec.datasets_dir)
        if old:
            sets["old_material"] = spread(old, p.max_rows)
    if p.general_dataset:
        sets["general"] = set_rows([p.general_dataset], tokenizer, max_len, 0, spec.datasets_dir)
    elif p.general:
        path = general_set(
            model, tokenizer, base_dir, device, sets_folder(spec.datasets_dir), events
        )
        sets["general"] = set_rows([str(path)], tokenizer, max_len, 0, None)
    for held, rows in sets.items():
        events.log(f"{held}: {len(rows)} held-out rows")
    return sets


def change_scores(rival: str, change: Change) -> dict[str, float]:
    """The new adapter's paired change against `rival` (`base`, `previous`), as eval scores:
    `adapter_change_pct_vs_base`, `..._low_pct_...`, `..._high_pct_...` (the interval)."""
    return {
        f"adapter_change_pct_vs_{rival}": round(change.pct, 3),
        f"adapter_change_low_pct_vs_{rival}": round(change.low_pct, 3),
        f"adapter_change_high_pct_vs_{rival}": round(change.high_pct, 3),
    }


def verdict(change: Change, rival: str) -> str:
    """The new adapter against its rival in words: it beats it only where the whole interval
    is a gain."""
    against = "the previous adapter" if rival == "previous" else "the base"
    said = (
        f"{change.pct:+.1f} % loss, 95 % interval {change.low_pct:+.1f} to {change.high_pct:+.1f} %"
        f" over {change.rows} held-out rows"
    )
    if change.high_pct < 0:
        return f"beats {against} ({said})"
    if change.low_pct > 0:
        return f"is worse than {against} ({said})"
    return f"shows no measurable change against {against} ({said})"


def run(spec: JobSpec, events: Emitter) -> dict[str, Any]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = spec.typed_params()
    assert isinstance(p, EvalParams)
    device = device_name()
    base_dir = base_for(p.base_model, p.adapter, spec.models_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    max_len = p.max_seq_len or eval_length(p.adapter)
    data = prepare_data(
        p.dataset, tokenizer, max_len, p.val_fraction, True, True, spec.datasets_dir
    )
    rows = spread(data.val or data.train, p.max_rows)
    chat = [e for e in data.val_examples if e.format in ("chat", "instruction")][: p.generations]
    references = [
        next(m["content"] for m in e.messages() if m["role"] == "assistant") for e in chat
    ]
    held = len(data.val or data.train)
    sample = f" (a sample of {held})" if len(rows) < held else ""
    events.log(
        f"evaluating on {len(rows)} rows of held-out data{sample} of up to {max_len} tokens, "
        f"{len(chat)} generations of up to {p.max_new_tokens} tokens"
    )

    model = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True).to(device)
    sets = other_sets(p, spec, model, tokenizer, base_dir, max_len, device, events)
    candidates: list[tuple[str, Path | None]] = [("base", None)]
    if p.adapter:
        candidates.append(("adapter", resolve_adapter(p.adapter)))
    if p.previous_adapter:
        candidates.append(("previous", resolve_adapter(p.previous_adapter, "previous_adapter")))
    peft_model: Any = None
    results: dict[str, dict[str, float]] = {}
    per_row: dict[str, list[tuple[float, int]]] = {}
    for step, (name, adapter) in enumerate(candidates):
        if adapter is None:
            current = model
        elif peft_model is None:
            peft_model = PeftModel.from_pretrained(model, adapter, adapter_name=name)
            current = peft_model
        else:
            peft_model.load_adapter(adapter, adapter_name=name)
            peft_model.set_adapter(name)
            current = peft_model
        if adapter is None and peft_model is not None:
            raise AssertionError("the base is evaluated first, before any adapter is loaded")
        per_row[name] = row_losses(current, rows, EVAL_BATCH, pad_id, device)
        loss = mean_loss(per_row[name])
        scores = {f"{name}_eval_loss": loss, f"{name}_perplexity": perplexity(loss)}
        for kept, kept_rows in sets.items():
            scores[f"{name}_eval_loss_{kept}"] = evaluate(
                current, kept_rows, EVAL_BATCH, pad_id, device
            )
        if chat:
            answers = generate_answers(current, tokenizer, chat, p.max_new_tokens, device)
            scores[f"{name}_chrf"] = chrf(answers, references)
            events.log(f"{name}: first answer {answers[0][:120]!r}")
        events.metric(step, **scores)
        events.log(
            f"{name}: eval loss {loss:.4f}, perplexity {perplexity(loss):.1f}"
            + (f", chrF {scores[f'{name}_chrf']:.1f}" if chat else "")
            + "".join(f", {k} {scores[f'{name}_eval_loss_{k}']:.4f}" for k in sets)
        )
        results[name] = scores
        events.progress(step + 1, len(candidates), stage=name)
    better = None
    if "adapter" in results:
        rival = "previous" if "previous" in results else "base"
        changes: dict[str, Change] = {
            who: paired_change(per_row["adapter"], per_row[who])
            for who in ("base", "previous")
            if who in per_row
        }
        for who, change in changes.items():
            results["adapter"] |= change_scores(who, change)
        better = changes[rival].high_pct < 0
        events.log(f"the new adapter {verdict(changes[rival], rival)}")
    report = RunDir.of(spec.run_dir).eval_report
    report.write_text(json.dumps(results, indent=2))
    events.artifact("eval-report", str(report), adapter_is_better=better)
    return {"results": results, "adapter_is_better": better}
