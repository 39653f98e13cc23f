"""Datasets: every one the agent built or a person imported, its card, and sample examples.

`i` imports a JSONL file (or a folder of them) by path; the daemon checks every line and names
the first bad one by file:line.
"""

from __future__ import annotations

import json
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Static

from forge_api.schema import Dataset, ImportedDataset
from forge_client.format import ago
from forge_client.record_text import card_lines
from tui.plain import cell, lines, shown
from tui.screens.base import ForgeScreen
from tui.widgets.dialogs import AskText

PREVIEW = 5


class DatasetsScreen(ForgeScreen):
    TITLE = "Datasets"
    RELOAD_ON: ClassVar[tuple[str, ...]] = ("dataset.",)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("i", "import_dataset", "Import JSONL", id="datasets.import")
    ]

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, Dataset] = {}

    def body(self) -> ComposeResult:
        yield DataTable(id="datasets", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="dataset-detail", classes="panel"):
            yield Static("Select a dataset to see its card and examples.", id="dataset-card")

    def on_mount(self) -> None:
        table = self.query_one("#datasets", DataTable)
        table.add_columns("id", "name", "examples", "source", "created")
        table.focus()

    async def load(self) -> None:
        listed = (await self.call("datasets.list"))["datasets"]
        datasets = [Dataset.model_validate(d) for d in listed]
        self.datasets = {d.id: d for d in datasets}
        table = self.query_one("#datasets", DataTable)
        table.clear()
        for d in datasets:
            source = d.source_id or "imported"
            table.add_row(
                d.id, cell(d.name), f"{d.examples:,}", source, ago(d.created_at), key=d.id
            )
        await self.show_card()

    async def show_card(self) -> None:
        dataset_id = self.cursor_key("datasets")
        if dataset_id is None:
            return
        d = self.datasets[dataset_id]
        preview = await self.call("datasets.preview", id=dataset_id, limit=PREVIEW)
        text: list[Content | str] = [shown("[b]$name[/b]  $path", name=d.name, path=d.path)]
        text += [*card_lines(d.card), ""]
        text.append(
            Content.from_markup(
                f"[b]first {len(preview['examples'])} of {preview['total']} examples[/b]"
            )
        )
        text += [json.dumps(ex, ensure_ascii=False)[:500] for ex in preview["examples"]]
        self.query_one("#dataset-card", Static).update(lines(text))

    def on_data_table_row_highlighted(self) -> None:
        self.io(lambda: self.show_card(), "loading the dataset", group="detail", exclusive=True)

    def action_import_dataset(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.io(lambda: self._import(path), f"importing {path}")

        self.app.push_screen(
            AskText("Import which JSONL file or folder?", "/path/to/data.jsonl"), chosen
        )

    async def _import(self, path: str) -> None:
        d = ImportedDataset.model_validate(await self.call("datasets.import", path=path))
        said = "already imported as" if d.already_imported else "imported"
        self.notify(f"{said} {d.id}: {d.examples:,} examples")
