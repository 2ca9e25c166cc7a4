"""Parquet sources: pyarrow's batch iterator, columns checked and cast to the registry schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from dsm_assets.errors import SourceError
from dsm_assets.parquet_stream import open_parquet
from dsm_assets.registry import DatasetSpec, display_path
from dsm_assets.sources.common import RawBatch, check_columns, to_schema


def read_parquet(spec: DatasetSpec, path: Path, block_size: int) -> Iterator[RawBatch]:
    """`path`'s rows in batches of `block_size // 256` rows (at least 1024), typed as the registry schema."""
    try:
        pf = open_parquet(path)  # no pre-buffering: see parquet_stream
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{display_path(path)}: not a readable parquet file ({exc})") from None
    check_columns(spec, path, pf.schema_arrow.names)
    next_row = 1
    batches = (b for group in range(pf.num_row_groups)  # one call a row group, as parquet_stream.iter_batches
               for b in pf.iter_batches(batch_size=max(1024, block_size // 256), row_groups=[group]))
    for batch in batches:
        rows = np.arange(next_row, next_row + batch.num_rows)
        next_row += batch.num_rows
        yield RawBatch(to_schema(spec, path, batch, rows), path, rows)
