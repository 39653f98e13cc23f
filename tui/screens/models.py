"""Models: base models on disk, adapters with their eval metrics and origin, merged models,
and the Ollama tags deployed from them.

`d` opens the deploy dialog for the highlighted adapter or merged model: its held-out metrics
beside those of the model its source's alias serves and of the base, then a tag (empty: the next
`forge-<source>:<n>`). `b` rolls the highlighted Ollama tag's alias back to the tag before.
`e` exports the highlighted adapter, merged or base model as a GGUF file (`forge models export`).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import ValidationError
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Select, Static

from forge_api.jobs import ExportParams
from forge_api.schema import Model
from forge_client.format import ago, metric, size
from tui.plain import cell, lines, shown
from tui.screens.base import ForgeScreen
from tui.widgets.metric_comparison import MetricComparison

Metrics = dict[str, float]


def origin(m: Model) -> str:
    """Where a model came from, in a few words, for the table."""
    data = m.data
    if m.kind == "ollama":
        run = Path(data.adapter or "").parent.name  # the train job's run dir
        return f"{data.mode or '?'}, of {data.source or run or m.base}"
    if data.source:
        return f"{data.source} @ {(data.commit or '')[:8]}"
    if m.kind == "base":
        return data.architecture or data.problem or "-"
    return Path(m.base).name if m.base else "-"


def adapter_scores(m: Model) -> Metrics:
    """The held-out metrics of the model itself (its `adapter` column of the eval)."""
    return (m.data.eval or {}).get("adapter", {})


def state(m: Model) -> str:
    data = m.data
    if data.problem:
        return "unusable"
    if m.kind == "ollama":
        return f"serves {data.alias}" if data.current else "-"
    loss = adapter_scores(m).get("eval_loss")
    return f"eval loss {metric(loss)}" if loss is not None else "-"


def detail_lines(m: Model) -> list[Content | str]:
    """Everything the registry knows about one model, for the panel under the table (names,
    paths and problems are outside text: shown as written)."""
    data = m.data
    out: list[Content | str] = [
        shown("[b]$name[/b] $kind  $path", name=m.name, kind=m.kind, path=m.path or "")
    ]
    if data.problem:
        out.append(shown("[red]unusable:[/red] $problem", problem=data.problem))
    if m.kind == "base" and data.architecture:
        out.append(
            f"{data.architecture}, {data.parameters or 0:,} parameters, {size(data.size_bytes)}"
        )
        for backend, verdict in (data.trainable or {}).items():
            mark = "[green]✔[/green]" if verdict.ok else "[red]✖[/red]"
            out.append(shown(f"  {mark} $backend: $why", backend=backend, why=verdict.why))
    if data.source:
        out.append(f"source {data.source} at commit {(data.commit or '-')[:12]}")
    if m.kind == "adapter":
        out.append(f"method {data.method or '?'}, rank {data.rank or '?'}")
    for who, values in (data.eval or {}).items():
        out.append(f"{who}: " + ", ".join(f"{k} {metric(v)}" for k, v in values.items()))
    if m.kind == "adapter" and not data.eval:
        out.append("not evaluated yet")
    if m.kind == "ollama":
        out.append(f"on {data.host}, {data.mode} from {data.adapter or m.base}")
        if data.alias:
            now = "serves" if data.current else "served"
            out.append(f"{now} as {data.alias}; b rolls the alias back to the tag before")
    return out


class DeployDialog(ModalScreen[tuple[str, str] | None]):
    """The candidate against what is deployed; answers (tag, mode) to deploy with, or None.
    An empty tag is the next `forge-<source>:<n>`; mode `auto` lets the daemon choose."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="deploy.cancel")
    ]

    def __init__(self, model: Model, columns: dict[str, Metrics], tag: str) -> None:
        super().__init__()
        self.model = model
        self.columns = columns
        self.tag = tag

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(
                shown("Deploy [b]$name[/b] ($id) to Ollama", name=self.model.name, id=self.model.id)
            )
            yield MetricComparison(id="comparison", cursor_type="none")
            yield Label("tag (empty: the next forge-<source>:<n>)")
            yield Input(value=self.tag, placeholder="forge-<source>:<n>", id="tag")
            yield Label("how it goes to Ollama")
            yield Select(
                [
                    ("auto: the adapter alone where Ollama has its base, else merged", "auto"),
                    ("adapter: upload only the adapter onto Ollama's base", "adapter"),
                    ("merged: fold it into the base here and upload the whole model", "merged"),
                ],
                value="auto",
                allow_blank=False,
                id="mode",
            )
            with Horizontal(classes="buttons"):
                yield Button("Deploy", variant="primary", id="deploy")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(MetricComparison).show(self.columns)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        tag = self.query_one("#tag", Input).value.strip()
        mode = str(self.query_one("#mode", Select).value)
        self.dismiss((tag, mode) if event.button.id == "deploy" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportDialog(ModalScreen[dict[str, object] | None]):
    """Where and how a model leaves as GGUF; answers the export job's params, or None. An
    adapter leaves as a GGUF LoRA adapter unless merged (a DoRA adapter only merged: a GGUF
    adapter has no place for its magnitude vector); a base or merged model leaves whole."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="export.cancel")
    ]

    def __init__(self, model: Model, folder: Path) -> None:
        super().__init__()
        self.model = model
        self.adapter = model.kind == "adapter"
        self.dora = self.adapter and model.data.method == "dora"
        self.output = folder / f"{model.name}.gguf"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(
                shown("Export [b]$name[/b] ($id) as GGUF", name=self.model.name, id=self.model.id)
            )
            yield Label("the .gguf file to write (on the daemon's machine; it must not exist)")
            yield Input(value=str(self.output), id="output")
            yield Checkbox(
                "merged: fold the adapter into its base, one whole model",
                value=self.dora or not self.adapter,
                disabled=self.dora or not self.adapter,
                id="merged",
            )
            if self.dora:
                yield Label("a DoRA adapter leaves merged: a GGUF adapter has no place for it")
            yield Select(
                [(t, t) for t in ("f16", "bf16", "q8_0", "f32")],
                value="f16",
                allow_blank=False,
                id="outtype",
            )
            yield Label("", id="export-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Export", variant="primary", id="export")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "export":
            self.dismiss(None)
            return
        params: dict[str, object] = {
            "output": self.query_one("#output", Input).value.strip(),
            "outtype": str(self.query_one("#outtype", Select).value),
        }
        if self.adapter:
            params |= {"adapter": self.model.path, "merged": self.query_one(Checkbox).value}
        else:
            params["base_model"] = self.model.path
        try:
            ExportParams.model_validate(params)
        except ValidationError as exc:  # said here, before anything is queued
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            self.query_one("#export-error", Label).update(f"{where}: {first['msg']}")
            return
        self.dismiss(params)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ModelsScreen(ForgeScreen):
    TITLE = "Models"
    RELOAD_ON: ClassVar[tuple[str, ...]] = ("model.",)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "deploy", "Deploy", id="models.deploy"),
        Binding("b", "rollback", "Roll back", id="models.rollback"),
        Binding("e", "export", "Export GGUF", id="models.export"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[str, Model] = {}

    def body(self) -> ComposeResult:
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        yield Static("", id="model-detail", classes="panel")

    def on_mount(self) -> None:
        table = self.query_one("#models", DataTable)
        table.add_columns("kind", "name", "from", "state", "created")
        table.focus()

    async def load(self) -> None:
        listed = (await self.call("models.list"))["models"]
        models = [Model.model_validate(m) for m in listed]
        self.models = {m.id: m for m in models}
        table = self.query_one("#models", DataTable)
        current = self.cursor_key("models")
        table.clear()
        for m in models:
            cells = (m.kind, cell(m.name), cell(origin(m)), state(m), ago(m.created_at))
            table.add_row(*cells, key=m.id)
        if current in self.models:  # a reload keeps the highlighted model highlighted
            table.move_cursor(row=table.get_row_index(current))
        self.show_detail()

    def current(self) -> Model | None:
        return self.models.get(self.cursor_key("models") or "")

    def show_detail(self) -> None:
        model = self.current()
        detail = self.query_one("#model-detail", Static)
        if model is None:
            detail.update("No models yet: `forge jobs submit prepare-model` builds the tiny one.")
            return
        detail.update(lines(detail_lines(model)))

    def on_data_table_row_highlighted(self) -> None:
        self.show_detail()

    def action_deploy(self) -> None:
        model = self.current()
        if model is None or model.kind not in ("adapter", "merged"):
            self.notify("highlight an adapter or a merged model to deploy", severity="warning")
            return
        self.io(lambda: self._deploy(model), f"deploying {model.name}")

    def comparison(self, model: Model) -> dict[str, Metrics]:
        """The candidate, what its source's alias serves now, and the base, on held-out data."""
        columns: dict[str, Metrics] = {"new": adapter_scores(model)}
        serving = [
            m
            for m in self.models.values()
            if m.kind == "ollama" and m.data.current and m.data.source == model.data.source
        ]
        if serving:
            columns[f"serving {serving[0].name}"] = adapter_scores(serving[0])
        columns["base"] = (model.data.eval or {}).get("base", {})
        return columns

    async def _deploy(self, model: Model) -> None:
        answer = await self.app.push_screen_wait(DeployDialog(model, self.comparison(model), ""))
        if answer is None:
            return
        tag, mode = answer
        choices = ({"tag": tag} if tag else {}) | ({"mode": mode} if mode != "auto" else {})
        job = await self.call("models.deploy", id=model.id, **choices)
        self.notify(f"deploying {model.name} as {job['params']['tag']} ({job['id']})")

    def action_export(self) -> None:
        model = self.current()
        if model is None or model.kind not in ("adapter", "merged", "base") or not model.path:
            self.notify("highlight an adapter, merged or base model to export", severity="warning")
            return
        self.io(lambda: self._export(model), f"exporting {model.name}")

    async def _export(self, model: Model) -> None:
        params = await self.app.push_screen_wait(ExportDialog(model, Path.cwd()))
        if params is None:
            return
        job = await self.call("jobs.submit", kind="export", params=params)
        self.notify(f"exporting {model.name} to {params['output']} ({job['id']})")

    def action_rollback(self) -> None:
        model = self.current()
        alias = model.data.alias if model is not None else None
        if model is None or model.kind != "ollama" or not alias:
            self.notify(
                "highlight a deployed Ollama tag to roll its alias back", severity="warning"
            )
            return
        self.confirm(
            f"Point {alias} back at the tag deployed before {model.name}?",
            lambda: self.io(lambda: self._rollback(alias), f"rolling {alias} back"),
        )

    async def _rollback(self, alias: str) -> None:
        done = await self.call("models.rollback", alias=alias)
        self.notify(f"{alias} serves {done['model']['name']} again")
