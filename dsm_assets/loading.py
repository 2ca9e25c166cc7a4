"""The offline loading API for training code:

    import dsm_assets
    train = dsm_assets.load("text_reviews")            # the current cached version
    old = dsm_assets.load("text_reviews", "v1.0")      # any version still in the cache

It reads the cached parquet with pyarrow and wraps it as a `datasets.Dataset`; no Hub or datasets
download code runs, so it cannot reach the network whether or not HF_HUB_OFFLINE was set before import."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from dsm_assets import paths
from dsm_assets.cache import read_manifest, verify_folder
from dsm_assets.errors import CacheError
from dsm_assets.layout import CACHE_VERSIONS, cache_current, cache_root
from dsm_assets.preflight import preflight
from dsm_assets.provenance import Loaded, remember_load
from dsm_assets.registry import Registry, load_registry

if TYPE_CHECKING:
    import datasets


def load(name: str, version: str | None = None, *, data_dir: Path | None = None,
         registry: Registry | None = None) -> datasets.Dataset:
    """The cached `name` (`version`, default the current one) as a datasets.Dataset, from local files only.

    Raises CacheError naming the dataset and `dsm preflight` when the cache is missing, stale or corrupt."""
    spec = (registry or load_registry()).get(name)
    data_dir = data_dir or paths.data_dir()
    if version is None:
        state = preflight(spec, data_dir)
        if not state.ready:
            raise CacheError(f"{name}: cache is {state.status}: {state.reason}. Run `dsm preflight {name}`")
        folder = cache_current(spec, data_dir).resolve()
    else:
        folder = _cached_version(name, cache_root(spec, data_dir), version)
        problem = verify_folder(folder, deep=False)
        if problem:
            raise CacheError(f"{name} {version}: {problem}. Run `dsm preflight {name}`")
    table = _read(name, folder)
    manifest = read_manifest(folder)
    remember_load(Loaded(name, manifest["version"], manifest["commit"], manifest["content_hash"]))
    import datasets  # imported on use: heavy, and only the training side needs it

    return datasets.Dataset(datasets.table.InMemoryTable(table), split=datasets.Split.TRAIN)


def _read(name: str, folder: Path) -> pa.Table:
    parts = sorted((folder / "data").glob("*.parquet"))
    try:
        return pa.concat_tables(pq.read_table(p, memory_map=True) for p in parts)
    except (OSError, pa.ArrowException) as exc:
        raise CacheError(f"{name}: a cached file in {folder / 'data'} is unreadable ({exc}); run "
                         f"`dsm preflight --deep {name}`, then re-materialise {name}/cache") from None


def _cached_version(name: str, root: Path, version: str) -> Path:
    """The cache folder holding exactly `version`, by what each folder's manifest says (the argument is never
    used as a path or a pattern)."""
    cached = {}
    folders = sorted((root / CACHE_VERSIONS).iterdir()) if (root / CACHE_VERSIONS).is_dir() else []
    for folder in folders:
        try:
            cached[read_manifest(folder)["version"]] = folder
        except (OSError, ValueError, KeyError, TypeError):
            continue  # incomplete or corrupt: not a version one can load
    if version not in cached:
        raise CacheError(f"{name}: version {version!r} is not in the cache (cached: {', '.join(cached) or 'none'}); "
                         f"run `dsm preflight {name}` to see what is cached")
    return cached[version]
