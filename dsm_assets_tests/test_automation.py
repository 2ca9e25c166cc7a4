"""The automation that refreshes cache, shards and models: on by default, level-triggered on what each asset
holds, once per version. Evaluated with Dagster's own `evaluate_automation_conditions`, and every run it
requests is executed in process, as the sensor would launch it, before the next tick."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pyarrow.parquet as pq

from dsm_assets.defs.automation import SENSOR
from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, PUBLISH_JOB, build_definitions
from dsm_assets.defs.raw import WATCH_SENSOR
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.layout import DATA_PATH
from dsm_assets.remotes.local import LocalRemote

from .caching import edit_chords
from .test_model_assets import edit_text_reviews

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
MODEL = dg.AssetKey(["models", "sentiment"])


def keys(dataset: str) -> list[dg.AssetKey]:
    return [dg.AssetKey([dataset, hop]) for hop in ("cache", "shards")]


def ticks(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None,
          limit: int = 8) -> tuple[Counter, str | None]:
    """Evaluate the automation like the sensor does, running what each tick requests, until a tick requests
    nothing. Returns how often each asset was requested, and the cursor."""
    requested: Counter = Counter()
    for _ in range(limit):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        wanted = {r.key for r in result.results
                  if isinstance(r.key, dg.AssetKey) and result.get_num_requested(r.key)}
        if not wanted:
            return requested, cursor
        requested.update(k.to_user_string() for k in wanted)
        job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=wanted)
        job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False,
                               tags={"dsm/trigger": "automation"})
    raise AssertionError(f"automation still requesting after {limit} ticks: {requested}")


def materialize_all(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance, run_config=QUIET)
    assert defs.resolve_job_def(MATERIALIZE_JOB).execute_in_process(instance=instance, run_config=QUIET).success


def publish(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(PUBLISH_JOB).execute_in_process(instance=instance, run_config=QUIET,
                                                                raise_on_error=False)


def metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    return instance.get_latest_materialization_event(key).asset_materialization.metadata


def test_the_automation_sensor_runs_by_default_in_the_code_server(shipped, data_dir):
    defs = build_definitions(registry=shipped, data_dir=data_dir, outputs_dir=data_dir.parent / "outputs")
    sensor = defs.resolve_sensor_def(SENSOR)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds and sensor.minimum_interval_seconds <= 30
    conditions = {k.to_user_string(): a.automation_conditions_by_key.get(k)
                  for a in defs.assets for k in a.keys}
    automated = sorted(k for k, c in conditions.items() if c is not None)
    assert automated == sorted([f"{d}/{hop}" for d in ("text_reviews", "chords", "shapes", "chord_tones")
                                for hop in ("cache", "shards")] + ["models/sentiment", "models/shapes_clf"])


def test_a_fresh_publish_is_carried_to_cache_shards_and_model_by_automation_alone(shipped, data_dir):
    defs = build_definitions(registry=shipped, data_dir=data_dir, outputs_dir=data_dir.parent / "outputs")
    with dg.DagsterInstance.ephemeral() as instance:
        assert publish(defs, instance).success
        requested, _ = ticks(defs, instance)
        assert requested == Counter({f"{d}/{hop}": 1 for d in ("text_reviews", "chords", "shapes", "chord_tones")
                                     for hop in ("cache", "shards")} | {"models/sentiment": 1, "models/shapes_clf": 1})
        assert metadata(instance, MODEL)["dataset_version"].value == "v1.0"


def test_a_version_published_while_the_sensor_was_off_is_caught_up_exactly_once(shipped, data_dir):
    defs = build_definitions(registry=shipped, data_dir=data_dir, outputs_dir=data_dir.parent / "outputs")
    with dg.DagsterInstance.ephemeral() as instance:
        materialize_all(defs, instance)
        requested, cursor = ticks(defs, instance)
        assert requested == Counter()  # everything holds what its parent offers
        # The sensor is off: nobody evaluates while v1.1 is published and verified.
        edit_text_reviews(data_dir)
        result = publish(defs, instance)
        assert result.success
        assert metadata(instance, dg.AssetKey(["text_reviews", "published"]))["version"].value == "v1.1"
        # On again, with the cursor it had (as after a toggle) and with none (as on a new instance's sensor).
        requested, _ = ticks(defs, instance, cursor)
        assert requested == Counter({"text_reviews/cache": 1, "text_reviews/shards": 1, "models/sentiment": 1})
        assert ticks(defs, instance)[0] == Counter()
        assert metadata(instance, dg.AssetKey(["text_reviews", "cache"]))["version"].value == "v1.1"
        model = metadata(instance, MODEL)
        shards = metadata(instance, dg.AssetKey(["text_reviews", "shards"]))
        assert model["dataset_version"].value == "v1.1"
        assert model["shards_manifest_hash"].value == shards["manifest_hash"].value


def test_a_failing_round_trip_requests_nothing(shipped, data_dir):
    defs = build_definitions(registry=shipped, data_dir=data_dir, outputs_dir=data_dir.parent / "outputs")
    published = dg.AssetKey(["chords", "published"])
    recheck = dg.define_asset_job("recheck", selection=dg.AssetSelection.checks(
        dg.AssetCheckKey(published, "round_trip")))
    merged = dg.Definitions.merge(defs, dg.Definitions(jobs=[recheck]))
    with dg.DagsterInstance.ephemeral() as instance:
        materialize_all(defs, instance)
        edit_chords(data_dir, 11)
        assert publish(defs, instance).success
        commit = metadata(instance, published)["commit"].value
        obj = LocalRemote(data_dir / "remote" / "dsm" / "chords").object_path(commit, DATA_PATH)
        pq.write_table(pq.read_table(obj).slice(2), obj)  # the remote now serves other data for v1.1
        merged.resolve_job_def("recheck").execute_in_process(instance=instance, raise_on_error=False,
                                                             run_config=QUIET)
        requested, _ = ticks(defs, instance)
        assert requested == Counter()
        assert metadata(instance, dg.AssetKey(["chords", "cache"]))["version"].value == "v1.0"


def test_a_refresh_that_fails_is_not_requested_again_for_the_same_version(shipped, data_dir):
    defs = build_definitions(registry=shipped, data_dir=data_dir, outputs_dir=data_dir.parent / "outputs")
    with dg.DagsterInstance.ephemeral() as instance:
        materialize_all(defs, instance)
        edit_chords(data_dir, 12)
        assert publish(defs, instance).success
        commit = metadata(instance, dg.AssetKey(["chords", "published"]))["commit"].value
        LocalRemote(data_dir / "remote" / "dsm" / "chords").object_path(commit, DATA_PATH).unlink()
        requested, _ = ticks(defs, instance)
        # One run for both (shards ride along with the cache), its cache step fails; not retried every tick.
        assert requested == Counter({"chords/cache": 1, "chords/shards": 1})
        assert metadata(instance, dg.AssetKey(["chords", "cache"]))["version"].value == "v1.0"
        edit_chords(data_dir, 13)  # a newer version gets its own request
        assert publish(defs, instance).success
        requested, _ = ticks(defs, instance)
        assert requested == Counter({"chords/cache": 1, "chords/shards": 1})


def test_the_raw_files_sensor_observes_a_changed_file_once_without_a_run(shipped, data_dir):
    defs = build_definitions(registry=shipped, data_dir=data_dir, outputs_dir=data_dir.parent / "outputs")
    sensor = defs.resolve_sensor_def(WATCH_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    paths = DsmPaths(data_dir=str(data_dir), outputs_dir=str(data_dir.parent / "outputs"))

    def tick(instance) -> list[str]:
        with dg.build_sensor_context(instance=instance, resources={"dsm_paths": paths}) as context:
            result = sensor(context)
        for event in result.asset_events:  # what the daemon does with them
            instance.report_runless_asset_event(event)
        return sorted(e.asset_key.to_user_string() for e in result.asset_events)

    with dg.DagsterInstance.ephemeral() as instance:
        assert tick(instance) == ["chord_tones/raw", "chords/raw", "shapes/raw", "text_reviews/raw"]  # first sight
        assert tick(instance) == []
        edit_text_reviews(data_dir)
        assert tick(instance) == ["text_reviews/raw"]
        assert tick(instance) == []
        record = instance.get_latest_data_version_record(dg.AssetKey(["text_reviews", "raw"]), is_source=True)
        assert record.asset_observation.metadata["files_rehashed"].value == 1  # only the edited file was read
        assert instance.get_runs() == []


def test_the_raw_files_sensor_reports_missing_files_once_not_every_tick(shipped, data_dir):
    import json
    import shutil

    defs = build_definitions(registry=shipped, data_dir=data_dir, outputs_dir=data_dir.parent / "outputs")
    sensor = defs.resolve_sensor_def(WATCH_SENSOR)
    paths = DsmPaths(data_dir=str(data_dir), outputs_dir=str(data_dir.parent / "outputs"))
    shutil.rmtree(data_dir / "raw" / "chords")
    with dg.DagsterInstance.ephemeral() as instance:
        with dg.build_sensor_context(instance=instance, resources={"dsm_paths": paths}) as context:
            first = sensor(context)
        [problem] = json.loads(first.cursor)
        assert "datasets[1].source.path: 'raw/chords/*.jsonl' matched no files" in problem
        with dg.build_sensor_context(instance=instance, cursor=first.cursor, resources={"dsm_paths": paths}) as ctx:
            assert json.loads(sensor(ctx).cursor) == [problem]  # the same problem: remembered, not warned again
