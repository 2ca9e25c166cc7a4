"""What each hop hands the next, through Dagster's event log: per hop one writer (the metadata its
materialisation records) and one reader (the core record rebuilt from the latest materialisation).
Metadata keys are named here and nowhere else in the Dagster layer.

    cleaned   → cleaning.CleanResult       (published, round_trip)
    published → records.PublishedVersion   (round_trip)
    cache     → records.CachedVersion      (shards)
    shards    → records.ShardSet           (models)
    models    → records.TrainedModel       (the accuracy check)

Each reader asks for the latest materialisation only: no history scans, nothing silently capped."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from dsm_assets import training
from dsm_assets.cache import CacheResult
from dsm_assets.cleaning import CleanResult
from dsm_assets.defs.keys import cache_key, cleaned_key, model_key, published_key, shards_key
from dsm_assets.defs.presentation import location, markdown_table, size
from dsm_assets.lineage import LINEAGE, chain
from dsm_assets.parquet_files import list_files
from dsm_assets.publishing import PublishOutcome
from dsm_assets.records import CachedVersion, PublishedVersion, ShardSet, TrainedModel
from dsm_assets.registry import DatasetSpec, ModelSpec
from dsm_assets.shards import SHARDS_MANIFEST, ShardsResult

# Keys more than one hop writes: the version tag and commit a hop holds, its folder or file, its row count.
VERSION = "version"
COMMIT = "commit"
PATH = "path"
FILES = "files"
URL = "url"
ROW_COUNT = "dagster/row_count"
CONTENT_HASH = "content_hash"
# cleaned
ROWS_IN, ROWS_OUT, REUSED, RAW_FINGERPRINT = "rows_in", "rows_out", "reused", "raw_fingerprint"
COLUMN_SCHEMA = "dagster/column_schema"
DROPPED_PREFIX = "dropped_"
CONTACT_SHEET = "contact_sheet"  # an image dataset's thumbnails
MEDIA_PREFIX = "media_"  # + column: the kinds and ranges of an image or audio column (MediaStats)
# published
BYTES_UPLOADED, NEW_VERSION = "bytes_uploaded", "new_version"
BYTES_REUSED, FILES_UPLOADED, FILES_REUSED = "bytes_reused", "files_uploaded", "files_reused"
# shards
MANIFEST_PATH, MANIFEST_HASH, SHARD_COUNT = "manifest", "manifest_hash", "shards"
# models
ACCURACY, MODEL_VERSION, SHARDS_MANIFEST_HASH = "accuracy", "model_version", "shards_manifest_hash"
DATASET_VERSION, DATASET_COMMIT, LINEAGE_FILE = "dataset_version", "dataset_commit", "lineage_file"

# Which of its own metadata keys holds the parent's data version a hop was built from (the automation
# condition compares it with what the parent offers now).
CACHE_HOLDS = COMMIT  # the published commit
SHARDS_HOLD = COMMIT  # the cached commit
MODEL_HOLDS = SHARDS_MANIFEST_HASH  # the shards' manifest hash

# Preview cells are cut short so that every column fits the asset page's metadata panel.
PREVIEW_CELL = 40  # a media cell, `PNG 24×24, 812 B, circle/0001.png`, fits whole
# Hops from a model back to its raw files: raw, cleaned, published, cache, shards.
LINEAGE_DEPTH = 5


def latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> Mapping[str, dg.MetadataValue] | None:
    event = instance.get_latest_materialization_event(key)
    return event.asset_materialization.metadata if event and event.asset_materialization else None


def held(instance: dg.DagsterInstance, key: dg.AssetKey, holds: str) -> str | None:
    """The parent data version `key`'s latest materialisation recorded under `holds`, None if never built."""
    meta = latest_metadata(instance, key)
    return str(meta[holds].value) if meta and holds in meta else None


# cleaned

