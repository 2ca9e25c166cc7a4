"""The sample raw data: two files shipped in the package and one image set generated on install, copied
into the data dir for the demo and the tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from dsm_assets import atomic

SAMPLE_DIR = Path(__file__).with_name("sample_data")


def install_samples(data_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Copy (or generate) the samples into `<data_dir>/raw/<dataset>/…`. Existing files are kept (so a user's edit of a
    raw row survives `make demo`) unless `overwrite`. Returns the files written."""
    written = []
    for src in sorted(SAMPLE_DIR.rglob("*")):
        if not src.is_file():
            continue
        dest = data_dir / "raw" / src.relative_to(SAMPLE_DIR)
        if dest.exists() and not overwrite:
            continue
        with atomic.atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        written.append(dest)
    shapes = data_dir / "raw" / "shapes" / "shapes.parquet"
    if overwrite or not shapes.exists():
        from dsm_assets.sample_images import write_shapes  # imported on use: needs pyarrow

        with atomic.atomic_path(shapes) as tmp:
            write_shapes(tmp)
        written.append(shapes)
    return written
