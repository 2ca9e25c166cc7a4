"""The user's disk: full, read-only, or reached through a symlink that leads out of the data dir. Each is one
line naming the path and what to do, in the CLI and as the Dagster failure, and leaves nothing half-written.

Full and read-only disks are real: a small tmpfs mounted for the test (needs root, as on CI; skipped where
mounting is not allowed)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from dsm_assets.cli import main
from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, build_definitions
from dsm_assets.registry import load_registry
from dsm_assets.samples import install_samples

from .conftest import csv_entry, shipped_entries, write_raw, write_registry

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@pytest.fixture
def mount(tmp_path: Path) -> Iterator:
    """mount(folder, size) puts a fresh tmpfs of `size` at `folder`; every mount is undone after the test."""
    mounted: list[Path] = []

    def _mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield _mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=True)


def read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """Every failed step's description; an unexpected exception (a traceback) fails the test."""
    found = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            assert data.user_failure_data is not None, f"{event.step_key}: {data.error.to_string()}"
            found.append(data.user_failure_data.description)
    return found


def materialize(registry_path: Path, data: Path, outputs: Path, selection: list[str] | None = None):
    defs = build_definitions(registry=load_registry(registry_path), data_dir=data, outputs_dir=outputs)
    with dg.DagsterInstance.ephemeral() as instance:
        observed = defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance, run_config=QUIET,
                                                                        raise_on_error=False)
        if not observed.success:  # observing the raw files writes their stat cache under .dsm
            return observed
        job = defs.resolve_job_def(MATERIALIZE_JOB)
        return job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False,
                                      asset_selection=selection and [dg.AssetKey(k.split("/")) for k in selection])


def incompressible_csv(rows: int) -> str:
    return "id,text,label\n" + "\n".join(f"{i},{secrets.token_hex(40)},a" for i in range(rows))


def temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".tmp-*")]


def test_cleaning_on_a_full_disk_is_one_line_naming_the_folder_and_leaves_no_temp(tmp_path, mount):
    # before: OSError "[Errno 28] Error writing bytes to file" from pyarrow, naming no file, as a traceback
    data = mount(tmp_path / "data", "4m")
    write_raw(data, "t", "a.csv", incompressible_csv(34_000))  # ~3 MB raw, ~1.6 MB parquet: does not fit
    registry = write_registry(tmp_path / "registry.yaml", [csv_entry()])
    [line] = failures(materialize(registry, data, tmp_path / "outputs", ["t/cleaned"]))
    assert line.startswith(f"cleaning t: {data / 'clean' / 't'}: No space left on device; the disk is full")
    assert "DSM_DATA_DIR" in line and "\n" not in line
    assert temps(data) == [] and list((data / "clean" / "t").rglob("*.parquet")) == []


def test_cleaning_on_a_read_only_disk_is_one_line_naming_the_path(tmp_path, mount):
    data = mount(tmp_path / "data", "4m")
    write_raw(data, "t", "a.csv", incompressible_csv(10))
    read_only(data)
    registry = write_registry(tmp_path / "registry.yaml", [csv_entry()])
    [line] = failures(materialize(registry, data, tmp_path / "outputs", ["t/cleaned"]))
    assert line.startswith(f"cleaning t: {data / 'clean'}: Read-only file system; the file system is mounted "
                           "read-only: remount it read-write") and "\n" not in line


def test_shards_on_a_full_disk_is_one_line_naming_the_shard_folder(tmp_path, mount):
    # before: a raw OSError traceback from tarfile/os.write
    outputs = mount(tmp_path / "outputs", "64k")
    data = tmp_path / "data"
    install_samples(data)
    registry = write_registry(tmp_path / "registry.yaml", shipped_entries())
    result = materialize(registry, data, outputs, ["shapes/raw", "shapes/cleaned", "shapes/published",
                                                   "shapes/cache", "shapes/shards"])
    [line] = failures(result)
    assert line.startswith(f"writing the shards of shapes: {outputs / 'shards' / 'shapes'}/v1.0-")
    assert "No space left on device; the disk is full" in line and "\n" not in line
    assert temps(outputs) == []


def test_dsm_samples_on_a_read_only_data_dir_exits_1_with_one_line(tmp_path, mount, monkeypatch, capsys):
    data = mount(tmp_path / "data", "1m")
    read_only(data)
    monkeypatch.setenv("DSM_DATA_DIR", str(data))
    assert main(["samples"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("dsm samples: ") and "Read-only file system" in err


def test_a_remote_folder_linked_outside_the_data_dir_is_refused(tmp_path, data_dir, shipped):
    # before: data/remote/<owner> -> /elsewhere was followed, and the version was written outside the data dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (data_dir / "remote").mkdir(parents=True, exist_ok=True)
    (data_dir / "remote" / "dsm").symlink_to(elsewhere)
    registry = write_registry(tmp_path / "registry.yaml", shipped_entries())
    result = materialize(registry, data_dir, tmp_path / "outputs", ["chords/raw", "chords/cleaned", "chords/published"])
    [line] = failures(result)
    assert line.startswith(f"{data_dir / 'remote' / 'dsm' / 'chords'}: a symlink leads outside {data_dir} (to "
                           f"{elsewhere / 'chords'}); dsm_assets writes only inside it")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("folder", ["clean", ".dsm"])
def test_other_folders_we_write_linked_outside_the_data_dir_are_refused(folder, tmp_path, data_dir):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (data_dir / folder).symlink_to(elsewhere)
    registry = write_registry(tmp_path / "registry.yaml", shipped_entries())
    result = materialize(registry, data_dir, tmp_path / "outputs", ["chords/raw", "chords/cleaned", "chords/published"])
    lines = failures(result)  # .dsm: each dataset's raw observation (its stat cache) says so
    assert lines and all(f"{data_dir / folder}" in line and "a symlink leads outside" in line for line in lines)
    assert list(elsewhere.iterdir()) == []


def test_preflight_exits_2_on_a_cache_dir_linked_outside_the_data_dir(tmp_path, data_dir, monkeypatch, capsys):
    # before: exit 1, as if the cache were merely missing
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (data_dir / "cache").mkdir()
    (data_dir / "cache" / "chords").symlink_to(elsewhere)
    monkeypatch.setenv("DSM_REGISTRY", str(write_registry(tmp_path / "registry.yaml", shipped_entries())))
    assert main(["preflight", "chords"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cache_dir" in err and "resolves outside" in err
