"""Build real published + verified + cached states with the core functions (no Dagster), for cache tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dsm_assets.cache import CacheResult, refresh_cache
from dsm_assets.cleaning import clean_dataset
from dsm_assets.publishing import PublishOutcome, publish_cleaned
from dsm_assets.registry import DatasetSpec
from dsm_assets.remotes import open_remote
from dsm_assets.remotes.base import Remote
from dsm_assets.state import record_verified


@dataclass
class Published:
    spec: DatasetSpec
    remote: Remote
    outcome: PublishOutcome


def publish_and_verify(spec: DatasetSpec, data_dir: Path) -> Published:
    """raw → cleaned → published on the local remote, recorded as verified (what a passing round_trip does)."""
    cleaned = clean_dataset(spec, data_dir)
    remote = open_remote(spec, data_dir=data_dir)
    outcome = publish_cleaned(spec, remote, cleaned, data_dir=data_dir)
    record_verified(data_dir, spec.name, tag=outcome.tag, commit=outcome.commit, url=outcome.url)
    return Published(spec, remote, outcome)


def cache_latest(p: Published, data_dir: Path, keep: int = 2) -> CacheResult:
    return refresh_cache(p.spec, p.remote, tag=p.outcome.tag, commit=p.outcome.commit, data_dir=data_dir, keep=keep)


def edit_chords(data_dir: Path, marker: int) -> None:
    """Change one raw row of the chords sample (a new tempo in the first record)."""
    raw = data_dir / "raw" / "chords" / "chords.jsonl"
    lines = raw.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"tempo": ', f'"tempo": {marker}', 1)
    raw.write_text("".join(lines))
