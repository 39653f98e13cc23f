"""The new-job wizard: a training run's every parameter, checked as you type, then submitted.

The form is made from the engine's own `TrainParams` model: each field shows its default and
the reason for it (the field's description), and every change is validated by that same model,
so what the wizard accepts is exactly what `jobs.submit` accepts. A field left empty keeps the
engine's default, which for `None` means "sized to this machine when the job starts".
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, get_args

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from forge_api.jobs import TrainParams
from tui.plain import shown
from tui.screens.base import ForgeScreen
from tui.screens.job_detail import JobDetailScreen

FIELDS: dict[str, FieldInfo] = dict(TrainParams.model_fields)


def _choices(info: FieldInfo) -> tuple[str, ...] | None:
    """The options of a Literal field, or None for a free-form one."""
    if typing.get_origin(info.annotation) is typing.Literal:
        return tuple(str(a) for a in get_args(info.annotation))
    return None


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    return "auto" if value is None else str(value)


def help_text(name: str, info: FieldInfo) -> str:
    """The field's default and why; descriptions that start with the default say it themselves."""
    why = info.description or ""
    if why.startswith(("default", "auto:")) or name == "dataset":
        return why
    return f"default {default_text(info)}" + (f": {why}" if why else "")


def parse_form(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Form values to job params, and each bad field's problem, by the engine's own model."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            value = value.strip()
            if not value:
                continue
            if name == "target_modules" and value != "auto":
                value = [v.strip() for v in value.split(",") if v.strip()]
        values[name] = value
    try:
        params = TrainParams.model_validate(values)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "params"
            message = "required" if err["type"] == "missing" else err["msg"]
            problems.setdefault(field, message)
        return values, problems
    return params.model_dump(mode="json", exclude_unset=True), {}


class NewJobScreen(ForgeScreen):
    TITLE = "New job"
    dataset_ids: list[str] | None = None
    """The datasets the daemon has, once loaded: a `ds-` id must be one of them."""
    AUTO_FOCUS = "#f-name"  # typed keys go to the form, not to the app's keys
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="wizard.back"),
        Binding("ctrl+s", "submit", "Submit", id="wizard.submit", priority=True),
    ]

    def body(self) -> ComposeResult:
        with VerticalScroll(id="wizard"):
            yield Static(
                "Train an adapter. Empty fields keep the engine's default; "
                "[b]ctrl+s[/b] submits, [b]escape[/b] goes back.",
                classes="hint",
            )
            with Horizontal(classes="field"):
                yield Label("name", classes="field-name")
                yield Input(
                    placeholder="optional: a name for the job list", id="f-name", compact=True
                )
            for name, info in FIELDS.items():
                with Horizontal(classes="field"):
                    yield Label(name, classes="field-name")
                    yield self._widget(name, info)
                yield Static(help_text(name, info), id=f"h-{name}", classes="field-help")
            yield Button("Submit (ctrl+s)", variant="primary", id="submit")

    @staticmethod
    def _widget(name: str, info: FieldInfo) -> Widget:
        choices = _choices(info)
        default = info.get_default(call_default_factory=True) if not info.is_required() else None
        if choices:
            return Select(
                [(c, c) for c in choices],
                value=str(default),
                allow_blank=False,
                id=f"f-{name}",
                compact=True,
            )
        if isinstance(default, bool):
            return Checkbox(value=default, id=f"f-{name}", compact=True)
        value = "tiny-llama" if name == "base_model" else ""
        placeholder = default_text(info)
        return Input(value=value, placeholder=placeholder, id=f"f-{name}", compact=True)

    async def load(self) -> None:
        models = (await self.call("models.list", kind=["base"]))["models"]
        datasets = (await self.call("datasets.list"))["datasets"]
        base = self.query_one("#f-base_model", Input)
        base.suggester = SuggestFromList([m["name"] for m in models])
        dataset = self.query_one("#f-dataset", Input)
        self.dataset_ids = [d["id"] for d in datasets]
        dataset.suggester = SuggestFromList(self.dataset_ids)
        if datasets and not dataset.value:
            dataset.placeholder = f"e.g. {datasets[0]['id']} ({datasets[0]['name']})"
        found = ", ".join(m["name"] for m in models) or "none yet"
        self._hint("base_model", f"{help_text('base_model', FIELDS['base_model'])}; found: {found}")
        self.validate_form()

    def _hint(self, name: str, text: str) -> None:
        self.query_one(f"#h-{name}", Static).update(text)

    def form(self) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        for name in FIELDS:
            widget = self.query_one(f"#f-{name}")
            if isinstance(widget, (Input, Checkbox, Select)):
                raw[name] = widget.value
        return raw

    def validate_form(self) -> tuple[dict[str, Any], dict[str, str]]:
        params, problems = parse_form(self.form())
        dataset = str(params.get("dataset") or "")
        if self.dataset_ids is not None and dataset.startswith("ds-") and "dataset" not in problems:
            known = [d for d in self.dataset_ids if d.startswith(dataset)]
            if len(known) != 1:
                problems["dataset"] = (
                    f"no dataset {dataset} (Datasets, 4, lists them)"
                    if not known
                    else f"{dataset} could be {', '.join(known[:3])}: give more of it"
                )
        for name, info in FIELDS.items():
            help_widget = self.query_one(f"#h-{name}", Static)
            if name in problems:
                help_widget.update(shown("[red]✖ $problem[/red]", problem=problems[name]))
                help_widget.add_class("bad")
            elif help_widget.has_class("bad"):
                help_widget.remove_class("bad")
                help_widget.update(help_text(name, info))
        return params, problems

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "f-name":
            self.validate_form()

    def on_select_changed(self) -> None:
        self.validate_form()

    def on_checkbox_changed(self) -> None:
        self.validate_form()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()

    def action_submit(self) -> None:
        params, problems = self.validate_form()
        if problems:
            listed = "; ".join(f"{k}: {v}" for k, v in problems.items())
            self.notify(f"not submitted: {listed}", severity="error", timeout=10)
            self.query_one(f"#f-{next(iter(problems))}").focus()
            return
        name = self.query_one("#f-name", Input).value.strip() or None
        self.io(lambda: self._submit(params, name), "submitting the job")

    async def _submit(self, params: dict[str, Any], name: str | None) -> None:
        job = await self.call("jobs.submit", kind="train", params=params, name=name)
        self.notify(f"submitted {job['id']}")
        self.app.switch_screen(JobDetailScreen(job["id"]))
