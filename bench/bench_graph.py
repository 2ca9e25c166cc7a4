"""Dagster overhead on the whole sample graph: the project's Definitions materialised in process vs the same
work done by calling the core functions directly, in one run, each on fresh copies of the sample data.

    .venv/bin/python -m bench.bench_graph

Dagster's side is what `make demo` does: the observe job, then the materialize job (every asset and check),
in process, with local remotes (nothing leaves the machine), once on a sqlite instance as `make demo` and
`dagster dev` use, once on an in-memory one. The direct side makes the calls each asset and check makes, in
dependency order, and runs each model's training script in a process of its own, as the model asset does
through Pipes (until 2026-11-30 it imported the script into the bench process, so the training processes'
start-up and imports counted as Dagster's overhead). Overhead = (Dagster's wall time - direct) / direct.
Goal: <= 50 %. One untimed direct run first pays the imports both sides share."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import dagster as dg

from bench.common import Line, progress, run_alone, seconds, timed
from dsm_assets import quality
from dsm_assets.cache import refresh_cache
from dsm_assets.cleaning import clean_dataset
from dsm_assets.contenthash import hash_table
from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB
from dsm_assets.fingerprint import fingerprint_files
from dsm_assets.layout import statcache_path
from dsm_assets.preflight import offline_probe, preflight
from dsm_assets.publishing import publish_cleaned
from dsm_assets.registry import DEFAULT_REGISTRY, Registry, load_registry
from dsm_assets.remotes import open_remote
from dsm_assets.samples import install_samples
from dsm_assets.shard_publishing import publish_shards
from dsm_assets.shards import read_back, verify_shards, write_shards
from dsm_assets.sources import resolve_files
from dsm_assets.state import record_verified
from dsm_assets.training import train_model

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def fresh(root: Path) -> tuple[Path, Path]:
    """A new data dir holding the samples and a new outputs dir (set in the environment Definitions read)."""
    shutil.rmtree(root, ignore_errors=True)
    data, outputs = root / "data", root / "outputs"
    install_samples(data)
    os.environ.update(DSM_DATA_DIR=str(data), DSM_OUTPUTS_DIR=str(outputs), DSM_REGISTRY=str(DEFAULT_REGISTRY))
    return data, outputs


def direct(registry: Registry, data: Path, outputs: Path) -> None:
    """Every asset's and check's core calls, in dependency order, as the Dagster layer makes them."""
    shards_folders = {}
    for spec in registry.datasets:
        fingerprint_files(resolve_files(spec, data), data, statcache_path(data, spec.name))  # raw
        cleaned = clean_dataset(spec, data)  # cleaned, then its checks
        assert all(c.passed for c in quality.check_cleaned(spec, cleaned.path))
        remote = open_remote(spec, data_dir=data)  # published, then round_trip
        out = publish_cleaned(spec, remote, cleaned, data_dir=data)
        assert hash_table(remote.load_table(out.commit)) == cleaned.version
        record_verified(data, spec.name, tag=out.tag, commit=out.commit, url=out.url)
        cache = refresh_cache(spec, remote, tag=out.tag, commit=out.commit, data_dir=data,  # cache, preflight
                              keep=registry.cache.keep)
        assert preflight(spec, data, deep=True).ready and offline_probe(spec, data, registry.path)[0]
        shards = write_shards(spec, cache.path, outputs)  # shards, then their checks
        if spec.shards.publish:
            publish_shards(remote, shards.folder, shards.manifest, cache.path)
        assert not verify_shards(shards.folder, shards.manifest, deep=True) + read_back(shards.folder, shards.manifest)
        shards_folders[spec.name] = (shards.folder, cleaned, out)
    for model in registry.models:  # model, then its accuracy check
        dataset = registry.get(model.dataset)
        assert preflight(dataset, data).ready
        folder, cleaned, out = shards_folders[dataset.name]
        script = registry.path.parent / model.train.code[0]
        result = train_model(model, dataset, shards_folder=folder, outputs_dir=outputs, run_id="bench", upstream={
            "remote_url": out.url, "cleaned_version": cleaned.version, "raw_fingerprint": cleaned.raw_fingerprint},
            produce=lambda target, script=script, folder=folder: _train_in_child(script, folder, target),
            code_version="bench")
        assert result.metrics["accuracy"] >= model.threshold


def _train_in_child(script: Path, shards: Path, target: Path) -> dict:
    """A training example's `train(shards_folder, output_folder)` in a Python process of its own, without
    Pipes: the model asset runs the user's training as its own process too, so interpreter start-up and the
    script's imports (sklearn, …) are the work on both sides, not Dagster's overhead."""
    done = subprocess.run([sys.executable, "-c", _TRAIN, str(script), str(shards), str(target)],
                          cwd=script.parent, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


_TRAIN = ("import json, runpy, sys; from pathlib import Path; "
          "print(json.dumps(runpy.run_path(sys.argv[1])['train'](Path(sys.argv[2]), Path(sys.argv[3]))))")


def dagster(instance: dg.DagsterInstance) -> None:
    """The project's Definitions (dsm_assets.definitions, as `dagster dev` loads them): observe, materialize."""
    from dsm_assets.definitions import defs

    definitions = defs()
    for job in (OBSERVE_JOB, MATERIALIZE_JOB):
        result = definitions.resolve_job_def(job).execute_in_process(instance=instance, run_config=QUIET,
                                                                     raise_on_error=False)
        assert result.success, f"{job} failed (run {result.run_id})"
        failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
        assert not failed, f"{job}: checks failed: {failed}"


def measure(quick: bool = False, runs: int | None = None) -> list[Line]:
    runs = runs or (1 if quick else 2)
    root = Path(tempfile.mkdtemp(prefix="dsm-bench-graph-"))
    saved = {k: os.environ.get(k) for k in ("DSM_DATA_DIR", "DSM_OUTPUTS_DIR", "DSM_REGISTRY")}
    registry = load_registry(DEFAULT_REGISTRY)
    times: dict[str, list[float]] = {"sqlite": [], "memory": [], "direct": []}
    try:
        progress(f"whole sample graph: one untimed direct run, then best of {runs}, each side in turn")
        direct(registry, *fresh(root / "warmup"))
        for i in range(runs):  # fresh data, outputs and instance each time, all made before the clock starts
            home = fresh(root / f"sqlite{i}")[1] / "dagster_home"
            home.mkdir(parents=True)
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            with dg.DagsterInstance.local_temp(str(home)) as instance:
                times["sqlite"].append(timed(lambda inst=instance: dagster(inst))[1])
            fresh(root / f"memory{i}")
            with dg.DagsterInstance.ephemeral() as instance:
                times["memory"].append(timed(lambda inst=instance: dagster(inst))[1])
            data, outputs = fresh(root / f"direct{i}")
            times["direct"].append(timed(lambda d=data, o=outputs: direct(registry, d, o))[1])
            progress("  run {}: {}".format(i + 1, ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items())))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)
    t_direct = min(times["direct"])
    lines = []
    for kind, label in (("sqlite", "sqlite instance, as `make demo`"), ("memory", "in-memory instance")):
        t = min(times[kind])
        overhead = (t - t_direct) / t_direct
        lines.append(Line(f"whole sample graph in process, Dagster overhead ({label})",
                          f"direct core calls {seconds(t_direct)}", f"Dagster {seconds(t)}", f"{overhead:.1%}",
                          "≤ 50 %", overhead <= 0.5))
    return lines


if __name__ == "__main__":
    run_alone(measure, "runs")
