"""The sample raw data shipped in the package, copied into the data dir for the demo and the tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from dsm_assets import atomic

SAMPLE_DIR = Path(__file__).with_name("sample_data")


def install_samples(data_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Copy the samples to `<data_dir>/raw/<dataset>/…`. Existing files are kept (so a user's edit of a
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
    return written
