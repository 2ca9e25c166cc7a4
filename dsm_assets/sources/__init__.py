"""Find a dataset's raw files and stream them as typed Arrow batches that match the registry schema.

The fast path is pyarrow's streaming readers. When pyarrow rejects a file, a slower Python scan of that
file (error path only) finds the exact row and column to name in the message. One module per format, each
with one reader in READERS; `common` holds what they share."""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator
from pathlib import Path

from dsm_assets.errors import SourceError
from dsm_assets.paths import inside
from dsm_assets.registry import DatasetSpec, display_path
from dsm_assets.sources.common import BLOCK_SIZE, RawBatch, expected
from dsm_assets.sources.csv_reader import read_csv
from dsm_assets.sources.jsonl import UTF8_BOM, read_jsonl
from dsm_assets.sources.parquet import read_parquet

__all__ = ["BLOCK_SIZE", "READERS", "UTF8_BOM", "RawBatch", "read_source", "resolve_files"]

Reader = Callable[[DatasetSpec, Path, int], Iterator[RawBatch]]
READERS: dict[str, Reader] = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}


def resolve_files(spec: DatasetSpec, data_dir: Path) -> list[Path]:
    """The files `source.path` names under `data_dir`, sorted. Raises SourceError when there are none."""
    inside(data_dir, spec.source.path, what=f"{spec.where}.source.path")
    matches = sorted(Path(p) for p in glob.glob(str(data_dir / spec.source.path), recursive=True))
    files = [inside(data_dir, p, what=f"{spec.where}.source.path") for p in matches if Path(p).is_file()]
    if not files:
        raise SourceError(
            f"{spec.where}.source.path: '{spec.source.path}' matched no files under {data_dir}; "
            "put the raw files there (make demo copies the samples) or fix the path"
        )
    return files


def read_source(spec: DatasetSpec, files: list[Path], block_size: int = BLOCK_SIZE) -> Iterator[RawBatch]:
    """Every file's rows in batches, typed as the registry schema, by the reader of `spec.source.format`."""
    reader = READERS[spec.source.format]
    for path in files:
        if path.stat().st_size == 0:
            raise SourceError(f"{display_path(path)}: file is empty; expected {expected(spec)}")
        yield from reader(spec, path, block_size)
