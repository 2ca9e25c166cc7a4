"""Find a dataset's raw files and stream them as typed Arrow batches that match the registry schema.

The fast path is pyarrow's streaming readers. When pyarrow rejects a file, a slower Python scan of that
file (error path only) finds the exact row and column to name in the message. One module per format, each
with one reader in READERS; `common` holds what they share. The folder formats (imagefolder, audiofolder:
`mediafolder`) read a folder at a time: their `source.path` names folders, and their files are every file in
them (so the raw fingerprint covers metadata and skipped files too)."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from dsm_assets.errors import SourceError
from dsm_assets.paths import inside
from dsm_assets.registry import DatasetSpec, display_path
from dsm_assets.sources.common import BLOCK_SIZE, RawBatch, expected
from dsm_assets.sources.csv_reader import read_csv
from dsm_assets.sources.jsonl import UTF8_BOM, read_jsonl
from dsm_assets.sources.mediafolder import folder_files, is_folder_format, read_folder
from dsm_assets.sources.parquet import read_parquet

__all__ = ["BLOCK_SIZE", "READERS", "UTF8_BOM", "RawBatch", "SourceFiles", "read_source", "resolve_files"]

Reader = Callable[[DatasetSpec, Path, int], Iterator[RawBatch]]
READERS: dict[str, Reader] = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}


class SourceFiles(list):
    """`resolve_files`' answer: the files (a list of Paths), and for a folder format the folders they are in."""

    folders: tuple[Path, ...] = ()


def resolve_files(spec: DatasetSpec, data_dir: Path) -> list[Path]:
    """The files `source.path` names under `data_dir`, sorted (for a folder format: every file in the folders
    it names, recursively). Raises SourceError when there are none."""
    inside(data_dir, spec.source.path, what=f"{spec.where}.source.path")
    matches = sorted(Path(p) for p in glob.glob(str(data_dir / spec.source.path), recursive=True))
    if is_folder_format(spec):
        return _folder_files(spec, data_dir, matches)
    files = [inside(data_dir, p, what=f"{spec.where}.source.path") for p in matches if Path(p).is_file()]
    if not files:
        raise SourceError(
            f"{spec.where}.source.path: '{spec.source.path}' matched no files under {data_dir}; "
            "put the raw files there (make demo copies the samples) or fix the path"
        )
    return files


def _folder_files(spec: DatasetSpec, data_dir: Path, matches: list[Path]) -> SourceFiles:
    folders = [inside(data_dir, p, what=f"{spec.where}.source.path") for p in matches if p.is_dir()]
    if not folders:
        raise SourceError(
            f"{spec.where}.source.path: '{spec.source.path}' matched no folders under {data_dir}; format "
            f"{spec.source.format} reads a folder of files: put them there or fix the path"
        )
    files = SourceFiles()
    for folder in folders:
        if any(folder == f or folder in f.parents for f in files.folders):
            continue  # a glob matching a folder and its subfolders reads each file once
        files.folders += (folder,)
        files += folder_files(folder)
    if not files:
        raise SourceError(f"{spec.where}.source.path: '{spec.source.path}' matched only empty folders under "
                          f"{data_dir}; put the {spec.source.format.removesuffix('folder')} files there")
    return files


def read_source(spec: DatasetSpec, files: list[Path], block_size: int = BLOCK_SIZE) -> Iterator[RawBatch]:
    """Every file's rows in batches, typed as the registry schema, by the reader of `spec.source.format`."""
    if is_folder_format(spec):
        folders = getattr(files, "folders", ()) or _common_folder(files)
        for folder in folders:
            yield from read_folder(spec, folder, [f for f in files if folder in f.parents], block_size)
        return
    reader = READERS[spec.source.format]
    for path in files:
        if path.stat().st_size == 0:
            raise SourceError(f"{display_path(path)}: file is empty; expected {expected(spec)}")
        yield from reader(spec, path, block_size)


def _common_folder(files: list[Path]) -> tuple[Path, ...]:
    """The folder of a plain list of a folder format's files (not from resolve_files): their common parent."""
    return (Path(os.path.commonpath([f.parent for f in files])),) if files else ()
