"""The `infer` job: one answer from a base model (with an adapter, optionally) or from a deployed
Ollama model, streamed.

Text goes out as `token` events as soon as the tokenizer can decode it to whole characters, so
the playground shows the answer while it is being written. A cancel stops generation at the next
token.
"""

from __future__ import annotations

from typing import Any

from engine import control, ollama_api
from engine.backends import device_name
from engine.events import Emitter
from engine.model_source import base_for, resolve_adapter
from forge_api.jobs import InferParams, JobSpec


def chat_messages(p: InferParams) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": p.system}] if p.system else []
    messages.append({"role": "user", "content": p.prompt})
    return messages


def run_ollama(p: InferParams, events: Emitter) -> dict[str, Any]:
    """Ask a deployed Ollama model; its streamed chunks become `token` events as they come."""
    assert p.ollama_model
    api = ollama_api.client(p.host)
    events.log(f"asking {p.ollama_model} at {ollama_api.shown_host(p.host)}")
    pieces: list[str] = []
    tokens = 0
    with ollama_api.talking_to(p.host, f"asking {p.ollama_model}"):
        stream = api.chat(
            model=p.ollama_model,
            messages=chat_messages(p),
            stream=True,
            options={
                "temperature": p.temperature,
                "seed": p.seed,
                "num_predict": p.max_new_tokens,
            },
        )
        for chunk in stream:
            if control.stopping():
                stream.close()  # closes the response: Ollama stops generating
                break
            if chunk.message.content:
                pieces.append(chunk.message.content)
                events.token(chunk.message.content)
            if chunk.done:
                tokens = chunk.eval_count or len(pieces)
    control.check()
    return {"text": "".join(pieces), "tokens": tokens or len(pieces)}


def run(spec: JobSpec, events: Emitter) -> dict[str, Any]:
    p = spec.typed_params()
    assert isinstance(p, InferParams)
    result = run_ollama(p, events) if p.ollama_model else run_local(spec, p, events)
    # Tokens stream as events for the playground; the log holds the whole answer, so
    # `forge jobs submit infer -f` and `forge jobs logs` show it.
    events.log(f"answer ({result['tokens']} tokens): {result['text']}")
    return result


def run_local(spec: JobSpec, p: InferParams, events: Emitter) -> dict[str, Any]:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        StoppingCriteria,
        StoppingCriteriaList,
        TextStreamer,
    )

    device = device_name()
    base_dir = base_for(p.base_model, p.adapter, spec.models_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True).to(device)
    if p.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, resolve_adapter(p.adapter))
    model.eval()
    events.log(f"generating with {base_dir.name}" + (f" + {p.adapter}" if p.adapter else ""))

    ids = tokenizer.apply_chat_template(
        chat_messages(p), add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"].to(device)
    pieces: list[str] = []

    class ToEvents(TextStreamer):  # type: ignore[misc]
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                pieces.append(text)
                events.token(text)

    class OnCancel(StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), control.stopping(), dtype=torch.bool)

    torch.manual_seed(p.seed)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": p.temperature}
        if p.temperature > 0
        else {"do_sample": False}
    )
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=p.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            streamer=ToEvents(tokenizer, skip_prompt=True, skip_special_tokens=True),
            stopping_criteria=StoppingCriteriaList([OnCancel()]),
            **sampling,
        )
    control.check()
    new_tokens = int(out.shape[1] - ids.shape[1])
    return {"text": "".join(pieces), "tokens": new_tokens}
