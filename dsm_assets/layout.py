"""Where everything lands on disk, in one place (README: "Where data lands"). Every folder we write is
built here through `paths.under`/`paths.inside`, so none can lead out of the data or outputs dir.

    <data>/clean/<dataset>/<content-hash>/train-XXXXX-of-YYYYY.parquet   cleaned data (parquet_files)
    <data>/clean/<dataset>/<content-hash>.json                 its stats, file seals, preview
    <data>/clean/<dataset>/<content-hash>.contact.png          an image dataset's thumbnails (contact sheet)
    <data>/.dsm/statcache/<dataset>.json                       raw fingerprint's stat cache
    <data>/.dsm/published/<dataset>.json                       latest published version (dsm registry)
    <data>/.dsm/verified/<dataset>.json                        latest version whose round_trip passed
    <data>/.dsm/staging/                                       a publish's staged files
    <data>/.dsm/hf-cache/                                      a hub remote's downloads
    <data>/remote/<owner>/<name>/                              the local remote (objects, commits, refs)
    <data>/<cache_dir>/versions/<tag>-<commit12>/              an offline cached version
    <data>/<cache_dir>/versions/<tag>-<commit12>/.arrow/       its memory-mapped Arrow copy (arrow_cache) + seal
    <data>/<cache_dir>/current -> versions/…                   the version loaders read
    $TMPDIR/dsm-load-<uid>-<hash16>/                           load's Arrow copy when the cache is read-only
    <outputs>/shards/<dataset>/<tag>-<commit12>/               WebDataset shards + manifest.json
    <outputs>/models/<model>/<version>/ (latest -> …)          a trained model + lineage.json

A published version (on every remote) holds the cleaned files under DATA_DIR (DATA_GLOB: DATA_PATH when
there is one file), CARD_PATH and INFO_PATH."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from dsm_assets.paths import inside, under

if TYPE_CHECKING:
    from dsm_assets.registry import DatasetSpec

# A published version's files, as `datasets` finds them (the card's `configs` point at the data): every
# cleaned file as `data/<its name>`; DATA_PATH is a version's data file when cleaning wrote one.
DATA_DIR = "data"
DATA_PATH = "data/train-00000-of-00001.parquet"
DATA_GLOB = "data/train-*.parquet"
CARD_PATH = "README.md"
INFO_PATH = "dsm.json"

def data_parquet(paths: Iterable[str]) -> list[str]:
    """The dataset's parquet files among a version's `paths` (not the card, dsm.json or shards), sorted."""
    return sorted(p for p in paths if p.startswith("data/") and p.endswith(".parquet"))


CACHE_MANIFEST = "cache_manifest.json"  # in each cached version folder
SHARDS_MANIFEST = "manifest.json"  # in each shard folder
CACHE_VERSIONS = "versions"
CURRENT = "current"
LATEST = "latest"


def folder_name(tag: str, commit: str) -> str:
    """How a cached or sharded version's folder is named: `v1.1-5423ce4be26d`."""
    return f"{tag}-{commit[:12]}"


def clean_dir(data_dir: Path, name: str) -> Path:
    """A dataset's cleaned versions: a folder `<content-hash>/` of parquet files each, and its stats beside."""
    return under(data_dir, "clean", name)


def contact_sheet(data_dir: Path, name: str, version: str) -> Path:
    """The contact sheet (64 thumbnails spread over the rows) beside the cleaned folder of `version`."""
    return under(data_dir, "clean", name, f"{version}.contact.png")


def statcache_path(data_dir: Path, name: str) -> Path:
    return under(data_dir, ".dsm", "statcache", f"{name}.json")


def published_record(data_dir: Path, name: str) -> Path:
    return under(data_dir, ".dsm", "published", f"{name}.json")


def verified_record(data_dir: Path, name: str) -> Path:
    return under(data_dir, ".dsm", "verified", f"{name}.json")


def staging_dir(data_dir: Path) -> Path:
    """Where a publish stages its files (the data dir's disk, never $TMPDIR)."""
    return under(data_dir, ".dsm", "staging")


def local_remote_root(data_dir: Path, repo: str) -> Path:
    """The embedded default remote: `<data>/remote/<owner>/<name>/` (objects, commits, refs)."""
    return under(data_dir, "remote", *repo.split("/"))


def hub_download_cache(data_dir: Path) -> Path:
    """Where huggingface_hub keeps what a hub remote downloads (on the data dir's disk)."""
    return under(data_dir, ".dsm", "hf-cache")


def s3_prefix(spec: DatasetSpec) -> str:
    """A dataset's key prefix in its bucket: `<remote.prefix>/<dataset>`."""
    return f"{spec.remote.prefix}/{spec.name}"


def cache_root(spec: DatasetSpec, data_dir: Path) -> Path:
    return inside(data_dir, spec.cache_dir, what=f"{spec.where}.cache_dir")


def cache_versions(spec: DatasetSpec, data_dir: Path) -> Path:
    return cache_root(spec, data_dir) / CACHE_VERSIONS


def cache_version_dir(spec: DatasetSpec, data_dir: Path, tag: str, commit: str) -> Path:
    return cache_version_dir_in(cache_root(spec, data_dir), tag, commit)


def cache_version_dir_in(root: Path, tag: str, commit: str) -> Path:
    """A version's folder in the cache folder `root` (for readers handed the cache folder itself)."""
    return root / CACHE_VERSIONS / folder_name(tag, commit)


ARROW_DIR = ".arrow"  # hidden, not in the cache manifest: load's memory-mapped copy (see arrow_cache)


def cache_arrow_file(folder: Path) -> Path:
    """The Arrow stream file `dsm_assets.load` memory-maps, in the cached version `folder`."""
    return folder / ARROW_DIR / "train.arrow"


def cache_arrow_seal(folder: Path) -> Path:
    return folder / ARROW_DIR / "seal.json"


def load_temp_dir(tmp: Path, uid: int, content_hash: str) -> Path:
    """Where `load` converts a version whose cache folder it cannot write (one folder per user and content)."""
    return tmp / f"dsm-load-{uid}-{content_hash[:16]}"


def cache_current(spec: DatasetSpec, data_dir: Path) -> Path:
    """The `current` link (not resolved): absent until the first refresh."""
    return cache_root(spec, data_dir) / CURRENT


def shards_dir(outputs_dir: Path, spec: DatasetSpec, tag: str, commit: str) -> Path:
    return under(outputs_dir, "shards", spec.name, folder_name(tag, commit))


def models_dir(outputs_dir: Path, name: str) -> Path:
    return under(outputs_dir, "models", name)
