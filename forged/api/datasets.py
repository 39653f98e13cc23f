"""datasets.*: the JSONL datasets the agent built or the person imported."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

from engine.data import DataError, count_examples
from forge_api import methods as M
from forge_api.atomic_file import replacing
from forge_api.mission_data import DatasetCard
from forge_api.protocol import INVALID_PARAMS
from forge_api.schema import (
    DatasetsImportParams,
    DatasetsListParams,
    DatasetsListResult,
    DatasetsPreviewParams,
    DatasetsPreviewResult,
    ImportedDataset,
)
from forged.context import Session
from forged.rpc import Registry, RpcError, lookup


def _copy_in(src: Path, dest: Path) -> None:
    with replacing(dest) as tmp:
        shutil.copyfile(src, tmp)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _head(path: Path, limit: int) -> list[dict[str, Any]]:
    """The first examples of a file, or of a folder's files taken in turn, so a built dataset's
    preview shows every builder's kind of example rather than only the first file's."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    per_file: list[list[dict[str, Any]]] = []
    for file in files:
        found: list[dict[str, Any]] = []
        with file.open("rb") as fh:
            for raw in fh:
                if raw.strip():
                    found.append(json.loads(raw))
                    if len(found) >= limit:
                        break
        per_file.append(found)
    interleaved = [ex for group in itertools.zip_longest(*per_file) for ex in group if ex]
    return interleaved[:limit]


def register(reg: Registry[Session]) -> None:
    @reg.method(M.DATASETS_LIST)
    async def datasets_list(p: DatasetsListParams, s: Session) -> DatasetsListResult:
        """Datasets, newest first, optionally of one source."""
        return DatasetsListResult(datasets=s.services.store.list_datasets(p.source_id))

    @reg.method(M.DATASETS_PREVIEW)
    async def datasets_preview(p: DatasetsPreviewParams, s: Session) -> DatasetsPreviewResult:
        """The first examples of a dataset."""
        dataset = lookup(s.services.store.get_dataset, "dataset", p.id)
        try:
            examples = await asyncio.to_thread(_head, Path(dataset.path), p.limit)
        except FileNotFoundError:
            raise RpcError(
                INVALID_PARAMS, f"dataset {p.id}: its file {dataset.path} is gone"
            ) from None
        return DatasetsPreviewResult(examples=examples, total=dataset.examples)

    @reg.method(M.DATASETS_IMPORT)
    async def datasets_import(p: DatasetsImportParams, s: Session) -> ImportedDataset:
        """Copy a JSONL file into the data dir as a dataset, after checking every line as training
        will (format and fields, not only JSON), naming the person's own file and line."""
        src = Path(p.path).expanduser()
        if not src.is_absolute():
            problem = "not an absolute path (the daemon has no working folder of yours)"
        elif not src.exists():
            problem = "no such file"
        elif not src.is_file():
            problem = "not a file"
        else:
            problem = None
        if problem:
            raise RpcError(INVALID_PARAMS, f"{p.path}: {problem}", {"param": "path"})
        try:
            count = await asyncio.to_thread(count_examples, src)
            digest = await asyncio.to_thread(_sha256, src)
        except (OSError, DataError) as exc:
            raise RpcError(INVALID_PARAMS, str(exc), {"param": "path"}) from exc
        store = s.services.store
        same = [d for d in store.list_datasets(None) if d.card.sha256 == digest]
        if same and Path(same[0].path).exists():  # one dataset per content, not per import
            return ImportedDataset(**same[0].model_dump(), already_imported=True)
        name = p.name or src.stem
        dest = s.services.paths.datasets_dir / f"{name}-{os.urandom(3).hex()}.jsonl"
        await asyncio.to_thread(_copy_in, src, dest)
        card = DatasetCard(imported_from=str(src), bytes=dest.stat().st_size, sha256=digest)
        dataset = store.add_dataset(name, str(dest), count, card, None)
        return ImportedDataset(**dataset.model_dump())
