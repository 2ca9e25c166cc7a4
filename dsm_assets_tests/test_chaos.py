"""Self-healing: flip one random byte in one random file we wrote (cleaned parquet, remote objects, cache,
shards, models, lineage, state records), then run the graph as a user would. The next run either repairs it
or stops with one line naming it; the run after that passes everything. Never a traceback, never a corrupt
file silently reused.

    DSM_CHAOS_TRIALS=100 DSM_CHAOS_SEED=1234 pytest dsm_assets_tests/test_chaos.py    (or `make soak`)

The seed and every trial (file, offset, what the first run said) go to outputs/test-artifacts/chaos.json."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import dagster as dg

from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, build_definitions
from dsm_assets.preflight import preflight

TRIALS = int(os.environ.get("DSM_CHAOS_TRIALS", "6"))
SEED = int(os.environ.get("DSM_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
REPORT = Path(__file__).resolve().parents[1] / "outputs" / "test-artifacts" / "chaos.json"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

# What we write and reuse (and the remote objects behind every tag, see `remote_objects`).
TARGETS = ["data/clean/*/*/*.parquet", "data/cache/*/versions/*/*.json",
           "data/cache/*/versions/*/data/*.parquet", "outputs/shards/*/*/*.tar", "outputs/shards/*/*/*.tar.gz",
           "outputs/shards/*/*/manifest.json",
           "outputs/models/*/*/lineage.json", "outputs/models/*/*/model.joblib", "outputs/models/*/*/metrics.json",
           "data/.dsm/verified/*.json", "data/.dsm/published/*.json", "data/.dsm/statcache/*.json"]


def run(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance, run_config=QUIET)
    return defs.resolve_job_def(MATERIALIZE_JOB).execute_in_process(instance=instance, run_config=QUIET,
                                                                    raise_on_error=False)


def said(result: dg.ExecuteInProcessResult) -> tuple[list[str], list[str]]:
    """(one-line failures we raised or checks reported, anything else: tracebacks of unexpected errors)."""
    ours, other = [], []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            if data.user_failure_data is not None:
                ours.append(data.user_failure_data.description or "")
            elif "DagsterAssetCheckFailedError" not in (data.error.cls_name or ""):
                other.append(f"{event.step_key}: {data.error.cls_name}: {data.error.message.strip()}")
    ours += [c.description or "" for c in result.get_asset_check_evaluations()
             if not c.passed and c.check_name != "estimated_size"]
    return ours, other


def remote_objects(root: Path) -> set[Path]:
    """The local remotes' objects that tags point at: versions (data, card, dsm.json) and `-shards` tags."""
    found = set()
    for repo in root.glob("data/remote/*/*"):
        for tag in (repo / "refs" / "tags").iterdir():
            commit = json.loads((repo / "commits" / f"{tag.read_text().strip()}.json").read_text())
            found |= {repo / "objects" / e["sha256"] for e in commit["files"].values()}
    return found


def flip(path: Path, rng: random.Random) -> int:
    data = bytearray(path.read_bytes())
    offset = rng.randrange(len(data))
    data[offset] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return offset


def test_a_flipped_byte_anywhere_is_repaired_or_named_by_the_next_run(shipped, data_dir):
    root = data_dir.parent
    rng = random.Random(SEED)
    defs = build_definitions(registry=shipped, data_dir=data_dir, outputs_dir=root / "outputs")
    trials = []
    with dg.DagsterInstance.ephemeral() as instance:
        assert run(defs, instance).success
        for _ in range(TRIALS):
            files = sorted({p for pattern in TARGETS for p in root.glob(pattern) if p.is_file()}
                           | remote_objects(root))
            target = rng.choice(files)
            offset = flip(target, rng)
            first = run(defs, instance)
            ours, other = said(first)
            trial = {"file": str(target.relative_to(root)), "offset": offset, "first_run_success": first.success,
                     "said": ours, "unexpected": other}
            trials.append(trial)
            REPORT.parent.mkdir(parents=True, exist_ok=True)
            REPORT.write_text(json.dumps({"seed": SEED, "trials": trials}, indent=2))
            assert other == [], trial  # never a traceback
            assert all("\n" not in line for line in ours), trial
            if ours:  # stopped: the line names the file (or, for a remote object, its address)
                assert any(target.name in line or str(target.parent) in line for line in ours), trial
            second = run(defs, instance)  # the run after: everything repaired, by the first run or this one
            trial["repaired"], trial["second_said"] = second.success, said(second)
            REPORT.write_text(json.dumps({"seed": SEED, "trials": trials}, indent=2))
            assert second.success, {**trial, "second": said(second)}
            assert all(c.passed for c in second.get_asset_check_evaluations() if c.check_name != "estimated_size")
            for spec in shipped.datasets:
                assert preflight(spec, data_dir, deep=True).ready, trial
    print(f"chaos: seed {SEED}, {TRIALS} trials, report in {REPORT}")
