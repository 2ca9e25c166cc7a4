"""shards → model: a model version whose data is known, whatever code trained it.

    <outputs>/models/<name>/<version>/   the model's files, metrics.json, lineage.json
    <outputs>/models/<name>/latest -> <version>

The training itself is the user's (a producer writing the model's files: their script through Pipes, or
files a job trained elsewhere); this module versions, seals and records it. The version is derived from
the dataset version, its commit, the shard manifest and the code, so the same inputs give the same model
version (and reuse it) while new data or new code gives a new one beside the old."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import xxhash

from dsm_assets import __version__, atomic, seals
from dsm_assets.errors import StateError, TrainingError, on_disk
from dsm_assets.fingerprint import hash_file
from dsm_assets.layout import LATEST, models_dir
from dsm_assets.lineage import LINEAGE, read_lineage_file
from dsm_assets.registry import DatasetSpec, ModelSpec
from dsm_assets.shards import SHARDS_MANIFEST, manifest_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelResult:
    name: str
    version: str
    folder: Path
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    trained: bool  # False: the same inputs had already produced this model version


# Writes a model's files into the (empty) folder it is given and returns the metrics it measured.
Producer = Callable[[Path], dict[str, Any]]


def model_version(shards_manifest: dict[str, Any], code_version: str) -> str:
    key = f"{shards_manifest['commit']}\n{manifest_hash(shards_manifest)}\n{code_version}"
    return f"{shards_manifest['version']}-{xxhash.xxh3_64_hexdigest(key.encode())[:10]}"


def files_digest(files: list[tuple[str, Path]]) -> str:
    """xxh3 over each file's name and streamed content hash: the code part of a model version."""
    digest = xxhash.xxh3_128()
    for name, path in files:
        digest.update(f"{name}\0{hash_file(path)}\0".encode())
    return digest.hexdigest()[:16]


def code_version_of(model: ModelSpec, base: Path) -> str:
    """`code-<xxh3>` of the files `model.train.code` lists (relative to `base`, the registry's folder), names
    and contents: editing any of them gives a new model version."""
    files = [(name, base / name) for name in sorted(model.train.code)]
    for name, path in files:
        if not path.is_file():
            raise TrainingError(f"models/{model.name}: train.code file {name} is not a readable file (looked in "
                                f"{base}); fix the path in the registry")
    return f"code-{files_digest(files)}"


def train_model(model: ModelSpec, dataset: DatasetSpec, *, shards_folder: Path, outputs_dir: Path,
                upstream: dict[str, Any], run_id: str | None, produce: Producer, code_version: str,
                extra: dict[str, Any] | None = None) -> ModelResult:
    """Train `model` on the shards in `shards_folder`, or reuse the version these inputs already produced.
    `produce` writes the model's files (the user's training code, run through Pipes, or the files a job
    trained elsewhere); `code_version` names the code (a hash of its files), so editing it trains a new
    version. `upstream` is
    what is known about the data's history (remote URL, cleaned version, raw fingerprint); `extra` goes
    into lineage.json as it is (who recorded a model trained elsewhere)."""
    manifest = json.loads((shards_folder / SHARDS_MANIFEST).read_text())
    version = model_version(manifest, code_version)
    root = models_dir(outputs_dir, model.name)
    with on_disk(root, f"training {model.name}"), atomic.dir_lock(root):
        return _train(model, dataset, manifest, version, root, shards_folder, upstream, run_id, produce,
                      code_version, extra or {})


