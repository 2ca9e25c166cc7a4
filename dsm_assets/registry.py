"""The dataset registry: one YAML file listing every dataset, validated as a whole.

This module holds what a loaded registry is (the spec dataclasses and the limits on their values) and
`load_registry`; `registry_validation` reads and checks the file, reporting every problem at once, one
line each, so a user fixes the file in one pass. The environment (`DSM_REGISTRY`) is read when
`load_registry` is called."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dsm_assets.arrow_types import parse_type
from dsm_assets.errors import RegistryError
from dsm_assets.media import MediaLimits

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_REGISTRY = Path(__file__).with_name("registry.yaml")
NAME_RE = re.compile(r"^[a-z0-9_]+$")
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
FORMATS = ("csv", "jsonl", "parquet", "imagefolder", "audiofolder")
FOLDER_FORMATS = {"imagefolder": "image", "audiofolder": "audio"}  # format → the media type its files fill
REMOTE_KINDS = ("local", "hub", "s3")
TRANSFERS = ("xet", "lfs")  # how a hub remote sends large files
OWNER_RE = re.compile(r"^(team:[\w.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
UTF8_POLICIES = ("fail", "drop")
CRON_RE = re.compile(r"^\s*(\S+\s+){4}\S+\s*$")
PIN_RE = re.compile(r"^v\d+\.\d+$")
MAX_DEPTH = 100  # YAML nesting; deeper would exhaust the YAML composer's recursion
MAX_VALUES = 100_000  # values in the registry once YAML aliases are expanded (bounds time and memory)


@dataclass(frozen=True)
class Source:
    path: str  # path or glob, relative to the data dir
    format: str


@dataclass(frozen=True)
class Labels:
    column: str
    allowed: tuple[str, ...]


@dataclass(frozen=True)
class Layers:
    """Parallel annotation layers: raw columns named `<prefix>*`; the cleaned data keeps only `canonical`."""

    prefix: str
    canonical: str


# `cleaning.file_size` when not set ("auto"): about 1/64 of the raw bytes, a power of two in this range
CLEAN_FILE_SIZE_AUTO = (16 << 20, 256 << 20)


@dataclass(frozen=True)
class Cleaning:
    dedupe_key: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    labels: Labels | None = None
    layers: Layers | None = None
    invalid_utf8: str = "fail"  # fail the run, or drop the row and count it
    media: MediaLimits = field(default_factory=MediaLimits)  # media columns: what decodes and fits, else dropped
    file_size: int | None = None  # bytes of values a cleaned parquet file aims at; None: auto (parquet_files)


@dataclass(frozen=True)
class RemoteConfig:
    """A dataset's `remote:` entry: where its versions are published (`remotes.open_remote` opens it)."""

    kind: str  # local | hub | s3
    repo: str  # namespace/name: the local remote's directory, the Hub repo id (unused by s3: keys use the name)
    private: bool = True  # hub: create the repo private
    create: bool = True  # hub: create the repo when missing (False: a missing repo is an error)
    bucket: str | None = None  # s3
    prefix: str = "datasets"  # s3: objects live under s3://<bucket>/<prefix>/<repo>/
    transfer: str = "xet"  # hub: large files through Xet (content-defined chunks) or "lfs" (Git LFS)

    def display(self, dataset: str) -> str:
        """Where `dataset`'s versions live, as a person would look for them."""
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix}/{dataset}"  # the keys S3Remote writes
        return f"{self.repo} ({self.kind})"


