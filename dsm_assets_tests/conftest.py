"""Shared fixtures: a temp data dir holding the shipped samples, and helpers to write registries."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

# huggingface_hub and datasets read these at import: set them before anything imports them, so no test
# writes to the developer's HF cache or sends telemetry.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="dsm-tests-hf-home-")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# The loopback Hub has no Xet storage: large files take Git LFS, as with `transfer: lfs` (test_hub_transfer
# turns Xet back on to test its failure path). Child processes (dagster dev, load_dataset) inherit it.
os.environ["HF_HUB_DISABLE_XET"] = "1"
for _var in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402
import yaml  # noqa: E402

from dsm_assets.registry import DEFAULT_REGISTRY, DatasetSpec, Registry, load_registry  # noqa: E402
from dsm_assets.samples import install_samples  # noqa: E402

from .servers import (  # noqa: E402, F401  (shared fixtures)
    aws_env,
    hub,
    hub_regular,
    hub_regular_server,
    hub_server,
    moto_url,
)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's registry, data dir or Dagster home."""
    monkeypatch.delenv("DSM_REGISTRY", raising=False)
    monkeypatch.setenv("DSM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DSM_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir with the shipped sample raw files in place."""
    data = tmp_path / "data"
    install_samples(data)
    return data


@pytest.fixture
def shipped() -> Registry:
    return load_registry(DEFAULT_REGISTRY)


def shipped_entries() -> list[dict[str, Any]]:
    return copy.deepcopy(yaml.safe_load(DEFAULT_REGISTRY.read_text())["datasets"])


def write_registry(path: Path, datasets: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "datasets": datasets}, sort_keys=False))
    return path


def spec_from(tmp_path: Path, entry: dict[str, Any]) -> DatasetSpec:
    """Load one registry entry through the real loader (so validation applies)."""
    return load_registry(write_registry(tmp_path / "registry.yaml", [entry])).datasets[0]


def csv_entry(**overrides: Any) -> dict[str, Any]:
    """A small CSV dataset entry reading raw/t/*.csv; keys in `overrides` replace the defaults."""
    entry: dict[str, Any] = {
        "name": "t",
        "use": "tests",
        "source": {"path": "raw/t/*.csv", "format": "csv"},
        "schema": {"id": "int64", "text": "string", "label": "string"},
        "cleaning": {"dedupe_key": ["text"], "required": ["text", "label"],
                     "labels": {"column": "label", "allowed": ["a", "b"]}},
    }
    entry.update(overrides)
    return entry


def write_raw(data_dir: Path, name: str, filename: str, content: bytes | str) -> Path:
    path = data_dir / "raw" / name / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.fixture
def shapes(data_dir: Path, shipped: Registry, tmp_path: Path):
    """The shapes sample, published, cached and sharded: (spec, shards folder, manifest)."""
    from dsm_assets.shards import write_shards

    from .caching import cache_latest, publish_and_verify

    spec = shipped.get("shapes")
    cached = cache_latest(publish_and_verify(spec, data_dir), data_dir)
    result = write_shards(spec, cached.path, tmp_path / "outputs")
    return spec, result.folder, result.manifest
