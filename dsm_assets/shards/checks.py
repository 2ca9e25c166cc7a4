"""The shard checks, as CheckOutcomes (the Dagster layer turns them into AssetCheckResults).

The manifest is the one truth: the reader takes its length from it, so a loader's estimated size cannot
drift. The registry's `shards.estimated_size` is only an expectation; when it disagrees with the manifest
the `estimated_size` check fails, loudly, naming both numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsm_assets.cache import read_manifest
from dsm_assets.checks import CheckOutcome
from dsm_assets.layout import cache_version_dir
from dsm_assets.registry import DatasetSpec
from dsm_assets.shards.manifest import SHARDS_MANIFEST, manifest_problem, verify_shards
from dsm_assets.shards.reading import read_back

DESCRIPTIONS = {
    "shard_count": "The manifest lists the registry's shards.count shards (fewer only when there are fewer "
                   "samples), and every one is on disk.",
    "integrity": "Every shard matches its size and hash in the manifest and is a complete tar that "
                 "webdataset.WebDataset reads with the manifest's sample count.",
    "total_samples": "The shards hold exactly the cached version's rows (the cleaned row count).",
    "estimated_size": "The registry's shards.estimated_size, when set, equals the manifest's total_samples.",
}


def check_shards(spec: DatasetSpec, folder: Path, data_dir: Path) -> list[CheckOutcome]:
    """Every check on the shards in `folder`, in the order of DESCRIPTIONS."""
    try:
        manifest = json.loads((folder / SHARDS_MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return _all_failed(f"manifest.json unreadable in {folder}: {exc}")
    if problem := manifest_problem(folder, manifest):
        return _all_failed(f"{problem}; materialise the shards again to rewrite it")
    return [_shard_count(spec, folder, manifest), _integrity(folder, manifest),
            _total_samples(spec, data_dir, manifest), _estimated_size(spec, manifest)]


def evaluate(spec: DatasetSpec, folder: Path, data_dir: Path) -> dict[str, tuple[bool, str]]:
    """Each check's (passed, description) for the shards in `folder`."""
    return {o.name: (o.passed, o.description) for o in check_shards(spec, folder, data_dir)}


def _all_failed(text: str) -> list[CheckOutcome]:
    return [CheckOutcome(name, False, text) for name in DESCRIPTIONS]


def _present(folder: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in manifest["shards"] if (folder / s["name"]).is_file()]


def _shard_count(spec: DatasetSpec, folder: Path, manifest: dict[str, Any]) -> CheckOutcome:
    expected = max(1, min(spec.shards.count, manifest["total_samples"]))
    present, listed = len(_present(folder, manifest)), len(manifest["shards"])
    return CheckOutcome("shard_count", listed == expected == present,
                        f"{present} of {listed} listed shards present, registry expects {expected}")


def _integrity(folder: Path, manifest: dict[str, Any]) -> CheckOutcome:
    problems = verify_shards(folder, manifest, deep=True) + read_back(folder, manifest)
    return CheckOutcome("integrity", not problems,
                        "; ".join(dict.fromkeys(problems)) or f"{len(_present(folder, manifest))} shards verified")


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
