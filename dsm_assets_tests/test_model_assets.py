"""model/<name> in real in-process Dagster runs: training, lineage, blocking, automatic retraining."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, build_definitions
from dsm_assets.layout import cache_root
from dsm_assets.lineage import model_versions, read_lineage

MODEL = dg.AssetKey(["models", "sentiment"])


def setup(shipped, data_dir):
    outputs = data_dir.parent / "outputs"
    base = build_definitions(registry=shipped, data_dir=data_dir, outputs_dir=outputs)
    only_model = dg.define_asset_job("only_model", selection=dg.AssetSelection.assets(MODEL))
    upto_shards = dg.define_asset_job("upto_shards", selection=dg.AssetSelection.assets(
        *(dg.AssetKey(["text_reviews", hop]) for hop in ("cleaned", "published", "cache", "shards"))))
    return dg.Definitions.merge(base, dg.Definitions(jobs=[only_model, upto_shards])), outputs


def run(defs, instance, job=MATERIALIZE_JOB):
    defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance)
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def edit_text_reviews(data_dir):
    raw = data_dir / "raw" / "text_reviews" / "reviews.csv"
    edited = b"\n2,\"An edited review, truly wonderful.\",positive\n2000000,"
    raw.write_bytes(raw.read_bytes().replace(b"\n2,", edited, 1))


def test_the_graph_trains_the_model_and_records_its_lineage(shipped, data_dir):
    defs, outputs = setup(shipped, data_dir)
    with dg.DagsterInstance.ephemeral() as instance:
        result = run(defs, instance)
        assert result.success
        meta = instance.get_latest_materialization_event(MODEL).asset_materialization.metadata
        published = instance.get_latest_materialization_event(
            dg.AssetKey(["text_reviews", "published"])).asset_materialization.metadata
        assert meta["dataset_commit"].value == published["commit"].value and float(meta["accuracy"].value) >= 0.8
        lineage = read_lineage(outputs, "sentiment")
        assert lineage["dagster_run_id"] == result.run_id
        assert lineage["dataset"]["remote_url"] == published["url"].value
        raw = instance.get_latest_data_version_record(dg.AssetKey(["text_reviews", "raw"]), is_source=True)
        assert lineage["dataset"]["raw_fingerprint"] == raw.asset_observation.data_version
        [accuracy] = [c for c in result.get_asset_check_evaluations() if c.asset_key == MODEL]
        assert accuracy.passed and accuracy.description.startswith("accuracy 1.000")
        assert_the_page_answers_which_data_trained_it(instance, meta, lineage, result.run_id)


def assert_the_page_answers_which_data_trained_it(instance, meta, lineage, run_id):
    """Every link of the chain on the model page itself, as values a browser opens, and as one table."""
    key = lambda hop: dg.AssetKey(["text_reviews", hop])  # noqa: E731
    latest = lambda hop: instance.get_latest_materialization_event(key(hop)).asset_materialization.metadata  # noqa: E731
    shards, cleaned = latest("shards"), latest("cleaned")
    raw = instance.get_latest_data_version_record(key("raw"), is_source=True).asset_observation.data_version
    assert meta["accuracy"].value == "1.000"
    assert meta["dataset"].value == "text_reviews" and meta["dataset_version"].value == "v1.0"
    assert meta["shards_manifest_hash"].value == shards["manifest_hash"].value
    assert meta["shards"].value == shards["shards"].value == 4
    assert meta["content_hash"].value == meta["cleaned_content_hash"].value == cleaned["content_hash"].value
    assert meta["raw_fingerprint"].value == raw
    assert isinstance(meta["training_run"], dg.DagsterRunMetadataValue) and meta["training_run"].value == run_id
    assert meta["code_version"].value == lineage["code_version"]
    assert isinstance(meta["published_at"], dg.PathMetadataValue) and Path(meta["published_at"].value).is_dir()
    assert all(not str(v.value).startswith("file:") for v in meta.values())
    table = meta["lineage"].value.splitlines()
    assert table[0] == "| step | what |"
    assert [row.split("|")[1].strip() for row in table[2:]] == ["model", "shards", "cache", "published", "cleaned",
                                                                "raw"]
    assert shards["manifest_hash"].value in meta["lineage"].value and raw in meta["lineage"].value
    assert meta["lineage_graph"].value == "/assets/models/sentiment?view=lineage&lineageScope=upstream&lineageDepth=5"


def test_model_is_not_trained_while_the_preflight_fails(shipped, data_dir):
    defs, outputs = setup(shipped, data_dir)
    with dg.DagsterInstance.ephemeral() as instance:
        run(defs, instance)
        shutil.rmtree(cache_root(shipped.get("text_reviews"), data_dir))
        result = run(defs, instance, job="only_model")
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert failure.step_failure_data.user_failure_data.description.startswith(
            "models/sentiment was not trained: the text_reviews cache is missing: no cache in")
    assert len(model_versions(outputs, "sentiment")) == 1


def test_a_newly_verified_version_makes_automation_request_the_model(shipped, data_dir):
    defs, _ = setup(shipped, data_dir)
    selection = dg.AssetSelection.assets(MODEL)
    with dg.DagsterInstance.ephemeral() as instance:
        run(defs, instance)
        cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection).cursor
        settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                    cursor=cursor)
        assert settled.total_requested == 0
        edit_text_reviews(data_dir)
        assert run(defs, instance, job="upto_shards").success
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                  cursor=settled.cursor)
        assert after.get_num_requested(MODEL) == 1


def test_an_edited_row_gives_v1_1_and_a_new_model_while_the_old_lineage_still_names_v1_0(shipped, data_dir):
    defs, outputs = setup(shipped, data_dir)
    with dg.DagsterInstance.ephemeral() as instance:
        run(defs, instance)
        first = read_lineage(outputs, "sentiment")
        edit_text_reviews(data_dir)
        assert run(defs, instance).success
        second = read_lineage(outputs, "sentiment")
    assert (first["dataset"]["version"], second["dataset"]["version"]) == ("v1.0", "v1.1")
    assert model_versions(outputs, "sentiment") == sorted([first["model_version"], second["model_version"]])
    old = read_lineage(outputs, "sentiment", first["model_version"])
    assert old["dataset"]["version"] == "v1.0" and old["dataset"]["commit"] == first["dataset"]["commit"]
