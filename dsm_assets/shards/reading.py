"""Reading shards back: their paths, the shards of the version the offline cache holds, a
`webdataset.WebDataset` pipeline whose length is the manifest's, and a full read of every shard."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dsm_assets.cache import read_manifest
from dsm_assets.errors import ShardError
from dsm_assets.layout import cache_current, shards_dir
from dsm_assets.registry import DatasetSpec
from dsm_assets.shards.decoding import audio_decoder
from dsm_assets.shards.manifest import SHARDS_MANIFEST, field_groups, verify_shards

Handler = Callable[[str, bytes], Any]  # a webdataset decoder handler: (key, data) → decoded or None
Decode = str | Handler | Sequence[str | Handler] | None


def shard_urls(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """The path of every shard in the manifest, in its order."""
    return [os.fspath(folder / s["name"]) for s in manifest["shards"]]


def current_shards(spec: DatasetSpec, data_dir: Path, outputs_dir: Path) -> Path:
    """The shard folder of the version the dataset's offline cache currently holds."""
    current = cache_current(spec, data_dir)
    if not current.exists():
        raise ShardError(f"{spec.name}: no offline cache, so no shards; run `dsm preflight {spec.name}`")
    source = read_manifest(current.resolve())
    folder = shards_dir(outputs_dir, spec, source["version"], source["commit"])
    if not (folder / SHARDS_MANIFEST).exists():
        raise ShardError(f"{spec.name}: no shards for {source['version']} in {folder}; materialise {spec.name}/shards")
    return folder


def webdataset_pipeline(folder: Path, *, shuffle: int = 1000, decode: Decode = None, seed: int | None = None):
    """A `webdataset.WebDataset` over the shards in `folder`, its length taken from the manifest.

    `shuffle` is the sample shuffle buffer (0 for the manifest order; shards are shuffled too when > 0).
    `decode` is what `.decode()` gets: an image spec such as "pil" (PIL images from png, jpg, webp, … members,
    which are named by their content), "audio" (`audio_decoder`: wav, flac, ogg and mp3 members become
    {"array", "sampling_rate"}), a webdataset handler, or a sequence of these, tried in order:
    `decode=("audio", "pil")`. json, cls and txt are decoded by webdataset's defaults; None keeps raw bytes.
    For a torch DataLoader the seed project recommends num_workers >= 4 and persistent_workers=True:
    `DataLoader(pipeline.batched(64), batch_size=None, num_workers=4, persistent_workers=True)`."""
    import webdataset as wds  # imported on use: only training code needs it

    manifest = json.loads((folder / SHARDS_MANIFEST).read_text())
    problems = verify_shards(folder, manifest, deep=False)
    if problems:
        raise ShardError(f"{folder}: {problems[0]}; re-materialise the shards asset")
    urls = shard_urls(folder, manifest)
    pipeline = wds.WebDataset(urls, shardshuffle=len(urls) if shuffle else False, seed=seed,
                              nodesplitter=wds.split_by_node, empty_check=False)
    if shuffle:
        pipeline = pipeline.shuffle(shuffle)
    if decode:
        pipeline = pipeline.decode(*decoders(decode))
    with warnings.catch_warnings():  # webdataset reminds that __len__ does not cap an epoch; we know
        warnings.simplefilter("ignore", UserWarning)
        return pipeline.with_length(manifest["total_samples"])


def decoders(decode: Decode) -> list[str | Callable[[str, bytes], Any]]:
    """`decode` as `.decode()`'s arguments: "audio" becomes `audio_decoder`, the rest is passed as it is."""
    specs = [decode] if isinstance(decode, str) or callable(decode) else list(decode or ())
    return [audio_decoder if spec == "audio" else spec for spec in specs]


def read_back(folder: Path, manifest: dict[str, Any], names: Sequence[str] | None = None, *,
              limit: int | None = None) -> list[str]:
    """Problems (empty when none) found by iterating shards with `webdataset.WebDataset` (every shard, or
    those named): each must be a complete tar whose samples match the manifest's count and carry every field.
    Samples are streamed, one at a time; with `limit`, only each shard's first `limit` samples are read (their
    fields checked, not the count)."""
    problems = []
    for shard in manifest["shards"]:
        if names is not None and shard["name"] not in names:
            continue
        path = folder / shard["name"]
        if not path.is_file():
            problems.append(f"{shard['name']} is missing")
        else:
            problems += _read_shard(path, shard, field_groups(manifest), limit)
    return problems


def _read_shard(path: Path, shard: dict[str, Any], groups: list[list[str]], limit: int | None) -> list[str]:
    import webdataset as wds

    count, wrong = 0, None
    try:
        for sample in wds.WebDataset([os.fspath(path)], shardshuffle=False, empty_check=False):
            count += 1
            if wrong is None and (why := _incomplete(sample, groups)):
                wrong = (sample["__key__"], why)
            if limit is not None and count >= limit:
                break
    except Exception as exc:  # webdataset surfaces tarfile, OSError and its own errors alike
        return [f"{shard['name']} is not a readable tar ({type(exc).__name__}: {_short(exc)})"]
    problems = []
    if count != shard["samples"] and (limit is None or count < limit):
        problems.append(f"{shard['name']} holds {count} samples, the manifest says {shard['samples']}")
    # exactly one member of each group: json, cls, txt, and one per payload column (named by its content)
    if wrong:
        problems.append(f"{shard['name']}: sample {wrong[0]} {wrong[1]}")
    return problems


def _incomplete(sample: dict[str, Any], groups: list[list[str]]) -> str | None:
    """Why `sample` does not hold exactly one member of each group, or None."""
    members = {k for k in sample if not k.startswith("__")}
    for group in groups:
        found = sorted(members & set(group))
        if len(found) != 1:
            return (f"has {' and '.join(found)}, one of {'/'.join(group)} expected" if found
                    else f"has no {'/'.join(group)} member")
    if extra := sorted(members - {ext for group in groups for ext in group}):
        return f"has {', '.join(extra)}, which the manifest does not list"
    return None


def _short(exc: Exception) -> str:
    """webdataset wraps tar errors as (message, fileobj, url): keep the message."""
    first = exc.args[0] if exc.args else exc
    text = first[0] if isinstance(first, tuple) and first else first
    return str(text).split(" @ ")[0]
