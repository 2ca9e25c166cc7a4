"""The published asset and its blocking round_trip check, in real in-process Dagster runs."""

from __future__ import annotations

import dagster as dg
import pyarrow.parquet as pq
import pytest

from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, build_definitions
from dsm_assets.defs.resources import DsmRemotes
from dsm_assets.layout import DATA_PATH
from dsm_assets.registry import load_registry
from dsm_assets.remotes.local import LocalRemote

from .conftest import shipped_entries, write_registry
from .servers import HUB_TOKEN


def graph_with_probe(registry, data_dir, remotes=None) -> dg.Definitions:
    """The real definitions plus one asset downstream of chords/published, to see what a failed check blocks."""
    base = build_definitions(registry=registry, data_dir=data_dir, outputs_dir=data_dir.parent / "outputs",
                             remotes=remotes)

    @dg.asset(key=["chords", "probe"], deps=[dg.AssetKey(["chords", "published"])], group_name="chords")
    def probe() -> None:
        return None

    return dg.Definitions.merge(base, dg.Definitions(assets=[probe]))


def run(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance)
    return defs.resolve_job_def(MATERIALIZE_JOB).execute_in_process(instance=instance, raise_on_error=False)


def round_trip(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [check] = [c for c in result.get_asset_check_evaluations()
               if c.check_name == "round_trip" and c.asset_key.path[0] == "chords"]
    return check


def test_round_trip_mismatch_fails_naming_the_difference_and_blocks_downstream(shipped, data_dir):
    defs = graph_with_probe(shipped, data_dir)
    probe_key = dg.AssetKey(["chords", "probe"])
    with dg.DagsterInstance.ephemeral() as instance:
        first = run(defs, instance)
        assert first.success and round_trip(first).passed
        assert instance.get_latest_materialization_event(probe_key) is not None
        remote = LocalRemote(data_dir / "remote" / "dsm" / "chords")
        commit = remote.tags()["v1.0"]
        obj = remote.object_path(commit, DATA_PATH)
        table = pq.read_table(obj)
        pq.write_table(table.slice(1), obj)  # the remote now holds one row less than what was published
        probe_runs_before = len(instance.fetch_materializations(probe_key, limit=10).records)
        second = run(defs, instance)
        check = round_trip(second)
        assert not check.passed
        # the local remote checks each object against its sha256 address before reading it: one line naming
        # the object, expected and actual hash (before: a row and content-hash mismatch, or a raw OSError)
        assert check.description.startswith(f"could not read {commit[:12]} back: {obj}: {DATA_PATH} at "
                                            f"{commit[:12]} is corrupt: sha256 ")
        assert f"expected {obj.name}" in check.description and "\n" not in check.description
        assert len(instance.fetch_materializations(probe_key, limit=10).records) == probe_runs_before
        # the next run repairs it without a human: the unchanged content is re-stored from the cleaned data
        third = run(defs, instance)
        assert third.success and round_trip(third).passed
        assert remote.tags() == {"v1.0": commit}  # no new version for the same content
        assert len(instance.fetch_materializations(probe_key, limit=10).records) == probe_runs_before + 1


@pytest.mark.parametrize("path", ["README.md", "dsm.json"])
def test_a_corrupt_card_or_dsm_json_on_the_local_remote_is_rebuilt_by_the_next_runs(path, shipped, data_dir):
    # before: a flipped byte in the card was named by round_trip on every run and never rebuilt; one in
    # dsm.json was read as the previous version's record (a JSON error, or a wrong content hash and so a
    # spurious new version)
    defs = graph_with_probe(shipped, data_dir)
    with dg.DagsterInstance.ephemeral() as instance:
        assert run(defs, instance).success
        remote = LocalRemote(data_dir / "remote" / "dsm" / "chords")
        commit = remote.tags()["v1.0"]
        obj = remote.object_path(commit, path)
        good = obj.read_bytes()
        obj.write_bytes(good.replace(b"chords", b"chordz", 1))
        results = [run(defs, instance) for _ in range(2)]
        assert results[-1].success and round_trip(results[-1]).passed
        assert obj.read_bytes() == good and remote.tags() == {"v1.0": commit}  # repaired, no new version
        failures = [c.description for r in results for c in r.get_asset_check_evaluations() if not c.passed]
        assert all(str(obj) in text and "\n" not in text for text in failures)


def test_whole_graph_publishes_to_hub_and_s3(tmp_path, data_dir, hub_server, aws_env):
    entries = shipped_entries()
    entries[0]["remote"] = {"kind": "hub", "repo": "team/text_reviews", "private": True}
    entries[1]["remote"] = {"kind": "s3", "bucket": "dsm-test", "prefix": f"graph-{tmp_path.name}"}
    registry = load_registry(write_registry(tmp_path / "registry.yaml", entries))
    remotes = DsmRemotes(hf_endpoint=hub_server.url, hf_token=HUB_TOKEN, aws_endpoint_url=aws_env,
                         backoff_seconds=0.01)
    defs = build_definitions(registry=registry, data_dir=data_dir, outputs_dir=tmp_path / "outputs", remotes=remotes)
    with dg.DagsterInstance.ephemeral() as instance:
        result = run(defs, instance)
        assert result.success
        checks = {(c.asset_key.path[0], c.check_name): c for c in result.get_asset_check_evaluations()}
        assert checks[("text_reviews", "round_trip")].passed and checks[("chords", "round_trip")].passed
        hub_meta = instance.get_latest_materialization_event(
            dg.AssetKey(["text_reviews", "published"])).asset_materialization.metadata
        assert hub_meta["version"].value == "v1.0"
        assert hub_meta["url"].value == f"{hub_server.url}/datasets/team/text_reviews/tree/v1.0"
        assert hub_server.tags("team/text_reviews") == {"v1.0": hub_meta["commit"].value}
        again = run(defs, instance)
        meta = instance.get_latest_materialization_event(
            dg.AssetKey(["chords", "published"])).asset_materialization.metadata
        assert again.success and meta["new_version"].value is False and meta["bytes_uploaded"].value == 0
        logs = [str(e) for run_id in (result.run_id, again.run_id) for e in instance.all_logs(run_id)]
        assert logs and not any(HUB_TOKEN in entry for entry in logs)  # the token is never logged


def test_a_killed_publish_leaves_no_staging_copy_that_the_next_publish_does_not_remove(data_dir, shipped, tmp_path,
                                                                                        monkeypatch):
    import os
    import socket
    import subprocess

    from dsm_assets.layout import staging_dir

    from .caching import publish_and_verify

    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))  # staging used to live here, outside anything we clean
    exited = subprocess.Popen(["true"])  # a pid that has exited; kept, so no other Popen's cleanup reaps it
    exited.wait()  # (a bare os.waitpid raced that cleanup: ECHILD once on CI)
    dead_pid = exited.pid
    host = socket.gethostname()
    orphan = staging_dir(data_dir) / f".tmp-{host}-{dead_pid}-0bad"  # what a SIGKILLed publish leaves
    live = staging_dir(data_dir) / f".tmp-{host}-{os.getpid()}-0a11"  # a publish still running here
    for folder in (orphan, live):
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "train.parquet").write_bytes(b"x" * 1000)
    publish_and_verify(shipped.get("chords"), data_dir)
    assert not orphan.exists() and live.exists()
    assert sorted(p.name for p in staging_dir(data_dir).iterdir()) == [live.name]
    assert list(tmpdir.iterdir()) == []
