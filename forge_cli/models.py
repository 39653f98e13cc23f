"""`forge models …` and `forge datasets …`: the registry of models and the datasets."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, get_args

from forge_api.names import ModelKind
from forge_cli.context import EXIT_USAGE, AddCommand, Cli, Subparsers, table
from forge_cli.jobs import follow


def cmd_models_ls(cli: Cli) -> int:
    def show(r: dict[str, Any]) -> None:
        rows = []
        for m in r["models"]:
            data = m.get("data") or {}
            params = data.get("parameters")
            size = f"{params / 1e6:.1f}M" if params else "-"
            loss = (data.get("eval") or {}).get("adapter", {}).get("eval_loss")
            note = data.get("problem") or (f"serves {data['alias']}" if data.get("current") else "")
            if loss is not None:
                note = f"eval loss {loss:.4f} {note}".strip()
            rows.append([m["id"], m["kind"], m["name"], size, note or "-"])
        table(rows, ["ID", "KIND", "NAME", "PARAMS", "NOTE"])

    kinds = [cli.args.kind] if cli.args.kind else None
    cli.out(cli.call("models.list", kind=kinds), show)
    return 0


def cmd_models_deploy(cli: Cli) -> int:
    params = {"id": cli.args.id, "tag": cli.args.tag, "mode": cli.args.mode}
    job = cli.call("models.deploy", **{k: v for k, v in params.items() if v})
    cli.out(job, lambda j: print(f"deploying as {j['params']['tag']}: job {j['id']}"))
    return 0


def _submit_and_follow(
    cli: Cli, kind: str, params: dict[str, Any], doing: str, after: str = ""
) -> int:
    """Queue a job and follow its log to its end, unless asked not to (`--no-follow`, `--json`):
    what `models import`, `pull` and `export` all are."""
    job = cli.call("jobs.submit", kind=kind, params=params)
    if cli.args.no_follow or cli.args.json:
        cli.out(job, lambda j: print(f"{doing}: job {j['id']}"))
        return 0
    print(f"{doing} (job {job['id']}){after}")
    return follow(cli, job["id"], tail=None)


def _prepare_base(cli: Cli, path: str, verb: str) -> int:
    """Queue the prepare-model job that makes `path` a base model, and follow it."""
    params = {"path": path} | ({"name": cli.args.name} if cli.args.name else {})
    after = "; it becomes a base model in `forge models ls`"
    return _submit_and_follow(cli, "prepare-model", params, f"{verb} {path}", after)


def cmd_models_import(cli: Cli) -> int:
    """A GGUF file (or ollama:NAME[:TAG]) becomes a trainable base model."""
    ref = cli.args.source
    if not ref.startswith("ollama:") and not cli.args.host:
        if not os.path.isfile(ref):
            print(
                f"forge: {ref}: no such file (a .gguf file or ollama:NAME[:TAG])", file=sys.stderr
            )
            return EXIT_USAGE
        ref = os.path.abspath(ref)
    return _prepare_base(cli, ref, "importing")


def cmd_models_pull(cli: Cli) -> int:
    """A model from the Hugging Face Hub becomes a trainable base model."""
    return _prepare_base(cli, "hf:" + cli.args.hf_id.removeprefix("hf:"), "pulling")


def cmd_models_export(cli: Cli) -> int:
    """An adapter (or a base or merged model) becomes a GGUF file llama.cpp and Ollama load."""
    ref = cli.args.model
    found = next(
        (m for m in cli.call("models.list")["models"] if ref in (m["id"], m["name"])), None
    )
    if found is not None:
        path, is_adapter = found["path"], found["kind"] == "adapter"
    else:  # a folder given by its path
        path = os.path.abspath(ref) if not cli.args.host else ref
        is_adapter = os.path.isfile(os.path.join(path, "adapter_config.json"))
    output = cli.args.output if cli.args.host else os.path.abspath(cli.args.output)
    params: dict[str, Any] = {"output": output, "outtype": cli.args.outtype}
    params |= {"adapter": path, "merged": cli.args.merged} if is_adapter else {"base_model": path}
    return _submit_and_follow(cli, "export", params, f"exporting {ref} to {output}")


def cmd_models_rollback(cli: Cli) -> int:
    target = (
        {"alias": cli.args.target} if ":" in cli.args.target else {"source_id": cli.args.target}
    )
    cli.out(
        cli.call("models.rollback", **target),
        lambda r: print(f"{r['alias']} serves {r['model']['name']} again"),
    )
    return 0


def cmd_datasets_ls(cli: Cli) -> int:
    def show(r: dict[str, Any]) -> None:
        rows = [[d["id"], d["name"], str(d["examples"]), d["path"]] for d in r["datasets"]]
        table(rows, ["ID", "NAME", "EXAMPLES", "PATH"])

    cli.out(cli.call("datasets.list"), show)
    return 0


def cmd_datasets_import(cli: Cli) -> int:
    params: dict[str, Any] = {"path": str(Path(cli.args.path).expanduser().resolve())}
    if cli.args.name:
        params["name"] = cli.args.name

    def show(d: dict[str, Any]) -> None:
        if d.get("already_imported"):
            print(f"already imported as {d['id']} ({d['name']}): {d['examples']} examples")
        else:
            print(f"imported {d['id']}: {d['examples']} examples")

    cli.out(cli.call("datasets.import", **params), show)
    return 0


def register(sub: Subparsers, add: AddCommand) -> None:
    """The commands of this module, under `forge`."""
    models = sub.add_parser("models", help="the model registry")
    msub2 = models.add_subparsers(dest="models_action", required=True, metavar="ACTION")
    p = add(msub2, "ls", cmd_models_ls, "list models")
    p.add_argument("--kind", choices=get_args(ModelKind))
    p = add(msub2, "deploy", cmd_models_deploy, "make an adapter or merged model an Ollama tag")
    p.add_argument("id", help="the model's id (forge models ls)")
    p.add_argument("--tag", help="the Ollama name (default: forge-<source>:<next number>)")
    p.add_argument("--mode", choices=["adapter", "merged"], help="default: adapter where it can")
    p = add(msub2, "import", cmd_models_import, "import a GGUF model as a trainable base model")
    p.add_argument("source", help="a .gguf file, or ollama:NAME[:TAG] from the local Ollama")
    p.add_argument("--name", help="its folder name under the models dir (default: the file's)")
    p.add_argument("--no-follow", action="store_true", help="queue it and return")
    p = add(msub2, "pull", cmd_models_pull, "download a model from the Hugging Face Hub")
    p.add_argument("hf_id", help="ORG/NAME, or ORG/NAME@REVISION (a branch, tag or commit)")
    p.add_argument("--name", help="its folder name under the models dir (default: NAME)")
    p.add_argument("--no-follow", action="store_true", help="queue it and return")
    p = add(msub2, "export", cmd_models_export, "write a GGUF file llama.cpp and Ollama load")
    p.add_argument("model", help="a model's id or name (forge models ls), or a folder")
    p.add_argument("--format", choices=["gguf"], default="gguf", help="the file format (gguf)")
    p.add_argument("--merged", action="store_true", help="an adapter folded into its base")
    p.add_argument("--outtype", choices=["f16", "q8_0", "bf16", "f32"], default="f16")
    p.add_argument("-o", "--output", required=True, help="the .gguf file to write")
    p.add_argument("--no-follow", action="store_true", help="queue it and return")
    p = add(msub2, "rollback", cmd_models_rollback, "point an alias back at the previous tag")
    p.add_argument("target", help="a source id, or an alias such as forge-myrepo:latest")

    datasets = sub.add_parser("datasets", help="datasets built or imported")
    dsub2 = datasets.add_subparsers(dest="datasets_action", required=True, metavar="ACTION")
    add(dsub2, "ls", cmd_datasets_ls, "list datasets")
    p = add(dsub2, "import", cmd_datasets_import, "import a JSONL file")
    p.add_argument("path")
    p.add_argument("--name")
