"""The offline loading API for training code:

    import dsm_assets
    train = dsm_assets.load("text_reviews")            # the current cached version
    old = dsm_assets.load("text_reviews", "v1.0")      # any version still in the cache

It memory-maps the version's Arrow copy (`arrow_cache`: written by the cache hop, else converted here once,
a batch at a time) and wraps it as a `datasets.Dataset`, as `datasets.load_dataset` does with its own cache:
loading takes milliseconds and little memory whatever the size, and pages are read as rows are touched. No
Hub or datasets download code runs, so it cannot reach the network whether or not HF_HUB_OFFLINE was set
before import.

Image columns are `datasets.Image()` (a PIL image on access). Audio columns decode to
`{"path", "array", "sampling_rate"}`: through `datasets.Audio()` where torchcodec is installed, else (the
datasets 4+ Audio feature decodes only through torchcodec) through soundfile, by `with_audio_decoding`.
`decode_audio` and `with_audio_decoding` serve users of plain `datasets.load_dataset` the same way."""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from dsm_assets import arrow_cache, atomic, paths
from dsm_assets.arrow_types import media_struct
from dsm_assets.cache import read_manifest, verify_folder
from dsm_assets.errors import CacheError
from dsm_assets.layout import (
    CACHE_VERSIONS,
    cache_arrow_file,
    cache_arrow_seal,
    cache_current,
    cache_root,
    data_parquet,
    load_temp_dir,
)
from dsm_assets.preflight import preflight
from dsm_assets.provenance import Loaded, remember_load
from dsm_assets.registry import DatasetSpec, Registry, display_path, load_registry

if TYPE_CHECKING:
    import datasets
    import datasets.table

log = logging.getLogger(__name__)


