"""`dsm preflight` for 10 registered, cached datasets vs `python -c "import pyarrow"`, in one run.

    .venv/bin/python -m bench.bench_preflight [--runs 15] [--quick]

Goal: the median preflight wall time is at most 2x the median of a bare pyarrow import (both are whole
processes, so interpreter start-up counts on both sides)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import Line, progress, run_alone, seconds, times
from dsm_assets.cache import refresh_cache
from dsm_assets.cleaning import clean_dataset
from dsm_assets.publishing import publish_cleaned
from dsm_assets.registry import DEFAULT_REGISTRY, load_registry
from dsm_assets.remotes import open_remote
from dsm_assets.samples import install_samples
from dsm_assets.state import record_verified

N_DATASETS = 10


def setup(tmp: Path) -> dict[str, str]:
    """10 copies of the chords sample, each published, verified and cached on the local remote."""
    data = tmp / "data"
    install_samples(data)
    template = yaml.safe_load(DEFAULT_REGISTRY.read_text())["datasets"][1]
    entries = []
    for i in range(N_DATASETS):
        entry = dict(template, name=f"set_{i}", cache_dir=f"cache/set_{i}", remote={"repo": f"bench/set_{i}"})
        entries.append(entry)
    registry_path = tmp / "registry.yaml"
    registry_path.write_text(yaml.safe_dump({"version": 1, "datasets": entries}))
    for spec in load_registry(registry_path).datasets:
        cleaned = clean_dataset(spec, data)
        remote = open_remote(spec, data_dir=data)
        out = publish_cleaned(spec, remote, cleaned, data_dir=data)
        record_verified(data, spec.name, tag=out.tag, commit=out.commit, url=out.url)
        refresh_cache(spec, remote, tag=out.tag, commit=out.commit, data_dir=data)
    return {**os.environ, "DSM_DATA_DIR": str(data), "DSM_REGISTRY": str(registry_path)}


def median_seconds(cmd: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-500:]}")
    return statistics.median(times)


def measure(quick: bool = False, runs: int | None = None) -> list[Line]:
    runs = runs or (5 if quick else 15)
    tmp = Path(tempfile.mkdtemp(prefix="dsm-bench-preflight-"))
    try:
        progress(f"preflight: {N_DATASETS} datasets, median of {runs} runs")
        env = setup(tmp)
        dsm = str(Path(sys.executable).parent / "dsm")
        baseline = median_seconds([sys.executable, "-c", "import pyarrow"], env, runs)
        ours = median_seconds([dsm, "preflight"], env, runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [Line(f"`dsm preflight`, {N_DATASETS} cached datasets (median of {runs})",
                 f'`python -c "import pyarrow"` {seconds(baseline)}', seconds(ours), times(ours / baseline),
                 "≤ 2× the time", ours / baseline <= 2)]


if __name__ == "__main__":
    run_alone(measure, "runs")
