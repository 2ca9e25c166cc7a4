"""cache → shards: WebDataset tar shards of the cached version, and the manifest that is their one truth.

    <outputs>/shards/<dataset>/<tag>-<commit12>/<dataset>-000000.tar …   manifest.json

A sample is `<key>.json` (the row's non-binary columns), `<key>.cls` (the label's index in the registry's
allowed set, when the dataset has labels), `<key>.txt` (a `text` column, when present) and one file per
binary column, named by its content (`.png`, else `.bin`). Headers come from `tarfile.TarInfo`; payloads
are written straight to the file with one write each and hashed (xxh3-128) on the way, which is what makes
this faster than webdataset's ShardWriter. Members carry fixed metadata (mtime 0, uid 0, mode 0444), so
the same data gives byte-identical shards and the same manifest hash.

Each shard is written to a temp name and renamed when complete; the manifest is written last. Temp files
a killed writer left behind are removed by the next run, and a complete manifest whose shards all check
out is reused rather than rewritten."""

from __future__ import annotations

import json
import logging
import os
import tarfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from dsm_assets import atomic, seals
from dsm_assets.cache import read_manifest
from dsm_assets.errors import ShardError, on_disk
from dsm_assets.fingerprint import hash_file
from dsm_assets.paths import under
from dsm_assets.registry import DatasetSpec
from dsm_assets.versioning import folder_name

MANIFEST = "manifest.json"
SEALS = ".seals.json"  # each shard's mtime when last verified (not part of the manifest: no data version)
SELF_HASH = "manifest_xxh3_128"  # the manifest's own hash, over every other key
log = logging.getLogger(__name__)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BATCH_ROWS = 4096


@dataclass(frozen=True)
class ShardsResult:
    folder: Path
    manifest: dict[str, Any]
    manifest_hash: str
    written: bool  # False: the existing shards were complete and reused
    repaired: str | None = None  # why existing shards were rewritten instead of reused (one line)


def shards_dir(outputs_dir: Path, spec: DatasetSpec, tag: str, commit: str) -> Path:
    return under(outputs_dir, "shards", spec.name, folder_name(tag, commit))


def manifest_hash(manifest: dict[str, Any]) -> str:
    return xxhash.xxh3_128_hexdigest(json.dumps(manifest, sort_keys=True).encode())


def _self_hash(manifest: dict[str, Any]) -> str:
    return seals.self_hash(manifest, SELF_HASH, xxhash.xxh3_128)


def sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """`manifest` with its own hash (SELF_HASH) set, as it is written."""
    return {**manifest, SELF_HASH: _self_hash(manifest)}


def write_shards(spec: DatasetSpec, cache_folder: Path, outputs_dir: Path) -> ShardsResult:
    """Shard the cached version in `cache_folder` (a cache version folder with its cache_manifest.json)."""
    source = read_manifest(cache_folder)
    folder = shards_dir(outputs_dir, spec, source["version"], source["commit"])
    with on_disk(folder, f"writing the shards of {spec.name}"), atomic.dir_lock(folder):
        return _write_all(spec, cache_folder, folder, source)


