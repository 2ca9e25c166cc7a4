"""The sample raw data: two files shipped in the package and two media folders generated on install
(`sample_media`), copied into the data dir for the demo and the tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from dsm_assets import atomic

SAMPLE_DIR = Path(__file__).with_name("sample_data")


def _generated() -> dict[str, tuple[str, Callable[[Path], int]]]:
    """dataset → (a file that shows the sample is there, the function writing its folder)."""
    from dsm_assets.sample_media import write_chord_tones, write_shapes  # on use: needs Pillow and soundfile

    return {"shapes": ("circle/0003.png", write_shapes), "chord_tones": ("metadata.csv", write_chord_tones)}


def install_samples(data_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Copy (or generate) the samples into `<data_dir>/raw/<dataset>/…`. Existing files are kept (so a user's
    edit of a raw row survives `make demo`) unless `overwrite`. Returns the files (or generated folders) written."""
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
    for name, (marker, write) in _generated().items():
        folder = data_dir / "raw" / name
        if (folder / marker).exists() and not overwrite:
            continue
        written.append(_generate(folder, write))
    return written


def _generate(folder: Path, write: Callable[[Path], int]) -> Path:
    """Write a sample folder in a scratch folder beside it, then swap it in whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic.scratch_dir(folder.parent) as scratch:
        write(scratch / "sample")
        if folder.exists():  # an older layout of this sample (shapes was one parquet file) or --force
            shutil.rmtree(folder)
        (scratch / "sample").rename(folder)
    atomic.fsync_dir(folder.parent)
    return folder
