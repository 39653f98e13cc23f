"""Models: base models on disk, adapters with their eval metrics and origin, merged models,
and the Ollama tags deployed from them.

`d` opens the deploy dialog for the highlighted adapter or merged model: its held-out metrics
beside those of the model its source's alias serves and of the base, then a tag (empty: the next
`forge-<source>:<n>`). `b` rolls the highlighted Ollama tag's alias back to the tag before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from forge_client.format import ago, metric, size
from tui.screens.base import ForgeScreen
from tui.widgets.metric_comparison import MetricComparison

Metrics = dict[str, float]


def origin(m: dict[str, Any]) -> str:
    """Where a model came from, in a few words, for the table."""
    data = m.get("data") or {}
    if m["kind"] == "ollama":
        run = Path(str(data.get("adapter") or "")).parent.name  # the train job's run dir
        return f"{data.get('mode', '?')}, of {data.get('source') or run or m.get('base')}"
    if data.get("source"):
        return f"{data['source']} @ {str(data.get('commit') or '')[:8]}"
    if m["kind"] == "base":
        return str(data.get("architecture") or data.get("problem") or "-")
    return Path(m["base"]).name if m.get("base") else "-"


def state(m: dict[str, Any]) -> str:
    data = m.get("data") or {}
    if data.get("problem"):
        return "unusable"
    if m["kind"] == "ollama":
        return f"serves {data['alias']}" if data.get("current") else "-"
    loss = (data.get("eval") or {}).get("adapter", {}).get("eval_loss")
    return f"eval loss {metric(loss)}" if loss is not None else "-"


def detail_lines(m: dict[str, Any]) -> list[str]:
    """Everything the registry knows about one model, for the panel under the table."""
    data = m.get("data") or {}
    lines = [f"[b]{m['name']}[/b] {m['kind']}  {m.get('path') or ''}"]
    if data.get("problem"):
        lines.append(f"[red]unusable:[/red] {data['problem']}")
    if m["kind"] == "base" and "architecture" in data:
        lines.append(
            f"{data['architecture']}, {data.get('parameters') or 0:,} parameters, "
            f"{size(data.get('size_bytes'))}"
        )
        for backend, verdict in (data.get("trainable") or {}).items():
            mark = "[green]✔[/green]" if verdict["ok"] else "[red]✖[/red]"
            lines.append(f"  {mark} {backend}: {verdict['why']}")
    if data.get("source"):
        lines.append(f"source {data['source']} at commit {str(data.get('commit'))[:12]}")
    if m["kind"] == "adapter":
        lines.append(f"method {data.get('method', '?')}, rank {data.get('rank', '?')}")
    for who, values in (data.get("eval") or {}).items():
        lines.append(f"{who}: " + ", ".join(f"{k} {metric(v)}" for k, v in values.items()))
    if m["kind"] == "adapter" and not data.get("eval"):
        lines.append("not evaluated yet")
    if m["kind"] == "ollama":
        lines.append(
            f"on {data.get('host')}, {data.get('mode')} from {data.get('adapter') or m.get('base')}"
        )
        if data.get("alias"):
            now = "serves" if data.get("current") else "served"
            lines.append(f"{now} as {data['alias']}; b rolls the alias back to the tag before")
    return lines


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
            yield Label("tag (empty: the next forge-<source>:<n>)")
            yield Input(value=self.tag, placeholder="forge-<source>:<n>", id="tag")
            with Horizontal(classes="buttons"):
                yield Button("Deploy", variant="primary", id="deploy")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(MetricComparison).show(self.columns)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        tag = self.query_one("#tag", Input).value.strip()
        self.dismiss(tag if event.button.id == "deploy" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ModelsScreen(ForgeScreen):
    TITLE = "Models"
    RELOAD_ON: ClassVar[tuple[str, ...]] = ("model.",)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "deploy", "Deploy", id="models.deploy"),
        Binding("b", "rollback", "Roll back", id="models.rollback"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[str, dict[str, Any]] = {}

    def body(self) -> ComposeResult:
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        yield Static("", id="model-detail", classes="panel")

    def on_mount(self) -> None:
        table = self.query_one("#models", DataTable)
        table.add_columns("kind", "name", "from", "state", "created")
        table.focus()

    async def load(self) -> None:
        models = (await self.call("models.list"))["models"]
        self.models = {m["id"]: m for m in models}
        table = self.query_one("#models", DataTable)
        table.clear()
        for m in models:
            table.add_row(
                m["kind"], m["name"], origin(m), state(m), ago(m["created_at"]), key=m["id"]
            )
        self.show_detail()

    def current(self) -> dict[str, Any] | None:
        return self.models.get(self.cursor_key("models") or "")

    def show_detail(self) -> None:
        model = self.current()
        detail = self.query_one("#model-detail", Static)
        if model is None:
            detail.update("No models yet: `forge jobs submit prepare-model` builds the tiny one.")
            return
        detail.update("\n".join(detail_lines(model)))

    def on_data_table_row_highlighted(self) -> None:
        self.show_detail()

    def action_deploy(self) -> None:
        model = self.current()
        if model is None or model["kind"] not in ("adapter", "merged"):
            self.notify("highlight an adapter or a merged model to deploy", severity="warning")
            return
        self.io(lambda: self._deploy(model), f"deploying {model['name']}")

    def comparison(self, model: dict[str, Any]) -> dict[str, Metrics]:
        """The candidate, what its source's alias serves now, and the base, on held-out data."""
        found = (model.get("data") or {}).get("eval") or {}
        columns: dict[str, Metrics] = {"new": found.get("adapter", {})}
        source = (model.get("data") or {}).get("source")
        serving = [
            m
            for m in self.models.values()
            if m["kind"] == "ollama"
            and m["data"].get("current")
            and m["data"].get("source") == source
        ]
        if serving:
            scores = serving[0]["data"].get("eval") or {}
            columns[f"serving {serving[0]['name']}"] = scores.get("adapter", {})
        columns["base"] = found.get("base", {})
        return columns

    async def _deploy(self, model: dict[str, Any]) -> None:
        tag = await self.app.push_screen_wait(DeployDialog(model, self.comparison(model), ""))
        if tag is None:
            return
        job = await self.call("models.deploy", id=model["id"], **({"tag": tag} if tag else {}))
        self.notify(f"deploying {model['name']} as {job['params']['tag']} ({job['id']})")

    def action_rollback(self) -> None:
        model = self.current()
        alias = ((model or {}).get("data") or {}).get("alias")
        if model is None or model["kind"] != "ollama" or not alias:
            self.notify(
                "highlight a deployed Ollama tag to roll its alias back", severity="warning"
            )
            return
        self.io(lambda: self._rollback(alias), f"rolling {alias} back")

    async def _rollback(self, alias: str) -> None:
        done = await self.call("models.rollback", alias=alias)
        self.notify(f"{alias} serves {done['model']['name']} again")
