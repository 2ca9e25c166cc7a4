"""Image and audio folders (formats `imagefolder`, `audiofolder`), laid out as Hugging Face's ImageFolder and
AudioFolder read them:

    <root>/<class>/<file>.png            the label column gets the class folder's name (files in <root>: null)
    <root>/<split>/<class>/<file>.png    a first-level train/test/validation/valid/val/dev folder is a split:
                                         it fills a string column `split` when the schema has one, else the
                                         splits are merged
    <root>/metadata.csv | .jsonl         (in the root or in a split folder) one row per file: `file_name` (the
                                         path relative to the metadata file's folder) and the other columns;
                                         then no folder labels, and media files it does not name are skipped

Which files are media goes by extension (media.IMAGE_EXTENSIONS / AUDIO_EXTENSIONS); what they hold is
cleaning's business (media.probe): an empty or mislabelled file is yielded here. The media column is datasets'
{bytes, path} struct, `path` relative to the root. Files other than media and metadata, media files no metadata
names and names that are not UTF-8 are skipped and counted in RawBatch.skipped. A symlink leading out of the
folder is refused, not followed; a symlinked folder inside it is not descended (its files are read where they
are). Batches hold about `block_size` bytes of media (a larger file goes alone)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa

from dsm_assets.errors import SourceError
from dsm_assets.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from dsm_assets.registry import FOLDER_FORMATS, DatasetSpec, Source, display_path
from dsm_assets.sources.common import RawBatch, media_from_bytes, shown, to_schema

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "validation", "valid", "val", "dev")
METADATA = {"metadata.csv": "csv", "metadata.jsonl": "jsonl"}
FILE_NAME = "file_name"
EXTENSIONS = {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS}


def is_folder_format(spec: DatasetSpec) -> bool:
    return spec.source.format in FOLDER_FORMATS


def folder_files(root: Path) -> list[Path]:
    """Every regular file under `root` (recursively, metadata too), as `root/<relative path>`, sorted by the
    relative path's bytes. Raises SourceError for a symlink whose target is outside `root`."""
    root = root.resolve()
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):
        for name in sorted(dirs):
            path = Path(folder, name)
            if path.is_symlink():
                _check_link(root, path)  # inside: not descended, os.walk does not follow links
        for name in names:
            path = Path(folder, name)
            if path.is_symlink():
                _check_link(root, path)
            if path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: _key(p.relative_to(root)))


def _key(rel: Path | PurePosixPath) -> bytes:
    return os.fsencode(rel.as_posix())


def _check_link(root: Path, link: Path) -> None:
    target = Path(os.path.realpath(link))
    if target != root and root not in target.parents:
        raise SourceError(f"{display_path(link)}: a symlink to {target}, outside the source folder "
                          f"{display_path(root)}; links out of a source folder are not followed: copy the file in "
                          "or remove the link")


def read_folder(spec: DatasetSpec, root: Path, files: list[Path], block_size: int) -> Iterator[RawBatch]:
    """The rows of one image or audio folder `root`, whose files (every one, from `folder_files`) are `files`."""
    root = root.resolve()
    kind = FOLDER_FORMATS[spec.source.format]
    media_col = next(c for c, t in spec.media_columns().items() if t == kind)
    skipped: Counter[str] = Counter()
    media: dict[PurePosixPath, Path] = {}
    metadata: list[Path] = []
    for path in files:
        rel = PurePosixPath(path.relative_to(root).as_posix())
        if not _utf8(str(rel)):
            log.warning("%s: skipped %r: its name is not valid UTF-8; rename it", display_path(root),
                        os.fsencode(str(rel)))
            skipped["non_utf8_file_name"] += 1
        elif rel.suffix.lower() in EXTENSIONS[kind]:
            media[rel] = path
        elif rel.name in METADATA and (len(rel.parts) == 1 or (len(rel.parts) == 2 and _split_of(rel.parts[0]))):
            metadata.append(path)
        else:
            skipped["other_file"] += 1
    if not media:
        raise SourceError(f"{display_path(root)}: no {kind} files ({', '.join(EXTENSIONS[kind])}) in this folder; "
                          f"put them there or fix {spec.where}.source.path")
    split_col = _split_column(spec, media)
    if metadata:
        batches = _from_metadata(spec, root, metadata, media, split_col, media_col, skipped, block_size)
    else:
        batches = _from_folders(spec, root, media, split_col, media_col)
    first = True
    for raw in _sized(spec, media_col, batches, block_size):
        if first:  # counted once, on the first batch (the metadata is all read by then)
            raw.skipped, first = {k: n for k, n in sorted(skipped.items()) if n}, False
        yield raw
    if first and any(skipped.values()):  # nothing to yield: still report what was skipped
        empty = pa.RecordBatch.from_pylist([], schema=spec.arrow_schema())
        yield RawBatch(empty, root, np.zeros(0, dtype=np.int64), skipped={k: n for k, n in skipped.items() if n})


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _split_of(folder: str) -> str | None:
    return folder if folder.lower() in SPLITS else None


