"""`dsm preflight` for 10 registered, cached datasets vs `python -c "import pyarrow"`, in one run.

    .venv/bin/python -m bench.bench_preflight [--runs 15]

Goal: the median preflight wall time is at most 2x the median of a bare pyarrow import (both are whole
processes, so interpreter start-up counts on both sides). Also reports `--deep`."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from dsm_assets.cache import refresh_cache
from dsm_assets.cleaning import clean_dataset
from dsm_assets.publishing import CleanedRef, publish_cleaned, record_verified
from dsm_assets.registry import DEFAULT_REGISTRY, load_registry
from dsm_assets.remotes import open_remote
from dsm_assets.samples import install_samples

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
        out = publish_cleaned(spec, remote, CleanedRef(cleaned.path, cleaned.version, cleaned.rows_out,
                                                       cleaned.schema), data_dir=data)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = setup(Path(tempfile.mkdtemp(prefix="dsm-bench-preflight-")))
    dsm = str(Path(sys.executable).parent / "dsm")
    baseline = median_seconds([sys.executable, "-c", "import pyarrow"], env, args.runs)
    quick = median_seconds([dsm, "preflight"], env, args.runs)
    deep = median_seconds([dsm, "preflight", "--deep"], env, args.runs)
    print(f"{N_DATASETS} datasets, median of {args.runs} runs each")
    print(f"{'command':<32} {'seconds':>8} {'ratio':>7}  goal")
    label = 'python -c "import pyarrow"'
    print(f"{label:<32} {baseline:8.3f} {1:7.2f}  baseline")
    for name, t in (("dsm preflight", quick), ("dsm preflight --deep", deep)):
        verdict = ("meets" if t / baseline <= 2 else "MISSES") + " (<= 2x)" if name == "dsm preflight" else "-"
        print(f"{name:<32} {t:8.3f} {t / baseline:7.2f}  {verdict}")


if __name__ == "__main__":
    main()
