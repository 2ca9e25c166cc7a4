"""The shard checks, as CheckOutcomes (the Dagster layer turns them into AssetCheckResults).

The manifest is the one truth: the reader takes its length from it, so a loader's estimated size cannot
drift. The registry's `shards.estimated_size` is only an expectation; when it disagrees with the manifest
the `estimated_size` check fails, loudly, naming both numbers.

`integrity` costs less than writing did: every shard is streamed once (`tar.scan_shard`: its hash, and its
samples counted from the tar headers), the shards in parallel threads, and the decode through
`webdataset.WebDataset` (per-sample Python, ~2,000 samples/s) runs on a sample of the shards
(`decoded_shards`: the first, the last and a few others chosen by the manifest's hash), the first
DECODED_SAMPLES samples of each, or on every sample of every shard with `deep=True`. The hash already proves
each shard is the bytes written; the decode proves webdataset reads them as the samples the manifest lists."""

from __future__ import annotations

import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dsm_assets.cache import read_manifest
from dsm_assets.checks import CheckOutcome
from dsm_assets.layout import cache_version_dir
from dsm_assets.registry import DatasetSpec
from dsm_assets.shards.manifest import SHARDS_MANIFEST, manifest_hash, manifest_problem
from dsm_assets.shards.reading import read_back
from dsm_assets.shards.tar import scan_shard
from dsm_assets.shards.writing import shard_count

DECODED_FRACTION = 32  # integrity decodes the first and last shard and one in this many of the others …
DECODED_SAMPLES = 500  # … each up to this many samples (webdataset reads ~2,000 a second here)

DESCRIPTIONS = {
    "shard_count": "The manifest lists as many shards as the registry's shards.count (or its auto rule) asks "
                   "for (fewer only when there are fewer samples), and every one is on disk.",
    "integrity": "Every shard matches its size and hash in the manifest and is a complete tar holding the "
                 "manifest's sample count; the first samples of a sample of the shards (all of every shard with "
                 "deep) are decoded by webdataset.WebDataset, every sample carrying every field.",
    "total_samples": "The shards hold exactly the cached version's rows (the cleaned row count).",
    "estimated_size": "The registry's shards.estimated_size, when set, equals the manifest's total_samples.",
}


def check_shards(spec: DatasetSpec, folder: Path, data_dir: Path, *, deep: bool = False) -> list[CheckOutcome]:
    """Every check on the shards in `folder`, in the order of DESCRIPTIONS (`deep`: decode every shard)."""
    try:
        manifest = json.loads((folder / SHARDS_MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return _all_failed(f"manifest.json unreadable in {folder}: {exc}")
    if problem := manifest_problem(folder, manifest):
        return _all_failed(f"{problem}; materialise the shards again to rewrite it")
    return [_shard_count(spec, folder, manifest), _integrity(folder, manifest, deep=deep),
            _total_samples(spec, data_dir, manifest), _estimated_size(spec, manifest)]


def evaluate(spec: DatasetSpec, folder: Path, data_dir: Path, *, deep: bool = False) -> dict[str, tuple[bool, str]]:
    """Each check's (passed, description) for the shards in `folder`."""
    return {o.name: (o.passed, o.description) for o in check_shards(spec, folder, data_dir, deep=deep)}


def _all_failed(text: str) -> list[CheckOutcome]:
    return [CheckOutcome(name, False, text) for name in DESCRIPTIONS]


def _present(folder: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in manifest["shards"] if (folder / s["name"]).is_file()]


def _shard_count(spec: DatasetSpec, folder: Path, manifest: dict[str, Any]) -> CheckOutcome:
    expected = shard_count(spec.shards, manifest["total_samples"], manifest.get("estimated_bytes", 0))
    present, listed = len(_present(folder, manifest)), len(manifest["shards"])
    return CheckOutcome("shard_count", listed == expected == present,
                        f"{present} of {listed} listed shards present, registry expects {expected}")


def _integrity(folder: Path, manifest: dict[str, Any], *, deep: bool) -> CheckOutcome:
    problems = scan_all(folder, manifest)
    problems += read_back(folder, manifest, decoded_shards(manifest, deep=deep),
                          limit=None if deep else DECODED_SAMPLES)
    return CheckOutcome("integrity", not problems,
                        "; ".join(dict.fromkeys(problems)) or f"{len(_present(folder, manifest))} shards verified")


def scan_all(folder: Path, manifest: dict[str, Any], workers: int | None = None) -> list[str]:
    """Problems (empty when none): each shard streamed once, in parallel, against its manifest entry."""
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        found = pool.map(lambda s: _scan(folder, s), manifest["shards"])
        problems = [p for ps in found for p in ps]
    if sum(s["samples"] for s in manifest["shards"]) != manifest["total_samples"]:
        problems.append("the shards' sample counts do not add up to the manifest's total_samples")
    return problems


def _scan(folder: Path, shard: dict[str, Any]) -> list[str]:
    name, path = shard["name"], folder / shard["name"]
    if not path.is_file():
        return [f"{name} is missing"]
    scan = scan_shard(path)
    problems = []
    if scan.bytes != shard["bytes"]:
        problems.append(f"{name} is {scan.bytes} bytes, the manifest says {shard['bytes']} (truncated?)")
    elif scan.xxh3_128 != shard["xxh3_128"]:
        problems.append(f"{name} does not match its hash in the manifest (corrupted)")
    if scan.problem:
        problems.append(f"{name} {scan.problem}")
    elif scan.samples != shard["samples"]:
        problems.append(f"{name} holds {scan.samples} samples, the manifest says {shard['samples']}")
    return problems


def decoded_shards(manifest: dict[str, Any], *, deep: bool = False) -> list[str]:
    """The shards `integrity` decodes through webdataset: all with `deep`, else the first, the last and one in
    DECODED_FRACTION of the others, chosen by a generator seeded with the manifest's hash (the same each run)."""
    names = [s["name"] for s in manifest["shards"]]
    if deep or len(names) <= 2:
        return names
    middle = names[1:-1]
    picked = random.Random(manifest_hash(manifest)).sample(middle, -(-len(middle) // DECODED_FRACTION))
    return [names[0], *sorted(picked), names[-1]]


def _total_samples(spec: DatasetSpec, data_dir: Path, manifest: dict[str, Any]) -> CheckOutcome:
    rows, total = _source_rows(spec, data_dir, manifest), manifest["total_samples"]
    return CheckOutcome("total_samples", rows == total, f"shards hold {total} samples, the cached version has "
                                                        f"{'no cache manifest' if rows is None else f'{rows} rows'}")


def _estimated_size(spec: DatasetSpec, manifest: dict[str, Any]) -> CheckOutcome:
    estimate, total = spec.shards.estimated_size, manifest["total_samples"]
    if estimate is None:
        return CheckOutcome("estimated_size", True, "no estimated_size in the registry")
    text = f"registry shards.estimated_size is {estimate}, the manifest has {total}"
    if estimate != total:
        text += "; update the registry (readers use the manifest)"
    return CheckOutcome("estimated_size", estimate == total, text)


def _source_rows(spec: DatasetSpec, data_dir: Path, manifest: dict[str, Any]) -> int | None:
    """Rows of the cached version these shards were cut from, from that version's cache manifest."""
    try:
        return read_manifest(cache_version_dir(spec, data_dir, manifest["version"], manifest["commit"]))["rows"]
    except (OSError, ValueError, KeyError):
        return None
