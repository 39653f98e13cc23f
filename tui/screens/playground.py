"""The playground: prompt a base model, an adapter or a deployed Ollama tag, and read the answer
as it is written.

Generate submits an `infer` job and shows its `job.token` events as they arrive; escape
cancels it. Tokens are kept by job id from the first one seen, so an answer that starts before
the submit reply is read loses nothing.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from forge_api.names import TERMINAL_JOB_STATUSES
from forge_api.schema import Model
from forge_client.format import printable
from tui.screens.base import ForgeScreen

MAX_NEW_TOKENS = 128


class PlaygroundScreen(ForgeScreen):
    TITLE = "Playground"
    AUTO_FOCUS = "#play-prompt"  # typed keys go to the prompt, not to the app's keys
    RELOAD_ON: ClassVar[tuple[str, ...]] = ("model.added",)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "generate", "Generate", id="playground.generate", priority=True),
        Binding("escape", "stop", "Stop", id="playground.stop"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.job_id: str | None = None
        self.tokens: defaultdict[str, list[str]] = defaultdict(list)
        self.targets: dict[str, dict[str, Any]] = {}

    def body(self) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label("model", classes="field-name")
            yield Select([], prompt="loading models…", id="play-model", compact=True)
        with Horizontal(classes="field"):
            yield Label("prompt", classes="field-name")
            yield Input(
                placeholder="ask something; enter or ctrl+s generates",
                id="play-prompt",
                compact=True,
            )
        with Horizontal(id="play-actions"):
            yield Button("Generate (ctrl+s)", variant="primary", id="play-go", compact=True)
            yield Static("", id="play-state")
        with VerticalScroll(id="play-output", classes="panel"):
            yield Static("", id="play-answer")

    async def load(self) -> None:
        kinds = ["base", "adapter", "merged", "ollama"]
        listed = (await self.call("models.list", kind=kinds))["models"]
        self.targets = {}
        for m in (Model.model_validate(x) for x in listed):
            if m.data.problem:
                continue
            target: dict[str, Any]
            if m.kind == "adapter":
                target = {"base_model": m.base or "tiny-llama", "adapter": m.path}
                label = f"adapter {m.name} on {Path(m.base).name if m.base else 'tiny-llama'}"
            elif m.kind == "ollama":
                target = {"ollama_model": m.name, "host": m.data.host}
                label = f"ollama {m.name}"
            else:
                target = {"base_model": m.path or m.name}
                label = f"{m.kind} {m.name}"
            self.targets[m.id] = target | {"label": label}
        select = self.query_one("#play-model", Select)
        keep = select.value
        select.set_options([(t["label"], key) for key, t in self.targets.items()])
        if keep in self.targets:
            select.value = keep
        elif self.targets:
            select.value = next(iter(self.targets))

    def on_input_submitted(self) -> None:
        self.action_generate()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "play-go":
            self.action_generate()

    def action_generate(self) -> None:
        prompt = self.query_one("#play-prompt", Input).value.strip()
        key = self.query_one("#play-model", Select).value
        if not prompt:
            self.notify("type a prompt first", severity="warning")
            return
        if not isinstance(key, str) or key not in self.targets:
            self.notify("no model to ask yet: build or train one first", severity="warning")
            return
        if self.job_id:
            self.notify("still answering; escape stops it", severity="warning")
            return
        params = {k: v for k, v in self.targets[key].items() if k != "label"}
        params |= {"prompt": prompt, "max_new_tokens": MAX_NEW_TOKENS}
        self.query_one("#play-answer", Static).update("")
        self.io(lambda: self._submit(params), "asking the model")

    async def _submit(self, params: dict[str, Any]) -> None:
        job = await self.call("jobs.submit", kind="infer", params=params)
        self.job_id = job["id"]
        self._state(f"{job['id']}: loading the model…")
        self._show_answer()

    def _state(self, text: str) -> None:
        self.query_one("#play-state", Static).update(text)

    def _show_answer(self) -> None:
        if self.job_id:
            answer = Text("".join(self.tokens[self.job_id]))  # the model's words, as they are
            self.query_one("#play-answer", Static).update(answer)
            self.query_one("#play-output", VerticalScroll).scroll_end(animate=False)

    def handle_event(self, event: dict[str, Any]) -> None:
        job_id = event.get("job_id")
        if not job_id:
            return
        if event["type"] == "job.token":
            self.tokens[job_id].append(printable(str(event["data"].get("text", ""))))
            if job_id == self.job_id:
                self._state(f"{job_id}: answering…")
                self._show_answer()
        elif event["type"] == "job.status" and job_id == self.job_id:
            status = event["data"].get("status")
            if status in TERMINAL_JOB_STATUSES:
                error = event["data"].get("error")
                self._state(f"{job_id}: {status}" + (f": {error}" if error else ""))
                self._show_answer()
                self.job_id = None

    def action_stop(self) -> None:
        """Escape: stop the answer being generated; with none, leave the prompt (the screen's
        and the app's keys work again)."""
        if not self.job_id:
            self.set_focus(None)
            return
        self.io(lambda: self.call("jobs.cancel", id=self.job_id), f"stopping {self.job_id}")
