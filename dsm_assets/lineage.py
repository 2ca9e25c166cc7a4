"""Which data trained this model? The chain from a model version back to the raw files, read from the
model's lineage.json (written at training time from the shards and the cached version they were cut from)
and checked against what is on disk now. Core only: no dagster import, so `dsm lineage` starts fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsm_assets.errors import LineageError, StateError
from dsm_assets.layout import (
    CACHE_MANIFEST,
    INFO_PATH,
    LATEST,
    cache_version_dir,
    cache_version_dir_in,
    clean_dir,
    models_dir,
    verified_record,
)
from dsm_assets.registry import DatasetSpec, display_path
from dsm_assets.state import read_state, shape_problem

LINEAGE = "lineage.json"


def model_versions(outputs_dir: Path, name: str) -> list[str]:
    root = models_dir(outputs_dir, name)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / LINEAGE).is_file() and not p.is_symlink())


def read_lineage(outputs_dir: Path, name: str, version: str | None = None) -> dict[str, Any]:
    versions = model_versions(outputs_dir, name)
    if not versions:
        raise LineageError(f"no trained versions of model '{name}' in {models_dir(outputs_dir, name)}; "
                           f"materialise models/{name} first")
    if version is None:
        latest = models_dir(outputs_dir, name) / LATEST
        version = latest.resolve().name if latest.exists() else versions[-1]
    if version not in versions:
        raise LineageError(f"model '{name}' has no version '{version}' (trained: {', '.join(versions)})")
    return read_lineage_file(models_dir(outputs_dir, name) / version / LINEAGE, name)


LINEAGE_FIELDS = {"model": str, "model_version": str, "metrics": dict, "dataset": dict}
DATASET_FIELDS = {"name": str, "version": str, "commit": str, "content_hash": str, "shards": dict}
SHARDS_FIELDS = {"folder": str, "manifest_hash": str, "count": int, "samples": int}


def read_lineage_file(path: Path, name: str) -> dict[str, Any] | None:
    """A lineage.json, shape-checked (None if absent); a corrupt one is one StateError line."""
    remedy = f"delete its folder and materialise models/{name} to train that version again"
    lineage = read_state(path, LINEAGE_FIELDS, what="model lineage", remedy=remedy)
    problem = lineage and (shape_problem(lineage["dataset"], DATASET_FIELDS)
                           or shape_problem(lineage["dataset"]["shards"], SHARDS_FIELDS))
    if problem:
        raise StateError(f"{path}: the model lineage is malformed (dataset: {problem}); {remedy}")
    return lineage


def _where(address: str | None) -> str:
    """A remote's address as a person reads it: URLs as they are, local paths relative to here."""
    if not address or "://" in address:
        return address or "-"
    return display_path(Path(address))


def _run(lineage: dict[str, Any]) -> str:
    """Which run trained it: the Dagster run, or the job that recorded it from outside Dagster."""
    if lineage.get("recorded_by"):
        return f"recorded on {lineage.get('host') or '?'}" + (f", job {lineage['job']}" if lineage.get("job") else "")
    return f"Dagster run {lineage.get('dagster_run_id') or '-'}"


def chain(lineage: dict[str, Any], cache_dir: Path) -> list[dict[str, Any]]:
    """The lineage as rows, model first, raw last, each marked with whether it is still on disk."""
    d = lineage["dataset"]
    cached = cache_version_dir_in(cache_dir, d["version"], d["commit"])
    shards = Path(d["shards"]["folder"])
    return [
        {"step": "model", "what": f"{lineage['model']} {lineage['model_version']}",
         "detail": f"accuracy {lineage['metrics']['accuracy']:.3f}, code {lineage.get('code_version') or '-'}, "
                   f"trained {lineage['trained_at']}, {_run(lineage)}"},
        {"step": "shards", "what": display_path(shards), "detail": f"manifest {d['shards']['manifest_hash']}, "
                                                         f"{d['shards']['samples']} samples",
         "present": shards.is_dir()},
        {"step": "cache", "what": display_path(cached),
         "detail": "cached" if cached.is_dir() else "NOT CACHED any more", "present": cached.is_dir()},
        {"step": "published", "what": f"{d['name']} {d['version']}",
         "detail": f"commit {d['commit']} at {_where(d.get('remote_url'))}"},
        {"step": "cleaned", "what": f"content hash {d['content_hash']}", "detail": ""},
        {"step": "raw", "what": f"fingerprint {d.get('raw_fingerprint') or 'unknown'}", "detail": ""},
    ]


def upstream_of(spec: DatasetSpec, data_dir: Path, tag: str, commit: str, content_hash: str) -> dict[str, Any]:
    """Where a cached version came from, as lineage.json records it: the remote URL of its commit (from the
    cache manifest, else the verified record of that commit), the cleaned version, and the raw fingerprint
    it was cleaned from (from its dsm.json, else the cleaned data's stats). Local files only, no instance."""
    folder = cache_version_dir(spec, data_dir, tag, commit)
    url = _object(folder / CACHE_MANIFEST).get("url")
    if url is None:
        verified = _object(verified_record(data_dir, spec.name))
        url = verified.get("url") if verified.get("commit") == commit else None
    raw = (_object(folder / INFO_PATH).get("raw_fingerprint")
           or _object(clean_dir(data_dir, spec.name) / f"{content_hash}.json").get("raw_fingerprint"))
    return {"remote_url": url, "cleaned_version": content_hash, "raw_fingerprint": raw}


def _object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; {} when absent, unreadable or not an object (lineage then says unknown)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
