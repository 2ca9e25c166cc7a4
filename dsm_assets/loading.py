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
from dsm_assets.cache import cache_root, verify_folder
from dsm_assets.errors import CacheError
from dsm_assets.preflight import preflight
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
        folder = (cache_root(spec, data_dir) / "current").resolve()
    else:
        matches = sorted((cache_root(spec, data_dir) / "versions").glob(f"{version}-*"))
        if not matches:
            raise CacheError(f"{name}: version {version} is not in the cache; run `dsm preflight {name}` to see "
                             "what is cached")
        folder = matches[-1]
        problem = verify_folder(folder, deep=False)
        if problem:
            raise CacheError(f"{name} {version}: {problem}. Run `dsm preflight {name}`")
    table = pa.concat_tables(pq.read_table(p, memory_map=True) for p in sorted((folder / "data").glob("*.parquet")))
    import datasets  # imported on use: heavy, and only the training side needs it

    return datasets.Dataset(datasets.table.InMemoryTable(table), split=datasets.Split.TRAIN)
