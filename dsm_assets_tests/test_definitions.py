"""The Dagster layer: generated keys, checks, metadata, and real in-process runs of the whole graph."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from dsm_assets.cleaning import clean_dataset
from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, build_dataset_defs, build_definitions
from dsm_assets.fingerprint import fingerprint_files
from dsm_assets.registry import load_registry
from dsm_assets.sources import resolve_files

from .conftest import csv_entry, shipped_entries, write_raw, write_registry

ROOT = Path(__file__).resolve().parent.parent


def definitions(registry, data_dir: Path) -> dg.Definitions:
    return build_definitions(registry=registry, data_dir=data_dir, outputs_dir=data_dir.parent / "outputs")


def run_graph(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[dg.ExecuteInProcessResult]:
    return [defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)
            for job in (OBSERVE_JOB, MATERIALIZE_JOB)]


def test_factory_keys_groups_and_code_versions(shipped, data_dir):
    graph = definitions(shipped, data_dir).resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    hops = ("raw", "cleaned", "published", "cache", "shards")
    models = {"models/sentiment", "models/shapes_clf"}
    assert keys == {f"{d}/{hop}" for d in ("text_reviews", "chords", "shapes", "chord_tones") for hop in hops} | models
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.code_version, key
        if key.path[0] == "models":
            assert node.group_name == "models" and shipped.model(key.path[1]).use in node.description
            dataset = shipped.model(key.path[1]).dataset
            assert {k.to_user_string() for k in node.parent_keys} == {f"{dataset}/shards"}
            continue
        assert node.group_name == key.path[0]
        assert shipped.get(key.path[0]).use in (node.description or "")
    assert graph.get(dg.AssetKey(["chords", "raw"])).is_observable
    assert graph.get(dg.AssetKey(["chords", "cleaned"])).is_materializable
    assert {k.to_user_string() for k in graph.get(dg.AssetKey(["chords", "cleaned"])).parent_keys} == {"chords/raw"}
    published = graph.get(dg.AssetKey(["chords", "published"]))
    assert {k.to_user_string() for k in published.parent_keys} == {"chords/cleaned"}
    cache = graph.get(dg.AssetKey(["chords", "cache"]))
    assert {k.to_user_string() for k in cache.parent_keys} == {"chords/published"}
    assert cache.automation_condition is not None


def test_factory_checks_are_blocking_and_match_the_rules(shipped):
    chords = build_dataset_defs(spec=shipped.get("chords"), registry=shipped)
    specs = [s for c in chords.checks for s in c.check_specs]
    shard_checks = {"shard_count", "integrity", "total_samples", "estimated_size"}
    assert {s.name for s in specs} == {"preflight", "round_trip", "non_empty", "schema_matches_registry",
                                       "unique_dedupe_key", "required_not_null", "labels_allowed",
                                       "one_annotation_layer", *shard_checks}
    cleaned = [s for s in specs if s.name not in ("round_trip", "preflight", *shard_checks)]
    assert all(s.blocking and s.asset_key == dg.AssetKey(["chords", "cleaned"]) for s in cleaned)
    [round_trip] = [s for s in specs if s.name == "round_trip"]
    assert round_trip.blocking and round_trip.asset_key == dg.AssetKey(["chords", "published"])
    [preflight] = [s for s in specs if s.name == "preflight"]
    assert preflight.blocking and preflight.asset_key == dg.AssetKey(["chords", "cache"])
    on_shards = {s.name: s.blocking for s in specs if s.asset_key == dg.AssetKey(["chords", "shards"])}
    assert on_shards == {"shard_count": True, "integrity": True, "total_samples": True, "estimated_size": False}


def test_cache_refresh_schedule_covers_every_cache_with_the_registry_cron(tmp_path, data_dir):
    path = write_registry(tmp_path / "r.yaml", shipped_entries())
    custom = "version: 1\ncache: {refresh_cron: '30 2 * * 1', keep: 3}"
    path.write_text(path.read_text().replace("version: 1", custom))
    defs = definitions(load_registry(path), data_dir)
    schedule = defs.resolve_schedule_def("cache_refresh")
    assert schedule.cron_schedule == "30 2 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    selected = defs.resolve_job_def(schedule.job_name).asset_layer.selected_asset_keys
    assert selected == {dg.AssetKey([name, "cache"]) for name in ("text_reviews", "chords", "shapes", "chord_tones")}


def test_whole_graph_in_process(shipped, data_dir):
    defs = definitions(shipped, data_dir)
    with dg.DagsterInstance.ephemeral() as instance:
        observed, materialized = run_graph(defs, instance)
        assert observed.success and materialized.success
        checks = materialized.get_asset_check_evaluations()
        assert len(checks) == 47 and all(c.passed for c in checks), [c for c in checks if not c.passed]
        for spec in shipped.datasets:
            expected = clean_dataset(spec, data_dir)  # reused: same inputs
            raw = instance.get_latest_data_version_record(dg.AssetKey([spec.name, "raw"]), is_source=True)
            fp = fingerprint_files(resolve_files(spec, data_dir), data_dir)
            assert raw.asset_observation.data_version == fp.digest
            event = instance.get_latest_materialization_event(dg.AssetKey([spec.name, "cleaned"]))
            meta = event.asset_materialization.metadata
            assert event.asset_materialization.tags["dagster/data_version"] == expected.version
            assert event.asset_materialization.tags[f"dagster/input_data_version/{spec.name}/raw"] == fp.digest
            assert meta["dagster/row_count"].value == expected.rows_out
            assert meta["preview"].value.startswith(f"| {next(iter(spec.schema))} |")
            assert meta["path"].value == str(expected.path)
            published = instance.get_latest_materialization_event(dg.AssetKey([spec.name, "published"]))
            pmeta = published.asset_materialization.metadata
            assert pmeta["version"].value == "v1.0" and pmeta["new_version"].value is True
            assert pmeta["content_hash"].value == expected.version and pmeta["bytes_uploaded"].value > 0
            assert published.asset_materialization.tags["dagster/data_version"] == pmeta["commit"].value
            # a path that exists on disk (the local remote's repo folder), never a dead file:// URL
            assert isinstance(pmeta["url"], dg.PathMetadataValue) and Path(pmeta["url"].value).is_dir()
            assert pmeta["url"].value.endswith(f"remote/dsm/{spec.name}")
            smeta = instance.get_latest_materialization_event(
                dg.AssetKey([spec.name, "shards"])).asset_materialization.metadata
            assert smeta["published"].value == ("v1.0-shards" if spec.shards.publish else "not published")


def test_rematerialising_unchanged_raw_keeps_the_data_version(shipped, data_dir):
    defs = definitions(shipped, data_dir)
    with dg.DagsterInstance.ephemeral() as instance:
        run_graph(defs, instance)
        key = dg.AssetKey(["chords", "cleaned"])
        first = instance.get_latest_materialization_event(key).asset_materialization
        run_graph(defs, instance)
        second = instance.get_latest_materialization_event(key).asset_materialization
        assert first.tags["dagster/data_version"] == second.tags["dagster/data_version"]
        assert (first.metadata["reused"].value, second.metadata["reused"].value) == (False, True)


def test_bad_input_fails_the_materialisation_with_the_message(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", "id,text,colour\n1,x,red\n")
    registry = load_registry(write_registry(tmp_path / "registry.yaml", [csv_entry()]))
    with dg.DagsterInstance.ephemeral() as instance:
        observed, materialized = run_graph(definitions(registry, data), instance)
        assert observed.success and not materialized.success
        [failure] = [e for e in materialized.all_events if e.event_type_value == "STEP_FAILURE"]
        description = failure.step_failure_data.user_failure_data.description
        assert f"{data}/raw/t/a.csv: missing column(s) 'label'; extra column(s) 'colour'" in description
        assert "\n" not in description
    assert not list((data / "clean").rglob("*.parquet"))


def test_failed_check_is_reported_with_its_description(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", "id,text,label\n1,x,z\n")  # the only row has a label outside the set
    registry = load_registry(write_registry(tmp_path / "registry.yaml", [csv_entry()]))
    with dg.DagsterInstance.ephemeral() as instance:
        _, materialized = run_graph(definitions(registry, data), instance)
        failed = {c.check_name: c.description for c in materialized.get_asset_check_evaluations() if not c.passed}
    assert list(failed) == ["non_empty"] and "no rows left after cleaning" in failed["non_empty"]
    assert not (data / "remote").exists()  # the blocking check stopped publishing


def dagster_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "dagster"
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture
def cli_env(tmp_path, data_dir) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "DAGSTER_HOME": str(home), "DSM_DATA_DIR": str(data_dir)}


def test_dagster_cli_loads_the_project_from_its_root(cli_env):
    validated = dagster_cli("definitions", "validate", "-w", "workspace.yaml", cwd=ROOT, env=cli_env)
    assert validated.returncode == 0, validated.stderr[-2000:]
    run = dagster_cli("asset", "materialize", "-m", "dsm_assets.definitions", "--select", "text_reviews/cleaned",
                      cwd=ROOT, env=cli_env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "RUN_SUCCESS" in run.stderr + run.stdout


def test_assets_carry_owner_and_tags_from_the_registry(shipped, data_dir):
    graph = definitions(shipped, data_dir).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        dataset = shipped.get(key.path[0] if key.path[0] != "models" else shipped.model(key.path[1]).dataset)
        assert node.tags["dsm/dataset"] == dataset.name and node.tags["dsm/remote"] == dataset.remote.kind
        assert list(node.owners) == ([dataset.owner] if dataset.owner else [])
    assert graph.get(dg.AssetKey(["text_reviews", "cleaned"])).owners == ["team:ml-data"]


def test_owner_must_be_an_email_or_a_team(tmp_path):
    from dsm_assets.errors import RegistryError

    with pytest.raises(RegistryError, match=r"datasets\[0\]\.owner: expected an email or 'team:<name>', got 'bob'"):
        load_registry(write_registry(tmp_path / "r.yaml", [csv_entry(owner="bob")]))
