"""shards → model: a small real model (TF-IDF + logistic regression) whose data is known.

    <outputs>/models/<name>/<version>/   model.joblib, metrics.json, lineage.json
    <outputs>/models/<name>/latest -> <version>

The version is derived from the dataset version, its commit, the shard manifest and the training code,
so the same inputs give the same model version (and reuse it) while any new dataset version gives a new
one beside the old. The held-out split is chosen by a hash of each sample's key: stable across runs."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import xxhash

from dsm_assets import __version__, atomic, seals
from dsm_assets.errors import StateError, on_disk
from dsm_assets.layout import LATEST, models_dir
from dsm_assets.lineage import LINEAGE, read_lineage_file
from dsm_assets.registry import DatasetSpec, ModelSpec
from dsm_assets.shards import SHARDS_MANIFEST, manifest_hash, webdataset_pipeline

log = logging.getLogger(__name__)

CODE_VERSION = "tfidf-logreg-1"
HELD_OUT_PERCENT = 20


@dataclass(frozen=True)
class ModelResult:
    name: str
    version: str
    folder: Path
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    trained: bool  # False: the same inputs had already produced this model version


def model_version(shards_manifest: dict[str, Any]) -> str:
    key = f"{shards_manifest['commit']}\n{manifest_hash(shards_manifest)}\n{CODE_VERSION}"
    return f"{shards_manifest['version']}-{xxhash.xxh3_64_hexdigest(key.encode())[:10]}"


def train_model(model: ModelSpec, dataset: DatasetSpec, *, shards_folder: Path, outputs_dir: Path,
                upstream: dict[str, Any], run_id: str | None) -> ModelResult:
    """Train `model` on the shards in `shards_folder`. `upstream` is what the orchestrator knows about the
    data's history (remote URL, cleaned version, raw fingerprint), recorded in lineage.json."""
    manifest = json.loads((shards_folder / SHARDS_MANIFEST).read_text())
    version = model_version(manifest)
    root = models_dir(outputs_dir, model.name)
    with on_disk(root, f"training {model.name}"), atomic.dir_lock(root):
        return _train(model, dataset, manifest, version, root, shards_folder, upstream, run_id)


def _train(model: ModelSpec, dataset: DatasetSpec, manifest: dict[str, Any], version: str, root: Path,
           shards_folder: Path, upstream: dict[str, Any], run_id: str | None) -> ModelResult:
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
    texts, labels, held_out = _samples(shards_folder)
    fitted, metrics = _fit(texts, labels, held_out)
    lineage = {
        "model": model.name, "model_version": version, "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dagster_run_id": run_id, "code_version": CODE_VERSION, "dsm_assets_version": __version__,
        "metrics": metrics,
        "dataset": {"name": dataset.name, "version": manifest["version"], "commit": manifest["commit"],
                    "content_hash": manifest["content_hash"], **upstream,
                    "shards": {"folder": str(shards_folder), "manifest_hash": manifest_hash(manifest),
                               "count": len(manifest["shards"]), "samples": manifest["total_samples"]}},
    }
    _write(root, folder, fitted, metrics, lineage)
    _point_latest(root, folder)
    return ModelResult(model.name, version, folder, metrics, lineage, trained=True)


def _broken_artifact(folder: Path, lineage: dict[str, Any]) -> str | None:
    """Why a file of the model folder no longer matches the seal lineage.json recorded for it, or None."""
    sealed = lineage.get("files")
    if not isinstance(sealed, dict) or not sealed:
        return f"{folder / LINEAGE}: records no seals of the model's files (written by an older version)"
    return next((p for name, seal in sorted(sealed.items()) if (p := seals.broken(folder / name, seal))), None)


def _samples(shards_folder: Path) -> tuple[list[str], list[int], list[bool]]:
    texts, labels, held_out = [], [], []
    for sample in webdataset_pipeline(shards_folder, shuffle=0):
        texts.append(sample["txt"].decode())
        labels.append(int(sample["cls"]))
        held_out.append(xxhash.xxh3_64_intdigest(sample["__key__"].encode()) % 100 < HELD_OUT_PERCENT)
    return texts, labels, held_out


def _fit(texts: list[str], labels: list[int], held_out: list[bool]):
    # imported here: scikit-learn is only needed where models are trained
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = [i for i, h in enumerate(held_out) if not h]
    test = [i for i, h in enumerate(held_out) if h]
    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                             LogisticRegression(max_iter=1000, random_state=0))
    pipeline.fit([texts[i] for i in train], [labels[i] for i in train])
    predicted = pipeline.predict([texts[i] for i in test]) if test else []
    correct = sum(int(p == labels[i]) for p, i in zip(predicted, test, strict=True))
    metrics = {"accuracy": correct / len(test) if test else 0.0, "train_samples": len(train),
               "test_samples": len(test)}
    return pipeline, metrics


def _write(root: Path, folder: Path, fitted, metrics: dict[str, Any], lineage: dict[str, Any]) -> None:
    import joblib

    tmp = root / f"{atomic.TEMP_PREFIX}{secrets.token_hex(6)}"
    tmp.mkdir(parents=True)
    try:
        joblib.dump(fitted, tmp / "model.joblib")
        atomic.write_json(tmp / "metrics.json", metrics)
        atomic.fsync_file(tmp / "model.joblib")
        # sealed: a reuse re-hashes any file whose size or mtime moved (the rename below keeps mtimes)
        lineage["files"] = {p.name: seals.seal(p) for p in sorted(tmp.iterdir()) if p.name != LINEAGE}
        atomic.write_json(tmp / LINEAGE, lineage)  # written last inside the folder: its presence means complete
        os.rename(tmp, folder)
        atomic.fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _point_latest(root: Path, folder: Path) -> None:
    link = root / f"{atomic.TEMP_PREFIX}latest-{secrets.token_hex(4)}"
    link.symlink_to(folder.name)
    os.replace(link, root / LATEST)