def cleaned_metadata(spec: DatasetSpec, result: CleanResult) -> dict[str, Any]:
    columns = [dg.TableColumn(name, type_, description=spec.column_docs.get(name))
               for name, type_ in result.schema.items()]
    meta: dict[str, Any] = {
        ROW_COUNT: result.rows_out,
        ROWS_IN: result.rows_in,
        ROWS_OUT: result.rows_out,
        "rows_dropped": result.rows_in - result.rows_out,
        COLUMN_SCHEMA: dg.TableSchema(columns=columns),
        "preview": dg.MetadataValue.md(markdown_table(result.preview, list(result.schema), max_cell=PREVIEW_CELL)),
        PATH: dg.MetadataValue.path(str(result.path)),
        "size": size(result.size),
        FILES: len(result.files),
        CONTENT_HASH: result.version,
        RAW_FINGERPRINT: result.raw_fingerprint,
        REUSED: result.reused,
    }
    meta.update({f"{DROPPED_PREFIX}{reason.replace(':', '_')}": n for reason, n in result.dropped.items()})
    meta.update({f"{MEDIA_PREFIX}{col}": dg.MetadataValue.json(stats) for col, stats in result.media.items()})
    if result.contact_sheet is not None:
        meta[CONTACT_SHEET] = dg.MetadataValue.path(str(result.contact_sheet))
    return meta


def read_cleaned(instance: dg.DagsterInstance, spec: DatasetSpec) -> CleanResult | None:
    """The cleaned files the latest materialisation recorded (None if never materialised or since deleted)."""
    meta = latest_metadata(instance, cleaned_key(spec))
    folder = Path(meta[PATH].value) if meta is not None else None
    files = () if folder is None else list_files(folder) if folder.is_dir() else (folder,) if folder.is_file() else ()
    if not files:
        return None
    return CleanResult(
        version=meta[CONTENT_HASH].value, path=folder, files=files, rows_in=meta[ROWS_IN].value,
        rows_out=meta[ROWS_OUT].value, schema={c.name: c.type for c in meta[COLUMN_SCHEMA].value.columns},
        dropped={k.removeprefix(DROPPED_PREFIX): v.value for k, v in meta.items() if k.startswith(DROPPED_PREFIX)},
        preview=[], raw_fingerprint=meta[RAW_FINGERPRINT].value, reused=meta[REUSED].value,
        media={k.removeprefix(MEDIA_PREFIX): v.value for k, v in meta.items() if k.startswith(MEDIA_PREFIX)},
        contact_sheet=Path(meta[CONTACT_SHEET].value) if CONTACT_SHEET in meta else None)


# published

def published_metadata(outcome: PublishOutcome) -> dict[str, Any]:
    return {
        VERSION: outcome.tag,
        COMMIT: outcome.commit,
        URL: location(outcome.url),
        "uploaded": size(outcome.bytes_uploaded),
        BYTES_UPLOADED: outcome.bytes_uploaded,
        "reused": size(outcome.bytes_reused),  # content the remote already held (an earlier version's files)
        BYTES_REUSED: outcome.bytes_reused,
        "files": len(outcome.files),
        FILES_UPLOADED: len(outcome.files) - outcome.files_reused,
        FILES_REUSED: outcome.files_reused,
        NEW_VERSION: outcome.new,
        CONTENT_HASH: outcome.content_hash,
        ROW_COUNT: outcome.rows,
    }


def read_published(instance: dg.DagsterInstance, spec: DatasetSpec) -> PublishedVersion | None:
    meta = latest_metadata(instance, published_key(spec))
    if meta is None:
        return None
    return PublishedVersion(dataset=spec.name, tag=meta[VERSION].value, commit=meta[COMMIT].value,
                            url=meta[URL].value, content_hash=meta[CONTENT_HASH].value, rows=meta[ROW_COUNT].value)


# cache

def cache_metadata(result: CacheResult) -> dict[str, Any]:
    return {
        VERSION: result.tag, COMMIT: result.commit, PATH: dg.MetadataValue.path(str(result.path)),
        "files": len(result.files), "size": size(result.bytes), ROW_COUNT: result.rows,
        "refreshed": result.refreshed, "pruned": ", ".join(result.pruned) or "none",
    }


def read_cache(instance: dg.DagsterInstance, spec: DatasetSpec) -> CachedVersion | None:
    meta = latest_metadata(instance, cache_key(spec))
    if meta is None:
        return None
    return CachedVersion(dataset=spec.name, tag=meta[VERSION].value, commit=meta[COMMIT].value,
                         folder=Path(meta[PATH].value), rows=meta[ROW_COUNT].value)


