"""examples/train.sbatch, run as a plain script on a machine with no network namespace: it trains offline
and records its model, which the orchestrator's recorded_models sensor then reports in Dagster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from dsm_assets.defs.factory import build_definitions
from dsm_assets.defs.recorded import SENSOR as RECORDED_SENSOR
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.lineage import read_lineage
from dsm_assets.recording import RECORDED_BY
from dsm_assets.registry import DEFAULT_REGISTRY
from dsm_assets.shards import write_shards

from .caching import cache_latest, publish_and_verify

SBATCH = Path(__file__).resolve().parent.parent / "examples" / "train.sbatch"


def run_job(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DSM_DATA_DIR": str(data_dir), "DSM_OUTPUTS_DIR": str(data_dir.parent / "outputs"),
           "DSM_REGISTRY": str(DEFAULT_REGISTRY), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("SLURM_JOB_ID", None)
    return subprocess.run(["unshare", "--net", "bash", str(SBATCH), "text_reviews", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_job_refuses_to_train_without_a_ready_cache(data_dir):
    done = run_job(data_dir)
    assert done.returncode == 1
    assert "text_reviews: missing: no cache in" in done.stderr and "not training" in done.stderr
    assert "training on" not in done.stdout


def test_the_job_trains_offline_once_the_cache_is_ready(data_dir, shipped):
    p = publish_and_verify(shipped.get("text_reviews"), data_dir)
    cache_latest(p, data_dir)
    done = run_job(data_dir)
    assert done.returncode == 0, done.stderr
    assert f"training on text_reviews: {p.outcome.rows} rows" in done.stdout


def test_a_model_recorded_by_the_job_shows_in_dagster_with_the_commit_it_loaded(data_dir, shipped):
    spec = shipped.get("text_reviews")
    p = publish_and_verify(spec, data_dir)
    cached = cache_latest(p, data_dir)
    outputs = data_dir.parent / "outputs"
    shards = write_shards(spec, cached.path, outputs)
    done = run_job(data_dir, "sentiment")
    assert done.returncode == 0, done.stderr
    assert "recorded models/sentiment v1.0-" in done.stdout
    lineage = read_lineage(outputs, "sentiment")
    assert lineage["dataset"]["commit"] == p.outcome.commit and lineage["recorded_by"] == RECORDED_BY
    assert lineage["dataset"]["shards"]["manifest_hash"] == shards.manifest_hash
    assert lineage["code_version"].startswith("outside-") and lineage["dagster_run_id"] is None

    defs = build_definitions(registry=shipped, data_dir=data_dir, outputs_dir=outputs)
    paths = DsmPaths(data_dir=str(data_dir), outputs_dir=str(outputs))
    with dg.DagsterInstance.ephemeral() as instance:
        with dg.build_sensor_context(instance=instance, resources={"dsm_paths": paths}) as context:
            result = defs.resolve_sensor_def(RECORDED_SENSOR)(context)
        [event] = result.asset_events
        instance.report_runless_asset_event(event)
        with dg.build_sensor_context(instance=instance, cursor=result.cursor, resources={"dsm_paths": paths}) as ctx:
            assert not defs.resolve_sensor_def(RECORDED_SENSOR)(ctx).asset_events  # reported once
        meta = instance.get_latest_materialization_event(dg.AssetKey(["models", "sentiment"])).asset_materialization
    assert meta.metadata["dataset_commit"].value == p.outcome.commit
    assert meta.metadata["model_version"].value == lineage["model_version"]
    assert meta.metadata["shards_manifest_hash"].value == shards.manifest_hash
    assert meta.metadata["trained_by"].value.startswith("recorded from outside Dagster on ")
    assert meta.tags["dagster/data_version"] == lineage["model_version"]


def test_recording_needs_a_load_in_the_same_process(data_dir, shipped, tmp_path):
    from dsm_assets.errors import TrainingError
    from dsm_assets.recording import record_model

    with pytest.raises(TrainingError, match=r"never called dsm_assets.load\('text_reviews'\)"):
        record_model("sentiment", tmp_path, metrics={"accuracy": 1.0}, registry=shipped, data_dir=data_dir,
                     outputs_dir=tmp_path / "outputs")
