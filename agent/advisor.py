"""The optional LLM advisor: writes a mission's rationale and synthesises question/answer pairs
from documentation, through litellm (any provider, or a local Ollama model).

Without a model configured nothing here runs and the agent uses its templates. litellm is
imported only on first use. A synthesised pair is kept only if it passes a check: the answer
must be grounded in the section it came from (most of its words appear there), so an advisor
that makes things up cannot put them into a dataset.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
WORD = re.compile(r"[a-z0-9]{3,}")
GROUNDED = 0.6


@dataclass(frozen=True)
class AdvisorSettings:
    model: str = ""  # a litellm model id, e.g. "openai/gpt-4o-mini", "ollama/llama3.2"
    api_base: str = ""
    api_key_env: str = ""  # the environment variable that holds the key, never the key
    qa_pairs: int = 0  # pairs to ask for per documentation section; 0: none
    timeout_s: float = 30.0


class AdvisorError(RuntimeError):
    pass


def grounded(answer: str, source: str) -> bool:
    words = set(WORD.findall(answer.lower()))
    if not words:
        return False
    known = set(WORD.findall(source.lower()))
    return len(words & known) / len(words) >= GROUNDED


class Advisor:
    def __init__(self, settings: AdvisorSettings) -> None:
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return bool(self.settings.model)

    def complete(self, messages: list[dict[str, str]]) -> str:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch at import
        try:
            import litellm
        except ImportError as exc:
            # The guide promises the templates then: a missing extra must not stop proposals.
            raise AdvisorError(
                f"advisor.model is {self.settings.model!r} but litellm cannot be imported "
                f"({exc}): install the `llm` extra (pip install 'ai-forge[llm]')"
            ) from exc

        kwargs: dict[str, Any] = {"timeout": self.settings.timeout_s, "num_retries": 0}
        if self.settings.api_base:
            kwargs["api_base"] = self.settings.api_base
        if self.settings.api_key_env:
            key = os.environ.get(self.settings.api_key_env)
            if not key:
                raise AdvisorError(f"advisor.api_key_env: ${self.settings.api_key_env} is not set")
            kwargs["api_key"] = key
        try:
            response = litellm.completion(model=self.settings.model, messages=messages, **kwargs)
        except Exception as exc:
            raise AdvisorError(f"advisor {self.settings.model}: {exc}") from exc
        content = response.choices[0].message.content
        return str(content or "").strip()

    def rationale(self, facts: dict[str, Any], fallback: str) -> str:
        """A few sentences a person can decide on; the template text when the advisor fails."""
        prompt = (
            "You help a developer decide whether to fine-tune a local model on new material "
            "from their repository. In three sentences or fewer, say what the new material is "
            "about and why training on it would help. Facts:\n" + json.dumps(facts, indent=1)
        )
        try:
            text = self.complete([{"role": "user", "content": prompt}])
        except AdvisorError as exc:
            log.warning("%s; using the template rationale", exc)
            return fallback
        return text or fallback

    def qa_pairs(self, title: str, section: str) -> tuple[list[tuple[str, str]], int]:
        """Grounded (question, answer) pairs about one section, and how many were rejected."""
        prompt = (
            f"Write {self.settings.qa_pairs} question and answer pairs about the documentation "
            "section below, answering only from its text. Reply with a JSON list of objects "
            f'with "question" and "answer".\n\n## {title}\n\n{section}'
        )
        try:
            reply = self.complete([{"role": "user", "content": prompt}])
        except AdvisorError as exc:
            log.warning("%s; no synthesised pairs for %r", exc, title)
            return [], 0
        match = re.search(r"\[.*\]", reply, re.S)
        try:
            items = json.loads(match.group(0)) if match else []
        except json.JSONDecodeError:
            items = []
        kept, rejected = [], 0
        for item in items if isinstance(items, list) else []:
            q = item.get("question") if isinstance(item, dict) else None
            a = item.get("answer") if isinstance(item, dict) else None
            if isinstance(q, str) and isinstance(a, str) and q.strip() and grounded(a, section):
                kept.append((q.strip(), a.strip()))
            else:
                rejected += 1
        return kept, rejected
