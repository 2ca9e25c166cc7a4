"""The fault matrix: SIGKILL at random moments during publish (local, S3, Hub), cache refresh and shard writing.

Each operation runs in a child process (forked from a forkserver that imported it once, see fault_ops) and is
killed after a random delay drawn from [0, 1.2 × the duration of an uninterrupted run]. After every kill the remote /
cache / shard folder must hold the old version or the new one, nothing in between; the integrity checks
(content hash at the pinned commit, `dsm preflight --deep`, the shards asset's checks) must agree with which;
and the next, uninterrupted run must complete.

    DSM_FAULT_KILLS=200 DSM_FAULT_SEED=1234 pytest dsm_assets_tests/test_fault_matrix.py    (or `make soak`)

Seeds and every trial's delay and outcome are written to outputs/test-artifacts/faults/<operation>.json."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dsm_assets import atomic
from dsm_assets.cache import refresh_cache, verify_folder
from dsm_assets.cleaning import CleanResult
from dsm_assets.contenthash import hash_table
from dsm_assets.layout import DATA_PATH, cache_root, cache_version_dir, shards_dir
from dsm_assets.preflight import preflight
from dsm_assets.publishing import publish_cleaned
from dsm_assets.registry import DatasetSpec, load_registry
from dsm_assets.remotes.base import Remote
from dsm_assets.shards import SHARDS_MANIFEST, write_shards
from dsm_assets.shards.checks import evaluate
from dsm_assets.state import record_verified
from dsm_assets.versioning import latest_tag

from . import fault_ops
from .conftest import write_registry
from .servers import AWS_ENV, BUCKET, HUB_TOKEN, cleaned_file, unique

KILLS = int(os.environ.get("DSM_FAULT_KILLS", "20"))
SEED = int(os.environ.get("DSM_FAULT_SEED") or random.SystemRandom().randrange(2**31))
ROWS = 40_000  # ~2 MB of parquet that does not compress away: long enough that kills land mid-operation
REPORTS = Path(__file__).resolve().parents[1] / "outputs" / "test-artifacts" / "faults"
ENTRY = {"name": "matrix", "use": "fault matrix", "source": {"path": "raw/matrix/*.csv", "format": "csv"},
         "schema": {"id": "int64", "text": "string", "label": "string"},
         "cleaning": {"labels": {"column": "label", "allowed": ["a", "b"]}},
         "remote": {"kind": "local", "repo": "dsm/matrix"}, "cache_dir": "cache/matrix", "shards": {"count": 8}}


@dataclass
class Trial:
    seed: int
    delay_s: float
    killed: bool  # False: the operation finished before its kill time
    state: str  # what the kill left: "old" or "new"


class Killer:
    """Runs a fault_ops operation in a forked child and SIGKILLs it after `kill_after` seconds."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["dsm_assets_tests.fault_ops"])

    def run(self, op: str, args: dict[str, Any], *, kill_after: float | None = None) -> tuple[int, float]:
        proc = self.ctx.Process(target=fault_ops.run, args=(op, args), daemon=True)
        proc.start()
        start = time.perf_counter()
        proc.join(120 if kill_after is None else kill_after)
        if proc.is_alive():
            proc.kill()
            proc.join()
        elapsed = time.perf_counter() - start
        assert proc.exitcode in (0, -9), f"{op} failed on its own (exit {proc.exitcode}); its stderr is above"
        return proc.exitcode, elapsed


@pytest.fixture(scope="module")
def killer() -> Killer:
    return Killer()


class Matrix:
    """The kill points of one operation and the record of what each kill left."""

    def __init__(self, op: str, duration: float) -> None:
        self.op, self.duration, self.trials = op, duration, []
        seeds = [SEED + i for i in range(KILLS)]
        # up to 1.2x the uninterrupted time, so some kills come just after the end (the last rename) too
        self.points = [(seed, random.Random(f"{op}/{seed}").uniform(0, 1.2 * duration)) for seed in seeds]

    def where(self, seed: int, delay: float) -> str:
        return f"{self.op}: DSM_FAULT_SEED={SEED} trial seed {seed}, killed after {delay:.3f} s"

    def record(self, seed: int, delay: float, exitcode: int, state: str) -> None:
        self.trials.append(Trial(seed, round(delay, 4), exitcode == -9, state))

    def finish(self) -> None:
        REPORTS.mkdir(parents=True, exist_ok=True)
        report = {"operation": self.op, "seed": SEED, "kills": KILLS, "uninterrupted_s": round(self.duration, 4),
                  "trials": [asdict(t) for t in self.trials]}
        atomic.write_json(REPORTS / f"{self.op}.json", report)
        killed = sum(t.killed for t in self.trials)
        states = {s: sum(t.state == s for t in self.trials) for s in ("old", "new")}
        print(f"{self.op}: seed {SEED}, {killed}/{len(self.trials)} killed mid-operation, left {states}")
        assert len(self.trials) == KILLS
        assert killed >= KILLS // 2, f"{self.op}: only {killed} of {KILLS} kills landed before the end; see {report}"