def _split_column(spec: DatasetSpec, media: dict[PurePosixPath, Path]) -> str | None:
    """`split` when the schema has that string column and the folder has split folders, else None."""
    if spec.schema.get("split") != "string":
        return None
    return "split" if any(len(rel.parts) > 1 and _split_of(rel.parts[0]) for rel in media) else None


def _label_column(spec: DatasetSpec) -> str | None:
    if spec.cleaning.labels is not None:
        return spec.cleaning.labels.column
    return "label" if "label" in spec.schema else None


# One planned batch: (the file of its rows, 1-based row numbers, media paths (rel, path), other columns)
_Plan = tuple[Path, np.ndarray, list[tuple[PurePosixPath, Path]], dict[str, pa.Array]]


def _from_folders(spec: DatasetSpec, root: Path, media: dict[PurePosixPath, Path], split_col: str | None,
                  media_col: str) -> Iterator[_Plan]:
    """Labels from class folders, splits from split folders; every other schema column null."""
    label_col = _label_column(spec)
    rels = sorted(media, key=_key)  # by the relative path's bytes
    labels, splits = [], []
    for rel in rels:
        parts = rel.parts[:-1]
        split = _split_of(parts[0]) if parts else None
        if split:
            parts = parts[1:]
        splits.append(split)
        labels.append(parts[-1] if parts else None)
    columns: dict[str, pa.Array] = {}
    for name in spec.schema:
        if name == media_col:
            continue
        if name == label_col:
            columns[name] = pa.array(labels, pa.string())
        elif name == split_col:
            columns[name] = pa.array(splits, pa.string())
        else:
            columns[name] = pa.nulls(len(rels), spec.arrow_schema().field(name).type)
    yield root, np.arange(1, len(rels) + 1), [(rel, media[rel]) for rel in rels], columns


def _from_metadata(spec: DatasetSpec, root: Path, metadata: list[Path], media: dict[PurePosixPath, Path],
                   split_col: str | None, media_col: str, skipped: Counter[str], block_size: int) -> Iterator[_Plan]:
    """Rows from the metadata files, each naming its media file; media files no metadata names are skipped."""
    from dsm_assets.sources import READERS

    plans: list[_Plan] = []
    named: dict[PurePosixPath, tuple[Path, int]] = {}
    by_folder: dict[Path, list[Path]] = {}
    for path in metadata:
        by_folder.setdefault(path.parent, []).append(path)
    for folder, paths in by_folder.items():
        if len(paths) > 1:
            raise SourceError(f"{display_path(folder)}: both metadata.csv and metadata.jsonl; keep one of them")
    for path in metadata:
        fmt = METADATA[path.name]
        rel_folder = PurePosixPath(path.parent.relative_to(root).as_posix())
        split = _split_of(rel_folder.parts[0]) if rel_folder.parts else None
        meta_spec = _metadata_spec(spec, path, fmt, media_col, split_col)
        _check_file_name_column(meta_spec, path, fmt)
        if path.stat().st_size == 0:
            raise SourceError(f"{display_path(path)}: file is empty; expected {FILE_NAME} and the columns "
                              f"{', '.join(c for c in meta_spec.schema if c != FILE_NAME)}")
        for raw in READERS[fmt](meta_spec, path, max(block_size, 1 << 16)):
            batch = raw.batch
            files = []
            for row, name in zip(raw.rows, batch.column(FILE_NAME).to_pylist(), strict=True):
                rel = _named_file(spec, path, int(row), name, rel_folder, root, media)
                if rel in named:
                    other, other_row = named[rel]
                    where = f"row {other_row}" if other == path else f"{display_path(other)} row {other_row}"
                    raise SourceError(f"{display_path(path)}: row {row}: file_name {shown(name)} names {rel}, already "
                                      f"named by {where}; each file gets one metadata row: remove one of them")
                named[rel] = (path, int(row))
                files.append((rel, media[rel]))
            columns = {c: batch.column(c) for c in batch.schema.names if c != FILE_NAME}
            if split_col:
                columns[split_col] = pa.array([split] * batch.num_rows, pa.string())
            plans.append((path, raw.rows, files, columns))
    skipped["not_in_metadata"] += len(media.keys() - named.keys())
    yield from plans