@dataclass(frozen=True)
class Shards:
    """How the shards are cut and written. `count`: a number of shards, or "auto" (`shards.writing.shard_count`
    says how many: about 100 on large data, none under 64 MiB, or `target_size` bytes each when set).
    `compression`: "auto" (gzip when a sample averages under 4 KiB of data, as text rows do; none for media,
    already compressed), "none" (`.tar`) or "gzip" (`.tar.gz`, which webdataset reads as it is). `fields`: "split"
    (a `text` column as `.txt`, the label's index as `.cls`, the other columns in `.json`) or "json" (every
    column in `.json`); payload columns are always members of their own."""

    count: int | str = "auto"  # an integer >= 1, or "auto"
    estimated_size: int | None = None  # expected samples across all shards
    publish: bool = False  # also publish the shards to the remote, next to the parquet (tag <version>-shards)
    target_size: int | None = None  # bytes per shard wanted with count "auto" (None: the auto rule)
    compression: str = "auto"  # "auto", "none" or "gzip"
    fields: str = "split"  # "split" or "json"


@dataclass(frozen=True)
class CacheSettings:
    """Registry-wide cache policy."""

    refresh_cron: str = "0 4 * * *"  # the cache_refresh schedule: daily at 04:00 by default
    keep: int = 2  # cached versions kept per dataset (the current one always among them)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    use: str
    source: Source
    schema: dict[str, str]
    cleaning: Cleaning
    remote: RemoteConfig
    cache_dir: str
    shards: Shards
    pin: str | None = None  # cache this version tag instead of the latest verified one
    owner: str | None = None  # shown as the assets' owner in the UI: an email or "team:<name>"
    column_docs: dict[str, str] = field(default_factory=dict)  # column → description, shown in the UI
    where: str = field(default="", compare=False)  # e.g. "registry.yaml: datasets[1]", for messages

    def media_columns(self) -> dict[str, str]:
        """Column → `image` or `audio`, for the schema's media columns."""
        return {col: typ for col, typ in self.schema.items() if typ in ("image", "audio")}

    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([(col, parse_type(t)) for col, t in self.schema.items()])

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("where")
        return out


@dataclass(frozen=True)
class TrainSpec:
    """The user's training code, run through Dagster Pipes. Paths are relative to the registry's folder,
    which is also the command's working directory; `python` runs the interpreter Dagster runs in."""

    command: tuple[str, ...]
    code: tuple[str, ...]  # files whose content versions the model (editing one trains a new version)
    timeout_seconds: float = 3600.0


@dataclass(frozen=True)
class ModelSpec:
    """A model trained on one dataset's shards by the user's `train` code, run through Dagster Pipes (or
    trained outside Dagster and recorded with `dsm_assets.record_model`)."""

    name: str
    dataset: str
    use: str
    train: TrainSpec
    metric: str = "accuracy"
    threshold: float = 0.8  # the asset check fails below this on the held-out split


Spec = TypeVar("Spec", DatasetSpec, ModelSpec)


@dataclass(frozen=True)
class Registry:
    path: Path
    datasets: tuple[DatasetSpec, ...]
    cache: CacheSettings = CacheSettings()
    models: tuple[ModelSpec, ...] = ()

    def model(self, name: str) -> ModelSpec:
        return self._named(self.models, name, "model")

    def get(self, name: str) -> DatasetSpec:
        return self._named(self.datasets, name, "dataset")

    def _named(self, specs: tuple[Spec, ...], name: str, what: str) -> Spec:
        for spec in specs:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in specs) or "none"
        raise RegistryError([f"{display_path(self.path)}: no {what} named '{name}' (registered: {known})"])

    def fingerprint(self, name: str) -> str:
        """A stable string of one dataset's settings, so a registry edit changes its versions."""
        return json.dumps(self.get(name).to_dict(), sort_keys=True)


def registry_path() -> Path:
    env = os.environ.get("DSM_REGISTRY")
    return Path(env) if env else DEFAULT_REGISTRY


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_registry(path: Path | str | None = None) -> Registry:
    """Read and validate the registry at `path` (default: `DSM_REGISTRY`, else the shipped one)."""
    # imported here: registry_validation builds this module's dataclasses, so it imports this module
    from dsm_assets.registry_validation import read_registry

    return read_registry(Path(path) if path is not None else registry_path())