# shards

def shards_metadata(result: ShardsResult, published: str) -> dict[str, Any]:
    m = result.manifest
    return {
        VERSION: m["version"], COMMIT: m["commit"], SHARD_COUNT: len(m["shards"]),
        ROW_COUNT: m["total_samples"], "size": size(sum(s["bytes"] for s in m["shards"])),
        MANIFEST_PATH: dg.MetadataValue.path(str(result.folder / SHARDS_MANIFEST)),
        MANIFEST_HASH: result.manifest_hash, "written": result.written, "fields": ", ".join(m["fields"]),
        "published": published,
    }


def read_shards(instance: dg.DagsterInstance, spec: DatasetSpec) -> ShardSet | None:
    meta = latest_metadata(instance, shards_key(spec))
    if meta is None:
        return None
    return ShardSet(dataset=spec.name, folder=Path(meta[MANIFEST_PATH].value).parent,
                    manifest_hash=meta[MANIFEST_HASH].value, tag=meta[VERSION].value, commit=meta[COMMIT].value,
                    count=meta[SHARD_COUNT].value)


# models

def model_metadata(result: training.ModelResult, cache_dir: Path) -> dict[str, Any]:
    """The model page answers "which data trained this" on its own: every link of the chain, and the chain
    as one table (the same rows `dsm lineage` prints)."""
    lineage, d = result.lineage, result.lineage["dataset"]
    run_id = lineage.get("dagster_run_id")
    rows = [{"step": r["step"], "what": f"{r['what']} ({r['detail']})" if r["detail"] else r["what"]}
            for r in chain(lineage, cache_dir)]
    key = model_key(lineage["model"])
    return {
        ACCURACY: dg.MetadataValue.text(f"{result.metrics['accuracy']:.3f}"),
        MODEL_VERSION: result.version,
        "dataset": d["name"],
        DATASET_VERSION: d["version"],
        "published_at": location(d.get("remote_url") or "-"),
        DATASET_COMMIT: d["commit"],
        CONTENT_HASH: d["content_hash"],
        SHARDS_MANIFEST_HASH: d["shards"]["manifest_hash"],
        "shards": d["shards"]["count"],
        "shards_manifest": dg.MetadataValue.path(str(Path(d["shards"]["folder"]) / SHARDS_MANIFEST)),
        "cleaned_content_hash": d.get("cleaned_version") or d["content_hash"],
        RAW_FINGERPRINT: d.get("raw_fingerprint") or "unknown",
        "training_run": dg.MetadataValue.dagster_run(run_id) if run_id else "-",
        "code_version": lineage["code_version"],
        "lineage": dg.MetadataValue.md(markdown_table(rows, ["step", "what"], max_cell=None)),  # every hash whole
        # the Lineage tab opens on the nearest neighbours; this opens the whole chain back to raw
        "lineage_graph": dg.MetadataValue.url(f"/assets/{key.to_user_string()}?view=lineage&lineageScope=upstream"
                                              f"&lineageDepth={LINEAGE_DEPTH}"),
        LINEAGE_FILE: dg.MetadataValue.path(str(result.folder / LINEAGE)),
        "model_path": dg.MetadataValue.path(str(result.folder / "model.joblib")),
        "train_samples": result.metrics.get("train_samples", "-"),
        "test_samples": result.metrics.get("test_samples", "-"),
        "trained": result.trained,
        "trained_by": _trained_by(lineage),
    }


def _trained_by(lineage: dict[str, Any]) -> str:
    if lineage.get("recorded_by"):
        job = f", job {lineage['job']}" if lineage.get("job") else ""
        return f"recorded from outside Dagster on {lineage.get('host') or '?'}{job}"
    return "this Dagster run"


def read_model(instance: dg.DagsterInstance, model: ModelSpec) -> TrainedModel | None:
    meta = latest_metadata(instance, model_key(model))
    if meta is None:
        return None
    return TrainedModel(name=model.name, version=meta[MODEL_VERSION].value, accuracy=float(meta[ACCURACY].value))
