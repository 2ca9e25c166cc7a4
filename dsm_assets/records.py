"""What one hop hands the next, as the downstream hop needs it. The Dagster layer writes each record into a
materialisation's metadata and reads it back (`defs/handoff.py`); the core functions take these types, so
they never see metadata keys. The cleaned hop's record is `cleaning.CleanResult` itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PublishedVersion:
    """A version on the dataset's remote: what round_trip reads back."""

    dataset: str
    tag: str
    commit: str
    url: str
    content_hash: str
    rows: int


@dataclass(frozen=True)
class CachedVersion:
    """The version folder the offline cache holds: what the shards are cut from."""

    dataset: str
    tag: str
    commit: str
    folder: Path
    rows: int


@dataclass(frozen=True)
class ShardSet:
    """A folder of WebDataset shards and the hash of its manifest: what a model trains on."""

    dataset: str
    folder: Path
    manifest_hash: str
    tag: str
    commit: str
    count: int  # shards


@dataclass(frozen=True)
class TrainedModel:
    """A trained model version and its held-out accuracy: what the accuracy check judges."""

    name: str
    version: str
    accuracy: float