def load(name: str, version: str | None = None, *, data_dir: Path | None = None,
         registry: Registry | None = None) -> datasets.Dataset:
    """The cached `name` (`version`, default the current one) as a datasets.Dataset, from local files only.
    Image columns give PIL images, audio columns `{"path", "array", "sampling_rate"}` dicts (see the module).

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
    manifest = read_manifest(folder)
    import datasets  # imported on use: heavy, and only the training side needs it

    table = _open(spec, folder, manifest)
    remember_load(Loaded(name, manifest["version"], manifest["commit"], manifest["content_hash"]))
    info = datasets.DatasetInfo(features=_features(spec, table.table))
    # the content hash as the fingerprint: datasets would otherwise hash the table's state
    dataset = datasets.Dataset(table, info=info, split=datasets.Split.TRAIN, fingerprint=manifest["content_hash"])
    return with_audio_decoding(dataset)


def _open(spec: DatasetSpec, folder: Path, manifest: dict[str, Any]) -> datasets.table.Table:
    """The version's Arrow copy memory-mapped (`arrow_cache`), converted first when the cache hop did not
    write it (or it is stale or broken): in the cache folder, else, when that is read-only, in a folder of
    $TMPDIR for this user and content, else (that failing too) the parquet read into memory."""
    from datasets.table import InMemoryTable, MemoryMappedTable

    arrow, seal = cache_arrow_file(folder), cache_arrow_seal(folder)
    try:
        if arrow_cache.folder_problem(folder, manifest) is not None:
            with atomic.dir_lock(arrow.parent):  # loaders on one node convert once, the others wait
                _convert(spec.name, folder, manifest, arrow, seal)
        return MemoryMappedTable.from_file(str(arrow))
    except OSError as exc:  # the copy could not be written or opened there: a read-only cache, say
        unwritable = f"{display_path(arrow.parent)} is not writable ({exc.strerror or exc})"
    tmp_dir = load_temp_dir(Path(tempfile.gettempdir()), os.getuid(), manifest["content_hash"])
    arrow, seal = tmp_dir / arrow.name, tmp_dir / seal.name
    try:
        if arrow_cache.problem(arrow, seal, content_hash=manifest["content_hash"], rows=manifest["rows"]):
            log.warning("%s: %s; converting %s %s to %s for this node (re-materialise %s/cache where the cache "
                        "is writable to convert it once for every node)", spec.name, unwritable, spec.name,
                        manifest["version"], tmp_dir, spec.name)
            with atomic.dir_lock(tmp_dir):
                _convert(spec.name, folder, manifest, arrow, seal)
        return MemoryMappedTable.from_file(str(arrow))
    except OSError as exc:
        log.warning("%s: %s, and %s failed too (%s); reading %s %s into memory", spec.name, unwritable, tmp_dir,
                    exc.strerror or exc, spec.name, manifest["version"])
    return InMemoryTable(_read(spec.name, folder))


def _convert(name: str, folder: Path, manifest: dict[str, Any], arrow: Path, seal: Path) -> None:
    """Write the Arrow copy unless another loader did while this one waited for the lock (held by the caller)."""
    if arrow_cache.problem(arrow, seal, content_hash=manifest["content_hash"], rows=manifest["rows"]) is None:
        return
    atomic.remove_stale_temps(arrow.parent)  # a killed converter's (we hold the folder's lock)
    parts = [folder / p for p in data_parquet(manifest["files"])]
    try:
        got, _ = arrow_cache.write(parts, arrow, seal, content_hash=manifest["content_hash"])
    except arrow_cache.Unreadable as exc:
        raise _unreadable(name, folder, exc) from None
    if got != manifest["content_hash"]:
        raise CacheError(f"{name}: the cached data in {folder / 'data'} does not match its content hash "
                         f"{manifest['content_hash'][:12]} (got {got[:12]}); run `dsm preflight --deep {name}`, "
                         f"then re-materialise {name}/cache")


def _unreadable(name: str, folder: Path, exc: BaseException) -> CacheError:
    return CacheError(f"{name}: a cached file in {folder / 'data'} is unreadable ({exc}); run "
                      f"`dsm preflight --deep {name}`, then re-materialise {name}/cache")


def _features(spec: DatasetSpec, table: pa.Table) -> datasets.Features:
    """The features the parquet's `huggingface` metadata declares; a media column of a version written
    without them (its {bytes, path} storage only) still becomes Image() or Audio() from the registry."""
    import datasets

    features = datasets.Features.from_arrow_schema(table.schema)
    media = {"image": datasets.Image(), "audio": datasets.Audio()}
    for col, typ in spec.media_columns().items():
        stored = col in table.column_names and table.schema.field(col).type.equals(media_struct())
        if stored and not isinstance(features[col], datasets.Image | datasets.Audio):
            features[col] = media[typ]
    return features


def torchcodec_available() -> bool:
    """Whether `datasets.Audio()` can decode here (datasets 4+ decodes audio only through torchcodec)."""
    return importlib.util.find_spec("torchcodec") is not None


def decode_audio(value: dict[str, Any] | bytes | str | None) -> dict[str, Any] | None:
    """One audio value, as `datasets.Audio(decode=False)` gives it ({"bytes", "path"}; or the bytes, or a
    path), decoded with soundfile (WAV, FLAC, OGG, MP3; no torchcodec needed) into
    `{"path": str | None, "array": float32 ndarray, "sampling_rate": int}`; the array is (frames,) for mono,
    (channels, frames) otherwise, as datasets' Audio used to give. For users of plain `datasets.load_dataset`
    without torchcodec:

        ds = datasets.load_dataset(folder)["train"].cast_column("audio", datasets.Audio(decode=False))
        dsm_assets.decode_audio(ds[0]["audio"])["array"]

    or `dsm_assets.with_audio_decoding(ds)` to decode every audio column on access."""
    import soundfile

    if value is None:
        return None
    if isinstance(value, dict):
        payload, path = value.get("bytes"), value.get("path")
    elif isinstance(value, str):
        payload, path = None, value
    else:
        payload, path = value, None
    source = io.BytesIO(payload) if payload else path
    if source is None:
        raise ValueError("an audio value needs its bytes or a path; both are empty")
    array, rate = soundfile.read(source, dtype="float32", always_2d=False)
    return {"path": path, "array": array.T if array.ndim > 1 else array, "sampling_rate": int(rate)}


class AudioDecoding:
    """A `Dataset.set_transform` function: decodes the named audio columns with `decode_audio`, leaves the
    others as the dataset's features decode them (images stay PIL). A class, so it pickles to DataLoader
    workers."""

    def __init__(self, columns: Iterable[str]) -> None:
        self.columns = tuple(columns)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for col in self.columns:
            if col in batch:
                batch[col] = [decode_audio(v) for v in batch[col]]
        return batch


def with_audio_decoding(dataset: datasets.Dataset) -> datasets.Dataset:
    """`dataset` with its Audio() columns decoding to `{"path", "array", "sampling_rate"}` on access even
    without torchcodec: they are cast to Audio(decode=False) (the same storage, nothing copied) and decoded by
    soundfile in a format transform. Unchanged when torchcodec is installed or there is no audio column."""
    import datasets

    audio = [col for col, f in dataset.features.items() if isinstance(f, datasets.Audio) and f.decode]
    if not audio or torchcodec_available():
        return dataset
    for col in audio:
        dataset = dataset.cast_column(col, datasets.Audio(decode=False))  # a decodable feature: info only
    dataset.set_transform(AudioDecoding(audio))
    return dataset


def _read(name: str, folder: Path) -> pa.Table:
    parts = sorted((folder / "data").glob("*.parquet"))
    try:
        # page checksums (cleaning writes them) catch a flipped byte in the data that no decoder would notice
        return pa.concat_tables(pq.read_table(p, memory_map=True, page_checksum_verification=True) for p in parts)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(name, folder, exc) from None


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