def _train(model: ModelSpec, dataset: DatasetSpec, manifest: dict[str, Any], version: str, root: Path,
           shards_folder: Path, upstream: dict[str, Any], run_id: str | None, produce: Producer,
           code_version: str, extra: dict[str, Any]) -> ModelResult:
    atomic.remove_stale_temps(root)
    folder = root / version
    try:
        lineage = read_lineage_file(folder / LINEAGE, model.name)
        problem = lineage and _broken_artifact(folder, lineage)
    except StateError as exc:
        lineage, problem = None, str(exc)
    if problem:  # not reused: set aside and trained again (the next run repairs it)
        log.warning("%s; training this version again", problem)
        aside = root / f"{atomic.TEMP_PREFIX}corrupt-{secrets.token_hex(4)}"
        os.rename(folder, aside)  # out of the way at once; a crash before the rmtree leaves only a temp
        shutil.rmtree(aside)
        lineage = None
    if lineage is not None:
        _point_latest(root, folder)
        return ModelResult(model.name, version, folder, lineage["metrics"], lineage, trained=False)
    lineage = {
        "model": model.name, "model_version": version, "trained_at": None,
        "dagster_run_id": run_id, "code_version": code_version, "dsm_assets_version": __version__, **extra,
        "dataset": {"name": dataset.name, "version": manifest["version"], "commit": manifest["commit"],
                    "content_hash": manifest["content_hash"], **upstream,
                    "shards": {"folder": str(shards_folder), "manifest_hash": manifest_hash(manifest),
                               "count": len(manifest["shards"]), "samples": manifest["total_samples"]}},
    }
    _build(model, root, folder, produce, lineage)
    _point_latest(root, folder)
    return ModelResult(model.name, version, folder, lineage["metrics"], lineage, trained=True)


def _broken_artifact(folder: Path, lineage: dict[str, Any]) -> str | None:
    """Why a file of the model folder no longer matches the seal lineage.json recorded for it, or None."""
    sealed = lineage.get("files")
    if not isinstance(sealed, dict) or not sealed:
        return f"{folder / LINEAGE}: records no seals of the model's files (written by an older version)"
    return next((p for name, seal in sorted(sealed.items()) if (p := seals.broken(folder / name, seal))), None)


def _build(model: ModelSpec, root: Path, folder: Path, produce: Producer, lineage: dict[str, Any]) -> None:
    """Produce the model's files in a temp folder, then add metrics.json and lineage.json (sealing every file)
    and rename it into place: a crash or a failed producer leaves no half-written version."""
    tmp = root / f"{atomic.TEMP_PREFIX}{secrets.token_hex(6)}"
    tmp.mkdir(parents=True)
    try:
        metrics = produce(tmp)
        if not isinstance(metrics.get(model.metric), int | float):
            raise TrainingError(f"models/{model.name}: the training code reported no numeric '{model.metric}' "
                                f"metric (reported: {', '.join(sorted(metrics)) or 'none'}); report it through "
                                "Pipes (see README, Bring your own training code)")
        _refuse_links_out(model, tmp)
        lineage["metrics"] = metrics
        lineage["trained_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        atomic.write_json(tmp / "metrics.json", metrics)
        for path in _files(tmp):
            atomic.fsync_file(path)
        # sealed: a reuse re-hashes any file whose size or mtime moved (the rename below keeps mtimes)
        lineage["files"] = {p.relative_to(tmp).as_posix(): seals.seal(p) for p in _files(tmp) if p.name != LINEAGE}
        atomic.write_json(tmp / LINEAGE, lineage)  # written last inside the folder: its presence means complete
        os.rename(tmp, folder)
        atomic.fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _refuse_links_out(model: ModelSpec, folder: Path) -> None:
    """The model folder holds only what the code wrote into it: a symlink leading out of it is refused."""
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() and folder.resolve() not in path.resolve().parents:
            raise TrainingError(f"models/{model.name}: the training code left {path.relative_to(folder)} linking "
                                f"outside its output folder (to {path.resolve()}); write the model's files into "
                                "the folder itself")


def _point_latest(root: Path, folder: Path) -> None:
    link = root / f"{atomic.TEMP_PREFIX}latest-{secrets.token_hex(4)}"
    link.symlink_to(folder.name)
    os.replace(link, root / LATEST)
