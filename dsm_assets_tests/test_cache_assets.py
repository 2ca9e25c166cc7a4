"""The cache asset, its blocking preflight check and its automation, in real in-process Dagster runs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, build_definitions
from dsm_assets.layout import DATA_PATH
from dsm_assets.remotes.local import LocalRemote

from .caching import edit_chords

CACHES = [dg.AssetKey([name, "cache"]) for name in ("text_reviews", "chords", "shapes", "chord_tones")]


def definitions(registry, data_dir) -> dg.Definitions:
    check = dg.AssetCheckKey(dg.AssetKey(["chords", "cache"]), "preflight")
    only_preflight = dg.define_asset_job("only_preflight", selection=dg.AssetSelection.checks(check))
    base = build_definitions(registry=registry, data_dir=data_dir, outputs_dir=data_dir.parent / "outputs")
    return dg.Definitions.merge(base, dg.Definitions(jobs=[only_preflight]))


def run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str = MATERIALIZE_JOB, **kwargs):
    if job == MATERIALIZE_JOB:
        defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance)
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, **kwargs)


def test_cache_materialises_the_verified_version_and_preflight_passes(shipped, data_dir):
    defs = definitions(shipped, data_dir)
    with dg.DagsterInstance.ephemeral() as instance:
        result = run(defs, instance)
        assert result.success
        for key in CACHES:
            meta = instance.get_latest_materialization_event(key).asset_materialization.metadata
            published = instance.get_latest_materialization_event(
                dg.AssetKey([key.path[0], "published"])).asset_materialization.metadata
            assert (meta["version"].value, meta["commit"].value) == ("v1.0", published["commit"].value)
        preflights = [c for c in result.get_asset_check_evaluations() if c.check_name == "preflight"]
        assert len(preflights) == 4 and all(c.passed for c in preflights)
        assert all("loaded" in c.description and "offline" in c.description for c in preflights)


def test_the_preflight_check_catches_a_flipped_byte(shipped, data_dir):
    defs = definitions(shipped, data_dir)
    with dg.DagsterInstance.ephemeral() as instance:
        run(defs, instance)
        path = dg.AssetKey(["chords", "cache"])
        folder = instance.get_latest_materialization_event(path).asset_materialization.metadata["path"].value
        data_file = Path(folder) / DATA_PATH
        raw = bytearray(data_file.read_bytes())
        raw[200] ^= 0x10
        data_file.write_bytes(bytes(raw))
        result = run(defs, instance, job="only_preflight")
        [check] = result.get_asset_check_evaluations()
        assert not check.passed
        assert check.description.startswith("corrupt: ") and "does not match its sha256" in check.description


def test_a_newly_verified_version_makes_automation_request_that_cache_only(shipped, data_dir):
    defs = definitions(shipped, data_dir)
    selection = dg.AssetSelection.assets(*CACHES)
    with dg.DagsterInstance.ephemeral() as instance:
        run(defs, instance)
        baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                    cursor=baseline.cursor)
        assert settled.total_requested == 0
        edit_chords(data_dir, 8)
        defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance)
        upto_published = dg.AssetSelection.assets(*(dg.AssetKey(["chords", hop]) for hop in ("cleaned", "published")))
        publish = dg.define_asset_job("publish_chords", selection=upto_published)
        result = dg.Definitions.merge(defs, dg.Definitions(jobs=[publish])).resolve_job_def(
            "publish_chords").execute_in_process(instance=instance)
        assert result.success
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                  cursor=settled.cursor)
        assert after.get_num_requested(dg.AssetKey(["chords", "cache"])) == 1
        assert after.get_num_requested(dg.AssetKey(["text_reviews", "cache"])) == 0


def test_a_new_version_whose_round_trip_fails_is_not_cached(shipped, data_dir):
    defs = definitions(shipped, data_dir)
    selection = dg.AssetSelection.assets(*CACHES)
    published = dg.AssetKey(["chords", "published"])
    check = dg.AssetCheckKey(published, "round_trip")
    extra = dg.Definitions(jobs=[
        dg.define_asset_job("publish_chords", selection=dg.AssetSelection.assets(
            dg.AssetKey(["chords", "cleaned"]), published)),
        dg.define_asset_job("recheck", selection=dg.AssetSelection.checks(check)),
    ])
    merged = dg.Definitions.merge(defs, extra)
    with dg.DagsterInstance.ephemeral() as instance:
        run(defs, instance)
        cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection).cursor
        edit_chords(data_dir, 9)
        defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance)
        assert merged.resolve_job_def("publish_chords").execute_in_process(instance=instance).success
        commit = instance.get_latest_materialization_event(published).asset_materialization.metadata["commit"].value
        obj = LocalRemote(data_dir / "remote" / "dsm" / "chords").object_path(commit, DATA_PATH)
        pq.write_table(pq.read_table(obj).slice(2), obj)  # the remote now serves other data for v1.1
        merged.resolve_job_def("recheck").execute_in_process(instance=instance, raise_on_error=False)
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
        assert record.evaluation is not None and not record.evaluation.passed
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                  cursor=cursor)
        assert after.get_num_requested(dg.AssetKey(["chords", "cache"])) == 0