def table(seed: int, rows: int = ROWS) -> pa.Table:
    rng = random.Random(seed)
    return pa.table({"id": pa.array(range(rows), pa.int64()), "text": [rng.randbytes(24).hex() for _ in range(rows)],
                     "label": ["ab"[i % 2] for i in range(rows)]})


def matrix_spec(tmp_path: Path) -> tuple[Path, DatasetSpec]:
    path = write_registry(tmp_path / "matrix.yaml", [ENTRY])
    return path, load_registry(path).get("matrix")


def content_at(remote: Remote, commit: str) -> str:
    """The content hash of the parquet a version pins, read back from the remote."""
    return hash_table(pq.read_table(io.BytesIO(remote.read_file(commit, DATA_PATH))))


# ---------------------------------------------------------------------------------------------- publish


def remote_desc(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[dict[str, Any], dict[str, str]]:
    if kind == "local":
        return {"kind": "local", "root": str(tmp_path / "remote")}, {}
    if kind == "s3":
        request.getfixturevalue("aws_env")
        return ({"kind": "s3", "bucket": BUCKET, "prefix": f"datasets/{unique('kill')}",
                 "endpoint": request.getfixturevalue("moto_url")}, AWS_ENV)
    hub = request.getfixturevalue("hub_server")
    return ({"kind": "hub", "repo": f"dsm/{unique('kill')}", "endpoint": hub.url, "token": HUB_TOKEN,
             "cache_dir": str(tmp_path / "hf-cache")}, {})


def check_publish(remote: Remote, before: dict[str, str], published: dict[str, str], ref: CleanResult) -> str:
    """Old or new, never in between: no tag moved, at most one added, and every latest pins its content."""
    after = remote.tags()
    assert {t: after.get(t) for t in before} == before, f"a tag moved: {before} → {after}"
    added = sorted(set(after) - set(before))
    assert len(added) <= 1, f"more than one new tag: {added}"
    if added:
        assert latest_tag(after) == added[0]
        assert content_at(remote, after[added[0]]) == ref.version
        return "new"
    old = latest_tag(before)
    assert content_at(remote, before[old]) == published[old]
    return "old"


@pytest.mark.parametrize("kind", ["local", "s3", "hub"])
def test_publish_killed_anywhere_leaves_old_or_new_and_the_next_run_completes(kind, killer, tmp_path, request):
    registry, spec = matrix_spec(tmp_path)
    desc, env = remote_desc(kind, tmp_path, request)
    remote = fault_ops.build_remote(desc)
    data_dir = tmp_path / "data"

    def publish_args(ref: CleanResult) -> dict[str, Any]:
        return {"registry": str(registry), "dataset": "matrix", "remote": desc, "env": env, "data_dir": str(data_dir),
                "parquet": str(ref.path), "content_hash": ref.version, "rows": ref.rows_out, "schema": ref.schema}

    first = cleaned_file(tmp_path / "clean" / "first.parquet", table(seed=-1))
    exitcode, duration = killer.run("publish", publish_args(first))  # uninterrupted: the timing, and v1.0
    assert exitcode == 0
    published = {"v1.0": first.version}
    matrix = Matrix(f"publish-{kind}", duration)
    for seed, delay in matrix.points:
        ref = cleaned_file(tmp_path / "clean" / f"{seed}.parquet", table(seed))
        before = remote.tags()
        exitcode, _ = killer.run("publish", publish_args(ref), kill_after=delay)
        state = check_publish(remote, before, published, ref)
        outcome = publish_cleaned(spec, remote, ref, data_dir=data_dir)  # the next run
        assert outcome.new == (state == "old"), matrix.where(seed, delay)
        published[outcome.tag] = ref.version
        assert latest_tag(remote.tags()) == outcome.tag
        matrix.record(seed, delay, exitcode, state)
        ref.path.unlink()
    matrix.finish()
    last = latest_tag(remote.tags())
    assert len(published) == KILLS + 1 and last == f"v1.{KILLS}"
    round_trip = remote.load_table(remote.tags()[last])  # the round_trip check's read path, once at the end
    assert hash_table(round_trip) == published[last]


# ---------------------------------------------------------------------------------------------- cache refresh


def two_versions(tmp_path: Path, rows: int):
    """The matrix dataset published twice (v1.0, v1.1) on the local remote; returns what the trials need."""
    registry, spec = matrix_spec(tmp_path)
    data_dir = tmp_path / "data"
    desc = {"kind": "local", "root": str(data_dir / "remote" / "dsm" / "matrix")}
    remote = fault_ops.build_remote(desc)
    versions = []
    for seed in (1, 2):
        ref = cleaned_file(tmp_path / "clean" / f"{seed}.parquet", table(seed, rows))
        outcome = publish_cleaned(spec, remote, ref, data_dir=data_dir)
        versions.append((outcome.tag, outcome.commit))
    return registry, spec, data_dir, desc, remote, versions


def dsm_preflight_deep(registry: Path, data_dir: Path) -> tuple[int, str]:
    env = {**os.environ, "DSM_REGISTRY": str(registry), "DSM_DATA_DIR": str(data_dir)}
    done = subprocess.run([str(Path(sys.executable).parent / "dsm"), "preflight", "matrix", "--deep", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    return done.returncode, json.loads(done.stdout)[0]["status"]


def temps(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(atomic.TEMP_PREFIX)] if folder.exists() else []


def test_cache_refresh_killed_anywhere_leaves_old_or_new_and_preflight_agrees(killer, tmp_path):
    registry, spec, data_dir, desc, remote, versions = two_versions(tmp_path, rows=2 * ROWS)
    root = cache_root(spec, data_dir)
    dirs = [cache_version_dir(spec, data_dir, *v) for v in versions]

    def refresh_args(i: int) -> dict[str, Any]:
        tag, commit = versions[i]
        return {"registry": str(registry), "dataset": "matrix", "remote": desc, "data_dir": str(data_dir),
                "tag": tag, "commit": commit}

    refresh_cache(spec, remote, tag=versions[1][0], commit=versions[1][1], data_dir=data_dir)
    # uninterrupted: the timing, the fastest of five refreshes made as the trials make them (a refresh takes
    # ~0.1-0.3 s, mostly the child's start: timed on the first child alone, half the kills came too late)
    durations = []
    for i in (0, 1, 0, 1, 0):  # current is v1.0 after
        shutil.rmtree(dirs[i], ignore_errors=True)
        record_verified(data_dir, "matrix", tag=versions[i][0], commit=versions[i][1], url=remote.url)
        exitcode, duration = killer.run("refresh", refresh_args(i))
        assert exitcode == 0
        durations.append(duration)
    matrix = Matrix("cache-refresh", min(durations))
    for i, (seed, delay) in enumerate(matrix.points):
        new = (i + 1) % 2  # alternate v1.1, v1.0, …: each trial refreshes to the version not current
        shutil.rmtree(dirs[new])  # not cached yet
        record_verified(data_dir, "matrix", tag=versions[new][0], commit=versions[new][1], url=remote.url)
        exitcode, _ = killer.run("refresh", refresh_args(new), kill_after=delay)
        current = (root / "current").resolve()
        assert current in dirs, matrix.where(seed, delay)
        state = "new" if current == dirs[new] else "old"
        assert verify_folder(current, deep=True) is None, matrix.where(seed, delay)
        want = "ready" if state == "new" else "stale"  # old and intact, but behind the verified version
        assert preflight(spec, data_dir, deep=True).status == want, matrix.where(seed, delay)
        assert dsm_preflight_deep(registry, data_dir) == (0 if want == "ready" else 1, want)
        # killed after the new folder was renamed into place but before `current` moved: the folder is
        # complete and verified, so the next refresh only points `current` at it (no download)
        complete = verify_folder(dirs[new], deep=True) is None
        result = refresh_cache(spec, remote, tag=versions[new][0], commit=versions[new][1], data_dir=data_dir)
        assert result.path == dirs[new] and result.refreshed == (not complete)
        assert complete or state == "old", matrix.where(seed, delay)
        assert preflight(spec, data_dir, deep=True).ready
        assert temps(root) == temps(root / "versions") == []
        matrix.record(seed, delay, exitcode, state)
    matrix.finish()


# ---------------------------------------------------------------------------------------------- shard writing


def test_shard_writing_killed_anywhere_leaves_no_manifest_or_valid_shards(killer, tmp_path):
    registry, spec, data_dir, _, remote, versions = two_versions(tmp_path, rows=ROWS // 6)  # ~0.4 s of writing
    outputs = tmp_path / "outputs"
    caches = [refresh_cache(spec, remote, tag=t, commit=c, data_dir=data_dir).path for t, c in versions]
    old = write_shards(spec, caches[0], outputs)  # v1.0's shards: must stay intact throughout
    folder = shards_dir(outputs, spec, *versions[1])
    args = {"registry": str(registry), "dataset": "matrix", "cache_folder": str(caches[1]), "outputs_dir": str(outputs)}
    exitcode, duration = killer.run("shards", args)
    assert exitcode == 0
    matrix = Matrix("shard-writing", duration)
    for seed, delay in matrix.points:
        shutil.rmtree(folder)
        exitcode, _ = killer.run("shards", args, kill_after=delay)
        state = "new" if (folder / SHARDS_MANIFEST).exists() else "old"
        checks = [ok for ok, _ in evaluate(spec, folder, data_dir).values()]
        # the manifest is written last: with one every check passes; without one the blocking checks fail
        assert all(checks) if state == "new" else not any(checks), matrix.where(seed, delay)
        result = write_shards(spec, caches[1], outputs)  # the next run
        assert result.written == (state == "old") and temps(folder) == []
        matrix.record(seed, delay, exitcode, state)
    matrix.finish()
    assert json.loads((old.folder / SHARDS_MANIFEST).read_text()) == old.manifest
    assert all(ok for ok, _ in evaluate(spec, old.folder, data_dir).values())
    assert all(ok for ok, _ in evaluate(spec, folder, data_dir).values())
