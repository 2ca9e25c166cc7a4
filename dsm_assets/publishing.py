"""cleaned → published: decide the version, build the dataset card, publish through the dataset's remote.

A version is the cleaned parquet files (`data/train-00000-of-00003.parquet`, …, named as cleaning wrote them),
a dataset card `README.md` whose YAML `configs` point `datasets` at them and whose `dataset_info.features` declare
its columns (image and audio columns as Image() and Audio()), and whose table lists every version, and
`dsm.json` (content hash, schema, features, rows, history) from which the next publish decides its version."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dsm_assets import atomic, state, versioning
from dsm_assets.cache import cached_files
from dsm_assets.errors import RemoteCorruptError, RemoteError, on_disk
from dsm_assets.features import yaml_features
from dsm_assets.layout import CARD_PATH, DATA_DIR, DATA_GLOB, DATA_PATH, INFO_PATH, staging_dir
from dsm_assets.registry import DatasetSpec
from dsm_assets.remotes.base import Remote
from dsm_assets.state import shape_problem

if TYPE_CHECKING:
    from dsm_assets.cleaning import CleanResult

INFO_FIELDS = {"content_hash": str, "schema_hash": str, "rows": int, "history": list}


@dataclass(frozen=True)
class PublishOutcome:
    dataset: str
    tag: str
    commit: str
    url: str
    bytes_uploaded: int
    files: tuple[str, ...]
    new: bool  # False: the content was already published as `tag`, nothing was uploaded
    content_hash: str
    rows: int
    repaired: tuple[str, ...] = ()  # files of an unchanged version re-stored on the remote (repair=True)
    bytes_reused: int = 0  # bytes of the version's files the remote already held (under any path): not sent
    files_reused: int = 0  # how many of `files` were not sent (the others were uploaded)


def publish_cleaned(spec: DatasetSpec, remote: Remote, cleaned: CleanResult, *, data_dir: Path,
                    repair: bool = False) -> PublishOutcome:
    """Publish `cleaned` as the next version, or nothing when the latest version has the same content.

    With `repair` (the last round_trip failed), or when the latest version's dsm.json is corrupt, the files
    of the latest version whose stored copy no longer matches are re-stored first (see `_repair`)."""
    with on_disk(data_dir, f"publishing {spec.name}"):
        return _publish(spec, remote, cleaned, data_dir, repair)


def _publish(spec: DatasetSpec, remote: Remote, cleaned: CleanResult, data_dir: Path, repair: bool) -> PublishOutcome:
    tags = remote.tags()
    latest = versioning.latest_tag(tags)
    fixed = _repair(spec, remote, cleaned, data_dir, latest, tags[latest]) if latest and repair else ()
    try:
        previous = _read_info(remote, tags[latest]) if latest else None
    except RemoteCorruptError:
        if repair or not (fixed := _repair(spec, remote, cleaned, data_dir, latest, tags[latest])):
            raise
        previous = _read_info(remote, tags[latest])
    schema_hash = versioning.schema_hash(cleaned.schema)
    tag = versioning.next_tag(latest, previous and previous["content_hash"], previous and previous["schema_hash"],
                              cleaned.version, schema_hash)
    if tag is None:
        outcome = PublishOutcome(spec.name, latest, tags[latest], remote.version_url(latest), 0, (), False,
                                 previous["content_hash"], previous["rows"], repaired=fixed)
    else:
        info = _version_info(spec, tag, cleaned, schema_hash, previous)
        with atomic.scratch_dir(staging_dir(data_dir)) as tmp:  # a killed publish's copy goes on the next one
            files = _stage(tmp, cleaned.files, spec, info)
            message = f"{spec.name} {tag}: {cleaned.rows_out} rows, content {cleaned.version[:12]}"
            done = remote.publish(files, tag=tag, parent=tags[latest] if latest else None, message=message)
        outcome = PublishOutcome(spec.name, tag, done.commit, remote.version_url(tag), done.bytes_uploaded,
                                 done.files, True, cleaned.version, cleaned.rows_out, bytes_reused=done.bytes_reused,
                                 files_reused=len(done.reused))
    state.record_latest(data_dir, spec.name, asdict(outcome))
    return outcome


def _read_info(remote: Remote, commit: str) -> dict[str, Any]:
    raw = remote.read_file(commit, INFO_PATH)
    try:
        info = json.loads(raw)
    except ValueError:
        info = None
    if shape_problem(info, INFO_FIELDS):
        raise RemoteError(f"{remote.url}: {INFO_PATH} at {commit[:12]} is not what dsm_assets writes; restore it "
                          "or publish to a new repo")
    return info


def _repair(spec: DatasetSpec, remote: Remote, cleaned: CleanResult, data_dir: Path, tag: str,
            commit: str) -> tuple[str, ...]:
    """Re-store the files of `tag` whose stored copy is corrupt, from local copies that still hold their
    recorded content: the cleaned parquet, the offline cache of that version, and a dataset card rebuilt
    from the version's dsm.json. Returns the repaired paths (Remote.repair checks every local copy's hash)."""
    sources = {**cached_files(spec, data_dir, tag, commit), **data_files(cleaned.files)}
    fixed = remote.repair(commit, sources)
    try:
        info = _read_info(remote, commit)
    except RemoteError:
        return tuple(fixed)
    with atomic.scratch_dir(staging_dir(data_dir)) as tmp:
        card = tmp / CARD_PATH
        card.write_text(dataset_card(spec, info))
        fixed += remote.repair(commit, {CARD_PATH: card})
    return tuple(dict.fromkeys(fixed))


def _version_info(spec: DatasetSpec, tag: str, cleaned: CleanResult, schema_hash: str,
                  previous: dict[str, Any] | None) -> dict[str, Any]:
    entry = {"version": tag, "content_hash": cleaned.version, "rows": cleaned.rows_out, "schema_hash": schema_hash,
             "published_at": datetime.now(UTC).isoformat(timespec="seconds")}
    history = [entry, *(previous["history"] if previous else [])]
    info = {"dataset": spec.name, "use": spec.use, **entry, "schema": cleaned.schema, "history": history,
            "features": yaml_features(cleaned.schema)}  # the card's dataset_info (see dataset_card)
    if cleaned.raw_fingerprint:  # lineage: the raw files this content was cleaned from
        info["raw_fingerprint"] = cleaned.raw_fingerprint
    return info


def data_files(parquet: Sequence[Path]) -> dict[str, Path]:
    """Where each cleaned parquet file goes in a version: `data/<its name>` (cleaning names them
    `train-XXXXX-of-YYYYY.parquet`, which `layout.DATA_GLOB` matches); one file (say a test's
    `CleanResult.of_file`) is DATA_PATH, whatever its name."""
    if len(parquet) == 1:
        return {DATA_PATH: parquet[0]}
    return {f"{DATA_DIR}/{f.name}": f for f in parquet}


def _stage(tmp: Path, parquet: Sequence[Path], spec: DatasetSpec, info: dict[str, Any]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    (tmp / DATA_DIR).mkdir()
    for path, source in data_files(parquet).items():
        files[path] = tmp / path
        try:
            files[path].hardlink_to(source)  # no copy of possibly large data when on one filesystem
        except OSError:
            shutil.copyfile(source, files[path])
    files |= {CARD_PATH: tmp / CARD_PATH, INFO_PATH: tmp / INFO_PATH}
    files[CARD_PATH].write_text(dataset_card(spec, info))
    files[INFO_PATH].write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return files


def how_to_load(spec: DatasetSpec, version: str) -> str:
    """The card's one sentence on reading `version`, true for the remote it is published to."""
    offline = (f"`dsm_assets.load(\"{spec.name}\", \"{version}\")` once `dsm preflight {spec.name}` says the "
               "offline cache holds it")
    if spec.remote.kind == "hub":
        return (f"Load a pinned version with `datasets.load_dataset(\"{spec.remote.repo}\", revision=\"{version}\")`,"
                f" or offline with {offline}.")
    if spec.remote.kind == "s3":
        return (f"Load a pinned version offline with {offline}; without dsm_assets, `versions/{version}.json` "
                f"under {spec.remote.display(spec.name)} pins each file's S3 VersionId (read them with boto3 "
                "`get_object(..., VersionId=...)`).")
    return f"Load a pinned version with {offline}, or `datasets.load_dataset(<that cache folder>)`."


def dataset_card(spec: DatasetSpec, info: dict[str, Any]) -> str:
    """README.md: `configs` so `datasets.load_dataset(repo, revision=…)` finds the parquet, `dataset_info` with
    the features it reads the columns as, and the version table. A version whose dsm.json has no `features`
    (published before they were recorded) gets its card as it was then, so a repair rebuilds it byte for byte."""
    features = ""
    if info.get("features"):
        features = yaml.safe_dump({"dataset_info": {"features": info["features"]}}, sort_keys=False,
                                  allow_unicode=True)
    rows = "\n".join(f"| {h['version']} | {h['published_at'][:10]} | {h['rows']} | `{h['content_hash'][:16]}` |"
                     for h in info["history"])
    columns = "\n".join(f"| `{name}` | {typ} |" for name, typ in info["schema"].items())
    return f"""---
configs:
- config_name: default
  data_files:
  - split: train
    path: {DATA_GLOB}
{features}tags:
- dsm_assets
---

# {spec.name}

{spec.use}

Published by dsm_assets. {how_to_load(spec, info["version"])}

## Versions

| version | published | rows | content hash |
|---|---|---|---|
{rows}

## Columns

| column | type |
|---|---|
{columns}
"""
