"""`dsm_assets.load` vs `datasets.load_dataset(<cache folder>)`, and the peak memory of the checks, round_trip
and the cache hop vs `pyarrow.parquet.read_table` of the same file, on a generated text dataset.

    .venv/bin/python -m bench.bench_load [--quick] [--mb 300]

The data is bench_cleaning's review-like CSV (`--mb` MB of it; --quick: 60 MB), cleaned, published on the
local remote, recorded as verified and cached the real way (the core functions). Every measurement runs in a
child process of its own: the wall time of the call (`import datasets` done before the clock starts, on both
sides) and the child's peak RSS (VmHWM, imports included on both sides); best of 2 cold and 3 warm runs,
taking turns. `load` cold is the first load converting the parquet to its Arrow copy (the cache hop normally writes
it: the copy is removed first); warm reuses it. `datasets.load_dataset` runs with HF_DATASETS_CACHE in a fresh
temp dir (cold: it converts into it), then again in the same dir (warm).

Goals: `load` no slower and no larger than `datasets.load_dataset`, cold and warm; the checks, round_trip and
the cache hop each below the baseline's peak and below 1 GiB."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_cleaning import setup, write_csv
from bench.common import Line, markdown_table, mib, progress, seconds, times, vm
from dsm_assets.layout import cache_arrow_file

RSS_GOAL = 1 << 30
COLD_RUNS, WARM_RUNS = 2, 3


def best(runs: list[dict]) -> dict:
    """The least disturbed run: the shortest time, and the lowest peak (each is the same work every time)."""
    return {"seconds": min(r["seconds"] for r in runs), "peak_rss": min(r["peak_rss"] for r in runs)}


def build(root: Path, megabytes: float) -> tuple[Path, Path, Path, Path]:
    """(data dir, registry, cleaned parquet, cache version folder)."""
    from dsm_assets.cache import refresh_cache
    from dsm_assets.cleaning import clean_dataset
    from dsm_assets.publishing import publish_cleaned
    from dsm_assets.remotes import open_remote
    from dsm_assets.state import record_verified

    data, registry, spec = setup(root)
    rows, size = write_csv(data / "raw" / spec.name / "reviews.csv", min_bytes=int(megabytes * 1e6))
    progress(f"load: {size / 1e6:.0f} MB CSV, {rows} rows; cleaning, publishing, caching")
    cleaned = clean_dataset(spec, data)
    remote = open_remote(spec, data_dir=data)
    out = publish_cleaned(spec, remote, cleaned, data_dir=data)
    record_verified(data, spec.name, tag=out.tag, commit=out.commit, url=out.url)
    folder = refresh_cache(spec, remote, tag=out.tag, commit=out.commit, data_dir=data).path
    shutil.rmtree(data / "raw")
    return data, registry, cleaned.path, folder


def child(what: str, data: Path, registry: Path, path: Path) -> None:
    """One measurement in this process: prints {"seconds", "peak_rss", "rows"}."""
    os.environ.update(DSM_DATA_DIR=str(data), DSM_REGISTRY=str(registry))
    if what in ("load", "hf"):  # the same fixed cost on both sides (1-4 s on a busy machine): not timed
        import datasets

        import dsm_assets.loading
    start = time.perf_counter()
    if what == "load":
        import dsm_assets

        rows = dsm_assets.load("bench_reviews").num_rows
    elif what == "hf":
        import datasets

        rows = datasets.load_dataset(str(path), split="train").num_rows
    elif what == "read_table":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).num_rows
    elif what == "quality":
        from dsm_assets.quality import check_cleaned
        from dsm_assets.registry import load_registry

        outcomes = check_cleaned(load_registry(registry).get("bench_reviews"), path)
        rows = next(o.metadata["rows"] for o in outcomes if o.name == "non_empty")
    elif what == "round_trip":
        from dsm_assets.cleaning import CleanResult
        from dsm_assets.records import PublishedVersion
        from dsm_assets.registry import load_registry
        from dsm_assets.remotes import open_remote
        from dsm_assets.round_trip import check_round_trip
        from dsm_assets.state import read_verified

        spec = load_registry(registry).get("bench_reviews")
        pub = read_verified(data, spec.name)
        info = json.loads(path.with_suffix(".json").read_text())
        cleaned = CleanResult.of_file(path, content_hash=info["version"], rows=info["rows_out"], schema=info["schema"])
        version = PublishedVersion(spec.name, pub["tag"], pub["commit"], "", info["version"], info["rows_out"])
        outcome = check_round_trip(lambda: open_remote(spec, data_dir=data), version, cleaned, data_dir=data)
        assert outcome.passed, outcome.description
        rows = outcome.metadata["remote_rows"]
    elif what == "cache":
        from dsm_assets.cache import refresh_wanted
        from dsm_assets.registry import load_registry
        from dsm_assets.remotes import open_remote

        spec = load_registry(registry).get("bench_reviews")
        result = refresh_wanted(spec, open_remote(spec, data_dir=data), data_dir=data)
        assert result.refreshed
        rows = result.rows
    else:
        raise SystemExit(f"unknown measurement {what}")
    elapsed = time.perf_counter() - start
    # VmHWM, not getrusage's ru_maxrss: Linux carries the parent's peak over into a child's ru_maxrss at exec
    print(json.dumps({"seconds": elapsed, "peak_rss": vm(os.getpid(), "VmHWM"), "rows": rows}))


def run_child(what: str, data: Path, registry: Path, path: Path, env: dict[str, str] | None = None) -> dict:
    cmd = [sys.executable, "-m", "bench.bench_load", "--child", what, str(data), str(registry), str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        sys.exit(f"bench_load child {what} failed: {done.stderr[-2000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    progress(f"  {what}: {seconds(got['seconds'])}, peak RSS {mib(got['peak_rss'])}, {got['rows']} rows")
    return got


def measure(quick: bool = False, mb: int | None = None) -> list[Line]:
    megabytes = mb or (60 if quick else 300)
    root = Path(tempfile.mkdtemp(prefix="dsm-bench-load-"))
    try:
        data, registry, cleaned, folder = build(root, megabytes)
        size = sum(p.stat().st_size for p in (folder / "data").glob("*.parquet"))
        label = f"{size / 1e6:.0f} MB parquet"
        hf_cache = {"HF_DATASETS_CACHE": str(root / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        ours_cold, hf_cold, ours_warm, hf_warm = [], [], [], []
        for _ in range(COLD_RUNS):  # taking turns, each from scratch
            shutil.rmtree(cache_arrow_file(folder).parent, ignore_errors=True)  # as for a version cached before
            shutil.rmtree(root / "hf", ignore_errors=True)
            ours_cold.append(run_child("load", data, registry, folder))
            hf_cold.append(run_child("hf", data, registry, folder, hf_cache))
        for _ in range(WARM_RUNS):
            ours_warm.append(run_child("load", data, registry, folder))
            hf_warm.append(run_child("hf", data, registry, folder, hf_cache))
        ours_cold, hf_cold, ours_warm, hf_warm = map(best, (ours_cold, hf_cold, ours_warm, hf_warm))
        base = run_child("read_table", data, registry, cleaned)
        quality = run_child("quality", data, registry, cleaned)
        round_trip = run_child("round_trip", data, registry, cleaned)
        shutil.rmtree(folder)  # the cache hop downloads, verifies and converts again
        cache = run_child("cache", data, registry, folder)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = []
    for when, ours, hf in (("cold (converts)", ours_cold, hf_cold), ("warm", ours_warm, hf_warm)):
        lines.append(Line(f"`dsm_assets.load` {when}, {label}: time",
                          f"datasets.load_dataset {seconds(hf['seconds'])}", seconds(ours["seconds"]),
                          times(ours["seconds"] / hf["seconds"]), "≤ 1×", ours["seconds"] <= hf["seconds"]))
        lines.append(Line(f"`dsm_assets.load` {when}, {label}: peak RSS",
                          f"datasets.load_dataset {mib(hf['peak_rss'])}", mib(ours["peak_rss"]),
                          times(ours["peak_rss"] / hf["peak_rss"]), "≤ 1×", ours["peak_rss"] <= hf["peak_rss"]))
    for what, got in (("quality checks", quality), ("round_trip", round_trip), ("cache hop", cache)):
        lines.append(Line(f"{what}, {label}: peak RSS", f"pq.read_table {mib(base['peak_rss'])}",
                          f"{mib(got['peak_rss'])} ({seconds(got['seconds'])})",
                          times(got["peak_rss"] / base["peak_rss"]), "< 1× and ≤ 1 GiB",
                          got["peak_rss"] < base["peak_rss"] and got["peak_rss"] <= RSS_GOAL))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--mb", type=int)
    parser.add_argument("--child", nargs=4, metavar=("WHAT", "DATA_DIR", "REGISTRY", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), Path(args.child[3]))
        return
    print(markdown_table(measure(args.quick, args.mb)))


if __name__ == "__main__":
    main()
