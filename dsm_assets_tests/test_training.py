from __future__ import annotations

import json

import joblib

from dsm_assets.layout import models_dir
from dsm_assets.shards import write_shards
from dsm_assets.training import LINEAGE

from .caching import cache_latest, publish_and_verify, train_text


def shard_text_reviews(data_dir, shipped, outputs):
    spec = shipped.get("text_reviews")
    cached = cache_latest(publish_and_verify(spec, data_dir), data_dir)
    return spec, write_shards(spec, cached.path, outputs)


def test_trains_a_real_model_and_records_its_lineage(data_dir, shipped, tmp_path):
    outputs = tmp_path / "outputs"
    spec, sharded = shard_text_reviews(data_dir, shipped, outputs)
    model = shipped.model("sentiment")
    result = train_text(model, spec, sharded.folder, outputs, run_id="run-1",
                        upstream={"remote_url": "/r", "raw_fingerprint": "abc"})
    assert result.trained and result.metrics["accuracy"] >= model.threshold
    assert result.metrics["train_samples"] + result.metrics["test_samples"] == sharded.manifest["total_samples"]
    lineage = json.loads((result.folder / LINEAGE).read_text())
    assert lineage["dataset"]["commit"] == sharded.manifest["commit"] and lineage["dagster_run_id"] == "run-1"
    assert lineage["dataset"]["shards"]["manifest_hash"] == sharded.manifest_hash
    assert lineage["dataset"]["raw_fingerprint"] == "abc" and lineage["model_version"] == result.version
    fitted = joblib.load(result.folder / "model.joblib")
    assert list(fitted.predict(["The battery is really wonderful.", "The lid is truly awful."])) == [0, 1]
    assert (models_dir(outputs, "sentiment") / "latest").resolve() == result.folder


def test_same_inputs_reuse_the_model_version(data_dir, shipped, tmp_path):
    outputs = tmp_path / "outputs"
    spec, sharded = shard_text_reviews(data_dir, shipped, outputs)
    model = shipped.model("sentiment")
    first = train_text(model, spec, sharded.folder, outputs, run_id="a")
    again = train_text(model, spec, sharded.folder, outputs, run_id="b")
    assert (again.version, again.trained, again.lineage["dagster_run_id"]) == (first.version, False, "a")


def test_a_corrupted_model_file_is_trained_again_not_reused(data_dir, shipped, tmp_path, caplog):
    # before: a model folder was reused on the strength of its lineage.json alone; a flipped byte in
    # model.joblib (same size) was handed on as the model of this version forever
    outputs = tmp_path / "outputs"
    spec, sharded = shard_text_reviews(data_dir, shipped, outputs)
    model = shipped.model("sentiment")
    first = train_text(model, spec, sharded.folder, outputs, run_id="a")
    assert set(first.lineage["files"]) == {"model.joblib", "metrics.json"}
    joblib_file = first.folder / "model.joblib"
    data = bytearray(joblib_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    joblib_file.write_bytes(bytes(data))
    again = train_text(model, spec, sharded.folder, outputs, run_id="b")
    assert (again.version, again.trained, again.lineage["dagster_run_id"]) == (first.version, True, "b")
    assert f"{joblib_file}: content changed since it was written" in caplog.text
    assert joblib.load(again.folder / "model.joblib").predict(["The lid is truly awful."]) == [1]
    third = train_text(model, spec, sharded.folder, outputs, run_id="c")
    assert (third.trained, third.lineage["dagster_run_id"]) == (False, "b")  # intact now: reused