def _write_all(spec: DatasetSpec, cache_folder: Path, folder: Path, source: dict[str, Any]) -> ShardsResult:
    atomic.remove_stale_temps(folder)
    existing, problem = _reusable(folder)
    if existing is not None:
        return ShardsResult(folder, existing, manifest_hash(existing), written=False)
    table = pq.read_table(cache_folder / "data")
    count = max(1, min(spec.shards.count, table.num_rows))
    bounds = [table.num_rows * i // count for i in range(count + 1)]
    shards = [_write_shard(folder / f"{spec.name}-{i:06d}.tar", _samples(spec, table, bounds[i], bounds[i + 1]))
              for i in range(count)]
    manifest = {"dataset": spec.name, "version": source["version"], "commit": source["commit"],
                "content_hash": source["content_hash"], "total_samples": table.num_rows,
                "fields": _fields(spec, table.schema), "shards": shards, "hash": "xxh3_128"}
    manifest = sealed(manifest)
    atomic.write_json(folder / MANIFEST, manifest)
    _write_seals(folder, manifest)
    return ShardsResult(folder, manifest, manifest_hash(manifest), written=True, repaired=problem)


def _reusable(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest of shards already in `folder` when every shard still matches it (a shard whose stat
    changed since it was written is re-hashed); else (None, the first problem, if there were shards)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        shards = manifest["shards"]
        mtimes = _read_seals(folder)
        problems = [seals.broken(folder / s["name"], {"size": s["bytes"], "mtime_ns": mtimes.get(s["name"]),
                                                      "xxh3_128": s["xxh3_128"]}) for s in shards]
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    problems = verify_shards(folder, manifest, deep=False) + [p for p in problems if p]
    if problems:
        log.warning("%s; writing the shards again", problems[0])
        return None, problems[0]
    if _mtimes(folder, manifest) != mtimes:  # shards re-hashed and found intact: trust their stat next time
        _write_seals(folder, manifest)
    return manifest, None


def _read_seals(folder: Path) -> dict[str, int]:
    try:
        found = json.loads((folder / SEALS).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _mtimes(folder: Path, manifest: dict[str, Any]) -> dict[str, int]:
    return {s["name"]: (folder / s["name"]).stat().st_mtime_ns for s in manifest["shards"]}


def _write_seals(folder: Path, manifest: dict[str, Any]) -> None:
    """Each shard's mtime as verified now: a shard whose stat is unchanged need not be re-hashed to reuse."""
    atomic.write_json(folder / SEALS, _mtimes(folder, manifest))


def _fields(spec: DatasetSpec, schema: pa.Schema) -> list[str]:
    fields = ["json"]
    if spec.cleaning.labels:
        fields.append("cls")
    if "text" in schema.names and pa.types.is_string(schema.field("text").type):
        fields.append("txt")
    return fields + [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]


Sample = tuple[str, list[tuple[str, bytes]]]  # (key, [(extension, payload), …])


def _samples(spec: DatasetSpec, table: pa.Table, start: int, stop: int) -> Iterator[Sample]:
    """(key, [(extension, payload), …]) for rows start..stop, converted to Python one batch at a time."""
    binary = [f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    labels = spec.cleaning.labels
    index = {label: i for i, label in enumerate(labels.allowed)} if labels else {}
    for offset in range(start, stop, BATCH_ROWS):
        rows = table.slice(offset, min(BATCH_ROWS, stop - offset)).to_pylist()
        for i, row in enumerate(rows, start=offset):
            files = [("json", json.dumps({k: v for k, v in row.items() if k not in binary}, sort_keys=True,
                                         default=str).encode())]
            if labels:
                files.append(("cls", str(index[row[labels.column]]).encode()))
            if isinstance(row.get("text"), str):
                files.append(("txt", row["text"].encode()))
            for col in binary:
                payload = row[col] or b""
                ext = "png" if payload.startswith(PNG_SIGNATURE) else "bin"
                files.append((ext if len(binary) == 1 else f"{col}.{ext}", payload))
            yield f"sample{i:09d}", files


def _write_shard(target: Path, samples: Iterator[Sample]) -> dict[str, Any]:
    out = _GatherWriter()
    count = 0
    with atomic.temp_beside(target.parent, suffix=".tar") as tmp:
        with open(tmp, "wb", buffering=0) as f:
            for key, files in samples:
                for ext, payload in files:
                    out.add(f, _header(f"{key}.{ext}", len(payload)), payload,
                            _ZEROS[: -len(payload) % tarfile.BLOCKSIZE])
                count += 1
            out.add(f, _ZEROS[: 2 * tarfile.BLOCKSIZE])  # end-of-archive marker: two zero blocks
            out.flush(f)
        atomic.commit(tmp, target)
    return {"name": target.name, "bytes": out.size, "samples": count, "xxh3_128": out.digest.hexdigest()}


_ZEROS = bytes(2 * tarfile.BLOCKSIZE)


class _GatherWriter:
    """Collects chunks and writes them with one os.writev per ~1 MB, hashing them on the way."""

    LIMIT_BYTES, LIMIT_CHUNKS = 1 << 20, 512

    def __init__(self) -> None:
        self.digest = xxhash.xxh3_128()
        self.size = 0
        self._chunks: list[bytes] = []
        self._pending = 0

    def add(self, f, *chunks: bytes) -> None:
        for chunk in chunks:
            if chunk:
                self._chunks.append(chunk)
                self._pending += len(chunk)
        if self._pending >= self.LIMIT_BYTES or len(self._chunks) >= self.LIMIT_CHUNKS:
            self.flush(f)

    def flush(self, f) -> None:
        view = [memoryview(c) for c in self._chunks]
        i = 0
        while i < len(view):
            written = os.writev(f.fileno(), view[i:])
            while written:  # hash what was written; a short write leaves the rest of a chunk queued
                take = min(written, len(view[i]))
                self.digest.update(view[i][:take])
                self.size += take
                written -= take
                if take < len(view[i]):
                    view[i] = view[i][take:]
                else:
                    i += 1
        self._chunks, self._pending = [], 0


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o444, 0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


# tarfile encodes one header as a template; per member only name, size and checksum change (13 µs → ~3 µs).
_TEMPLATE = _tar_header("", 0)


def _header(name: str, size: int) -> bytes:
    raw = name.encode()
    if len(raw) > 100 or size >= 8**11:  # outside the template's USTAR fields: let tarfile handle it
        return _tar_header(name, size)
    buf = bytearray(_TEMPLATE)
    buf[0 : len(raw)] = raw
    buf[124:136] = b"%011o\0" % size
    buf[148:156] = b" " * 8  # the checksum is computed with its own field as spaces
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf)


def manifest_problem(folder: Path, manifest: Any) -> str | None:
    """Why the manifest read from `folder` cannot be trusted (not ours, or changed since written), or None."""
    if not isinstance(manifest, dict) or manifest.get(SELF_HASH) != _self_hash(manifest):
        return f"{folder / MANIFEST} does not match its own hash (corrupted, or written by an older version)"
    return None


def verify_shards(folder: Path, manifest: dict[str, Any], *, deep: bool) -> list[str]:
    """Problems (empty when none): every shard present with its size, and with `deep` its hash."""
    if problem := manifest_problem(folder, manifest):
        return [problem]
    problems = []
    for shard in manifest["shards"]:
        path = folder / shard["name"]
        if not path.is_file():
            problems.append(f"{shard['name']} is missing")
        elif path.stat().st_size != shard["bytes"]:
            problems.append(f"{shard['name']} is {path.stat().st_size} bytes, the manifest says {shard['bytes']} "
                            "(truncated?)")
        elif deep and hash_file(path) != shard["xxh3_128"]:
            problems.append(f"{shard['name']} does not match its hash in the manifest (corrupted)")
    if sum(s["samples"] for s in manifest["shards"]) != manifest["total_samples"]:
        problems.append("the shards' sample counts do not add up to the manifest's total_samples")
    return problems


@dataclass(frozen=True)
class ShardsPublished:
    tag: str
    new: bool  # False: the tag already existed
    repaired: tuple[str, ...] = ()  # files under the existing tag re-stored because their stored copy was corrupt


def publish_shards(remote, folder: Path, manifest: dict[str, Any], cache_folder: Path, *,
                   folder_limit: int = 10_000) -> ShardsPublished:
    """Publish the shards next to the parquet of their version, as tag `<version>-shards`: a commit with the
    version's files (the remote already has them, so they are not uploaded again where it deduplicates)
    plus `shards/` (in subfolders `shards/00000/`, … of `folder_limit` shards when there are more: the Hub
    advises at most 10,000 entries per folder; readers glob `shards/**/*.tar`). When the tag exists, its
    files are checked instead and any corrupt copy re-stored from the local shards, just verified
    (Remote.repair). Raises ConcurrentPublishError when a newer version was published meanwhile (its own
    shards will be published with it)."""
    tag = f"{manifest['version']}-shards"
    tags = remote.tags()
    files = {path: cache_folder / path for path in read_manifest(cache_folder)["files"]}
    nested = len(manifest["shards"]) > folder_limit
    files.update({f"shards/{f'{i // folder_limit:05d}/' if nested else ''}{s['name']}": folder / s["name"]
                  for i, s in enumerate(manifest["shards"])})
    files["shards/" + MANIFEST] = folder / MANIFEST
    if tag in tags:
        return ShardsPublished(tag, new=False, repaired=tuple(remote.repair(tags[tag], files)))
    remote.publish(files, tag=tag, parent=tags.get(manifest["version"]), message=f"{manifest['version']} shards")
    return ShardsPublished(tag, new=True)


def shard_urls(folder: Path, manifest: dict[str, Any]) -> list[str]:
    return [os.fspath(folder / s["name"]) for s in manifest["shards"]]


def current_shards(spec: DatasetSpec, data_dir: Path, outputs_dir: Path) -> Path:
    """The shard folder of the version the dataset's offline cache currently holds."""
    from dsm_assets.cache import cache_root

    current = cache_root(spec, data_dir) / "current"
    if not current.exists():
        raise ShardError(f"{spec.name}: no offline cache, so no shards; run `dsm preflight {spec.name}`")
    source = read_manifest(current.resolve())
    folder = shards_dir(outputs_dir, spec, source["version"], source["commit"])
    if not (folder / MANIFEST).exists():
        raise ShardError(f"{spec.name}: no shards for {source['version']} in {folder}; materialise {spec.name}/shards")
    return folder


def webdataset_pipeline(folder: Path, *, shuffle: int = 1000, decode: str | None = None, seed: int | None = None):
    """A `webdataset.WebDataset` over the shards in `folder`, its length taken from the manifest.

    `shuffle` is the sample shuffle buffer (0 for the manifest order; shards are shuffled too when > 0);
    `decode` is passed to `.decode()` (e.g. "pil" for images, needs Pillow); None keeps raw bytes.
    For a torch DataLoader the seed project recommends num_workers >= 4 and persistent_workers=True:
    `DataLoader(pipeline.batched(64), batch_size=None, num_workers=4, persistent_workers=True)`."""
    import webdataset as wds  # imported on use: only training code needs it

    manifest = json.loads((folder / MANIFEST).read_text())
    problems = verify_shards(folder, manifest, deep=False)
    if problems:
        raise ShardError(f"{folder}: {problems[0]}; re-materialise the shards asset")
    urls = shard_urls(folder, manifest)
    pipeline = wds.WebDataset(urls, shardshuffle=len(urls) if shuffle else False, seed=seed,
                              nodesplitter=wds.split_by_node, empty_check=False)
    if shuffle:
        pipeline = pipeline.shuffle(shuffle)
    if decode:
        pipeline = pipeline.decode(decode)
    with warnings.catch_warnings():  # webdataset reminds that __len__ does not cap an epoch; we know
        warnings.simplefilter("ignore", UserWarning)
        return pipeline.with_length(manifest["total_samples"])


def read_back(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems (empty when none) found by iterating every shard with `webdataset.WebDataset`: each must be a
    complete tar whose samples match the manifest's count and carry every field."""
    import webdataset as wds

    problems = []
    for shard in manifest["shards"]:
        path = folder / shard["name"]
        if not path.is_file():
            problems.append(f"{shard['name']} is missing")
            continue
        try:
            samples = list(wds.WebDataset([os.fspath(path)], shardshuffle=False, empty_check=False))
        except Exception as exc:  # webdataset surfaces tarfile, OSError and its own errors alike
            problems.append(f"{shard['name']} is not a readable tar ({type(exc).__name__}: {_short(exc)})")
            continue
        if len(samples) != shard["samples"]:
            problems.append(f"{shard['name']} holds {len(samples)} samples, the manifest says {shard['samples']}")
        # one file per field: json, cls, txt as listed, and one per binary column (named by its content)
        incomplete = [s["__key__"] for s in samples
                      if "json" not in s or sum(not k.startswith("__") for k in s) != len(manifest["fields"])]
        if incomplete:
            problems.append(f"{shard['name']}: sample {incomplete[0]} does not have one file per field "
                            f"{manifest['fields']}")
    return problems


def _short(exc: Exception) -> str:
    """webdataset wraps tar errors as (message, fileobj, url): keep the message."""
    first = exc.args[0] if exc.args else exc
    text = first[0] if isinstance(first, tuple) and first else first
    return str(text).split(" @ ")[0]
