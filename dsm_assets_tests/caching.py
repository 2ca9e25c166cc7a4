"""Build real published + verified + cached states with the core functions (no Dagster), for cache tests."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from dsm_assets.cache import CacheResult, refresh_cache
from dsm_assets.cleaning import clean_dataset
from dsm_assets.publishing import PublishOutcome, publish_cleaned
from dsm_assets.registry import DatasetSpec, ModelSpec
from dsm_assets.remotes import open_remote
from dsm_assets.remotes.base import Remote
from dsm_assets.state import record_verified
from dsm_assets.training import ModelResult, Producer, train_model


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


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TEXT_CODE = "code-train-text"  # the code version tests give the text example run in process


def text_producer(shards_folder: Path) -> Producer:
    """examples/train_text.py's training run in this process: what its Pipes script does, without Pipes."""
    spec = importlib.util.spec_from_file_location("train_text", EXAMPLES / "train_text.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda folder: module.train(shards_folder, folder)


def train_text(model: ModelSpec, spec: DatasetSpec, shards_folder: Path, outputs: Path, *, run_id: str,
               upstream: dict | None = None) -> ModelResult:
    """`train_model` with the text example as the producer."""
    return train_model(model, spec, shards_folder=shards_folder, outputs_dir=outputs, upstream=upstream or {},
                       run_id=run_id, produce=text_producer(shards_folder), code_version=TEXT_CODE)
