"""Models trained outside Dagster (a batch job on a training node with no network): record what the job
trained on, from what it actually loaded.

    data = dsm_assets.load("text_reviews")            # every load in the process is remembered
    ... train, save the model's files into `folder` ...
    dsm_assets.record_model("sentiment", folder, metrics={"accuracy": 0.93}, code=[__file__])

`record_model` writes the model as `<outputs>/models/<name>/<version>/` beside the ones Dagster trains, with
its metrics.json and lineage.json (the dataset version and commit the process loaded, that version's shards,
the code's hash, the job) and seals. Nothing reaches the Dagster instance from the node: the
`recorded_models` sensor finds the lineage file on the shared filesystem and reports the materialisation."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

from dsm_assets import paths
from dsm_assets.errors import TrainingError
from dsm_assets.layout import SHARDS_MANIFEST, shards_dir
from dsm_assets.lineage import upstream_of
from dsm_assets.provenance import loaded_version
from dsm_assets.registry import Registry, load_registry
from dsm_assets.training import ModelResult, files_digest, train_model

RECORDED_BY = "dsm_assets.record_model"


def record_model(name: str, folder: Path | str, *, metrics: dict[str, Any], code: list[Path | str] = (),
                 registry: Registry | None = None, data_dir: Path | None = None,
                 outputs_dir: Path | None = None) -> ModelResult:
    """Record the model in `folder` (its files are copied) as a version of registry model `name`, trained on
    the version of its dataset this process loaded. `code` lists the training files to hash into the version."""
    registry = registry or load_registry()
    model = registry.model(name)
    dataset = registry.get(model.dataset)
    data_dir, outputs_dir = data_dir or paths.data_dir(), outputs_dir or paths.outputs_dir()
    loaded = loaded_version(dataset.name)
    if loaded is None:
        raise TrainingError(f"models/{name}: this process never called dsm_assets.load({dataset.name!r}); lineage "
                            "records what the job loaded, so load the data with it before record_model")
    source = Path(folder)
    if not source.is_dir():
        raise TrainingError(f"models/{name}: {source} is not a folder; save the model's files into one")
    shards = shards_dir(outputs_dir, dataset, loaded.tag, loaded.commit)
    if not (shards / SHARDS_MANIFEST).is_file():
        raise TrainingError(f"models/{name}: no shards of {dataset.name} {loaded.tag} in {shards}; let the "
                            f"orchestrator materialise {dataset.name}/shards, then record the model")
    upstream = upstream_of(dataset, data_dir, loaded.tag, loaded.commit, loaded.content_hash)
    return train_model(model, dataset, shards_folder=shards, outputs_dir=outputs_dir, upstream=upstream,
                       run_id=None, produce=lambda tmp: _copy(source, tmp, metrics),
                       code_version=_code_version(source, code), extra=_job())


def _copy(source: Path, target: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
    return dict(metrics)


def _code_version(source: Path, code: list[Path | str]) -> str:
    """`outside-<xxh3>` over the code files and the model's own files: new weights or new code, new version."""
    files = [(Path(c).name, Path(c)) for c in code]
    files += [(p.relative_to(source).as_posix(), p) for p in sorted(source.rglob("*")) if p.is_file()]
    return f"outside-{files_digest(files)}"


def _job() -> dict[str, Any]:
    """Where the model was recorded: the host, and the batch job when there is one."""
    return {"recorded_by": RECORDED_BY, "host": socket.gethostname(),
            "job": os.environ.get("SLURM_JOB_ID") or os.environ.get("JOB_ID")}
