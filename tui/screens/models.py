"""Models: base models, adapters with their eval metrics, merged models, Ollama deployments.

`d` opens the deploy dialog for the highlighted adapter: its held-out metrics beside the
deployed model's and the base's, then a tag to deploy it under.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from tui.format import ago, metric
from tui.screens.base import ForgeScreen
from tui.widgets.metric_comparison import HIGHER_IS_BETTER, MetricComparison

Metrics = dict[str, float]


async def eval_of(call: Any, adapter_path: str) -> dict[str, Metrics]:
    """The latest completed eval of an adapter: metrics by candidate (base, adapter, previous)."""
    jobs = (await call("jobs.list", kind=["eval"], status=["completed"], limit=200))["jobs"]
    for job in jobs:
        if job["params"].get("adapter") == adapter_path:
            found: dict[str, Metrics] = {}
            for m in (await call("jobs.metrics", id=job["id"]))["metrics"]:
                who, _, what = m["name"].partition("_")
                if what in HIGHER_IS_BETTER:
                    found.setdefault(who, {})[what] = m["value"]
            return found
    return {}


class DeployDialog(ModalScreen[str | None]):
    """The candidate against what is deployed; answers the tag to deploy under, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="deploy.cancel")
    ]

    def __init__(self, model: dict[str, Any], columns: dict[str, Metrics], tag: str) -> None:
        super().__init__()
        self.model = model
        self.columns = columns
        self.tag = tag

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"Deploy [b]{self.model['name']}[/b] ({self.model['id']}) to Ollama")
            yield MetricComparison(id="comparison", cursor_type="none")
            yield Label("tag")
            yield Input(value=self.tag, id="tag")
            with Horizontal(classes="buttons"):
                yield Button("Deploy", variant="primary", id="deploy")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(MetricComparison).show(self.columns)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        tag = self.query_one("#tag", Input).value.strip()
        self.dismiss(tag if event.button.id == "deploy" and tag else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ModelsScreen(ForgeScreen):
    TITLE = "Models"
    RELOAD_ON: ClassVar[tuple[str, ...]] = ("model.", "job.status")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("d", "deploy", "Deploy", id="models.deploy")]

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[str, dict[str, Any]] = {}

    def body(self) -> ComposeResult:
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        yield Static("", id="model-detail", classes="panel")

    def on_mount(self) -> None:
        table = self.query_one("#models", DataTable)
        table.add_columns("kind", "name", "base", "from job", "created")
        table.focus()

    async def load(self) -> None:
        models = (await self.call("models.list"))["models"]
        self.models = {m["id"]: m for m in models}
        table = self.query_one("#models", DataTable)
        table.clear()
        for m in models:
            table.add_row(
                m["kind"],
                m["name"],
                Path(m["base"]).name if m.get("base") else "-",
                m.get("job_id") or "-",
                ago(m["created_at"]),
                key=m["id"],
            )
        await self.show_detail()

    def current(self) -> dict[str, Any] | None:
        return self.models.get(self.cursor_key("models") or "")

    async def show_detail(self) -> None:
        model = self.current()
        detail = self.query_one("#model-detail", Static)
        if model is None:
            detail.update("No models yet: `forge jobs submit prepare-model` builds the tiny one.")
            return
        lines = [f"[b]{model['name']}[/b] {model['kind']}  {model.get('path') or ''}"]
        if model["kind"] == "adapter" and model.get("path"):
            found = await eval_of(self.call, model["path"])
            for who, values in found.items():
                shown = ", ".join(f"{k} {metric(v)}" for k, v in values.items())
                lines.append(f"{who}: {shown}")
            if not found:
                lines.append("not evaluated yet")
        self.query_one("#model-detail", Static).update("\n".join(lines))

    def on_data_table_row_highlighted(self) -> None:
        self.io(lambda: self.show_detail(), "loading the model", group="detail", exclusive=True)

    def action_deploy(self) -> None:
        model = self.current()
        if model is None or model["kind"] not in ("adapter", "merged"):
            self.notify("highlight an adapter or a merged model to deploy", severity="warning")
            return
        self.io(lambda: self._deploy(model), f"deploying {model['name']}")

    async def _deploy(self, model: dict[str, Any]) -> None:
        found = await eval_of(self.call, model.get("path") or "")
        deployed = [m for m in self.models.values() if m["kind"] == "ollama"]
        columns: dict[str, Metrics] = {"new": found.get("adapter", {})}
        if deployed:
            columns[f"deployed {deployed[0]['name']}"] = deployed[0]["data"].get("metrics", {})
        columns["base"] = found.get("base", {})
        tag = await self.app.push_screen_wait(
            DeployDialog(model, columns, f"forge-{model['name']}:latest")
        )
        if tag:
            await self.call("models.deploy", id=model["id"], tag=tag)
            self.notify(f"deploying {model['name']} as {tag}")