def _metadata_spec(spec: DatasetSpec, path: Path, fmt: str, media_col: str, split_col: str | None) -> DatasetSpec:
    """The spec a metadata file is read with: the registry schema less the media column (and `split` when split
    folders fill it) plus `file_name: string`."""
    schema = {c: t for c, t in spec.schema.items() if c not in (media_col, split_col)}
    if fmt == "csv":
        for col, typ in schema.items():
            if typ.startswith(("list<", "struct<")):
                raise SourceError(f"{display_path(path)}: column '{col}' is {typ}; nested values need metadata.jsonl, "
                                  "not metadata.csv")
    schema[FILE_NAME] = "string"
    return dataclasses.replace(spec, schema=schema, source=Source(path=spec.source.path, format=fmt))


def _check_file_name_column(meta_spec: DatasetSpec, path: Path, fmt: str) -> None:
    from dsm_assets.sources.csv_reader import _csv_header
    from dsm_assets.sources.jsonl import _first_jsonl_record

    if path.stat().st_size == 0:
        return
    names = _csv_header(path) if fmt == "csv" else list(_first_jsonl_record(meta_spec, path) or {FILE_NAME: None})
    if FILE_NAME not in names:
        raise SourceError(f"{display_path(path)}: no {FILE_NAME} column; a folder's metadata names each file in a "
                          f"column {FILE_NAME} (its path relative to {display_path(path.parent)})")


def _named_file(spec: DatasetSpec, path: Path, row: int, name: str | None, rel_folder: PurePosixPath, root: Path,
                media: dict[PurePosixPath, Path]) -> PurePosixPath:
    """The media file a metadata row names (relative to the root). Raises SourceError naming the row."""
    where = f"{display_path(path)}: row {row}: file_name {shown(name)}"
    if name is None:
        raise SourceError(f"{display_path(path)}: row {row}: file_name is empty; name the row's file")
    given = PurePosixPath(name)
    if given.is_absolute() or ".." in given.parts:
        raise SourceError(f"{where} leads out of {display_path(path.parent)}; name a file inside it, relative to "
                          "the metadata file's folder, without '..'")
    rel = PurePosixPath(os.path.normpath(rel_folder / given))
    if rel in media:
        return rel
    target = root.joinpath(*rel.parts)
    if target.exists() and target.is_file():
        raise SourceError(f"{where} is not an {FOLDER_FORMATS[spec.source.format]} file "
                          f"({', '.join(EXTENSIONS[FOLDER_FORMATS[spec.source.format]])}); rename it or remove the row")
    raise SourceError(f"{where}: no such file in {display_path(path.parent)}; add the file or fix the row")


def _sized(spec: DatasetSpec, media_col: str, plans: Iterator[_Plan], block_size: int) -> Iterator[RawBatch]:
    """Each plan cut into batches of about `block_size` bytes of media, read and typed."""
    for file, rows, files, columns in plans:
        sizes = [path.stat().st_size for _, path in files]
        start = 0
        while start < len(files):
            end, total = start + 1, sizes[start]
            while end < len(files) and total + sizes[end] <= block_size:
                total += sizes[end]
                end += 1
            part = {c: a.slice(start, end - start) for c, a in columns.items()}
            yield _batch(spec, media_col, file, rows[start:end], files[start:end], part)
            start = end


def _batch(spec: DatasetSpec, media_col: str, file: Path, rows: np.ndarray,
           files: list[tuple[PurePosixPath, Path]], columns: dict[str, pa.Array]) -> RawBatch:
    """One batch: the files read, the columns in schema order (then any annotation layers), typed."""
    payloads = pa.array([path.read_bytes() for _, path in files], pa.binary())
    paths = pa.array([rel.as_posix() for rel, _ in files], pa.string())
    columns = {**columns, media_col: media_from_bytes(payloads, paths)}
    names = [c for c in spec.schema] + [c for c in columns if c not in spec.schema]
    batch = pa.RecordBatch.from_arrays([columns[c] for c in names], names=names)
    return RawBatch(to_schema(spec, file, batch, rows), file, rows)
