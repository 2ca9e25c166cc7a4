"""Every hop of the graph on one large generated CSV: time and peak RSS of each, against a baseline doing the
plain version of that hop's work on the same data, in the same run.

    .venv/bin/python -m bench.bench_hops [--quick | --large] [--mb N]

The CSV is bench_cleaning's (review-like rows, duplicates near and far, a few rows each rule drops),
registered as `bench_reviews` in a registry written to a temp dir, on the local remote. The graph's core
calls then run hop by hop, as the tests chain them without Dagster (dsm_assets_tests/caching.py), each in
its own child process so its peak RSS (VmHWM) is that hop's alone:

    cleaned        clean_dataset                     pyarrow read_csv + write_table (zstd)
    quality        quality.check_cleaned             pyarrow read_table of the cleaned parquet
    published      publish_cleaned, local remote     a plain copy (fsynced) of the parquet
    round_trip     check_round_trip                  pyarrow read_table of the parquet
    cache          refresh_cache                     a plain copy (fsynced) of the parquet
    preflight      preflight(deep=True)              sha256 of the cached files
    shards         write_shards                      webdataset.ShardWriter fed from the cached parquet
    shard checks   check_shards                      webdataset.WebDataset reading every shard
    load           dsm_assets.load + every row       datasets.load_dataset(<cache folder>) + every row

Each child reports the time of the call alone (not interpreter start-up or imports) and its VmHWM (which
does include its imports: `dsm_assets.load` and `load_dataset` both import datasets). "Every row" is an
Arrow-formatted pass over the whole dataset summing the text lengths, so every page is read. A hop whose
result is wrong (a check fails, rows differ) ends the bench: a broken hop never prints a number.

Goals: peak RSS <= 1 GiB in every hop (the point of --large, a 5 GB CSV); `load` also takes no more time
and no more memory than `datasets.load_dataset` of the same cache folder. The sizes: --quick 10 MB,
default 30 MB, --large 5 GB. The two webdataset baselines are per-sample Python (~1,200-2,400 samples a
second on this machine), so above SUBSET_ROWS samples (20,000; --large 100,000) they run on a seeded
subset (ShardWriter: a seeded choice of the parquet's row groups; the read: the first samples of every
shard) and their time is scaled to every sample, which the line says. The shards line also wants ≥ 3×
ShardWriter's speed, the shard checks line a time ≤ write_shards', and a line compares the shard bytes with
the parquet's uncompressed size."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Line, fsync_all, markdown_table, mib, own_peak_rss, progress, run_child, seconds, times, vm

NAME = "bench_reviews"
RSS_GOAL = 1 << 30
SIZES_MB = {"quick": 10, "default": 30, "large": 5000}
ROW_BYTES = 275  # the generator's average row
MB_PER_SHARD = 256  # one shard per 256 MB of CSV, at least 4
# the webdataset baselines (per-sample Python, ~2,000 samples/s) run on this many samples, time scaled
SUBSET_ROWS = {"quick": 20_000, "default": 20_000, "large": 100_000}

# ------------------------------------------------------------------ the steps (each runs in its own child)
# A step takes the bench root and returns the call to time; the call returns what the parent reports.
# Imports are inside the steps, so a baseline's child never imports dsm_assets.


def _spec(root: Path):
    from dsm_assets.registry import load_registry

    return load_registry(root / "registry.yaml").get(NAME)


def _save(root: Path, name: str, value: object) -> None:
    (root / "state" / f"{name}.pkl").write_bytes(pickle.dumps(value))


def _load(root: Path, name: str):
    return pickle.loads((root / "state" / f"{name}.pkl").read_bytes())


def _fail(what: str) -> None:
    sys.exit(f"bench_hops: {what}")


def _all_passed(hop: str, outcomes) -> dict:
    failed = [f"{o.name}: {o.description}" for o in outcomes if not o.passed]
    if failed:
        _fail(f"{hop} failed: {'; '.join(failed)}")
    return {"checks": len(outcomes)}


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def _touch_every_row(dataset) -> dict:
    """An Arrow-formatted pass over every row, summing the text lengths: every page of the data is read."""
    import pyarrow.compute as pc

    rows = chars = 0
    for batch in dataset.with_format("arrow").iter(batch_size=65536):
        rows += batch.num_rows
        chars += pc.sum(pc.utf8_length(batch.column("text"))).as_py() or 0
    return {"rows": rows, "chars": chars}


def ours_cleaned(root: Path) -> Callable[[], dict]:
    from dsm_assets.cleaning import clean_dataset

    spec = _spec(root)

    def run() -> dict:
        result = clean_dataset(spec, root / "data")
        _save(root, "cleaned", result)
        return {"rows": result.rows_out, "rows_in": result.rows_in}
    return run


def base_cleaned(root: Path) -> Callable[[], dict]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    def run() -> dict:
        table = pacsv.read_csv(_csv(root))
        pq.write_table(table, root / "scratch" / "baseline.parquet", compression="zstd")
        return {"rows": table.num_rows}
    return run


def ours_quality(root: Path) -> Callable[[], dict]:
    from dsm_assets.quality import check_cleaned

    spec, cleaned = _spec(root), _load(root, "cleaned")
    return lambda: _all_passed("the cleaned checks", check_cleaned(spec, cleaned.path))


def _read_parquet(root: Path) -> Callable[[], dict]:
    import pyarrow.parquet as pq

    path = _load(root, "cleaned").path
    return lambda: {"rows": pq.read_table(path).num_rows}


def ours_published(root: Path) -> Callable[[], dict]:
    from dsm_assets.publishing import publish_cleaned
    from dsm_assets.remotes import open_remote

    spec, cleaned, data = _spec(root), _load(root, "cleaned"), root / "data"

    def run() -> dict:
        outcome = publish_cleaned(spec, open_remote(spec, data_dir=data), cleaned, data_dir=data)
        if not outcome.new:
            _fail("publish found nothing new to publish in a fresh remote")
        _save(root, "published", outcome)
        return {"bytes": outcome.bytes_uploaded}
    return run


def _copy_parquet(root: Path) -> Callable[[], dict]:
    files = _load(root, "cleaned").files

    def run() -> dict:
        for i, f in enumerate(files):
            _copy(f, root / "scratch" / f"copy-{i}.parquet")
        return {"bytes": sum(f.stat().st_size for f in files)}
    return run


def ours_round_trip(root: Path) -> Callable[[], dict]:
    from dsm_assets.records import PublishedVersion
    from dsm_assets.remotes import open_remote
    from dsm_assets.round_trip import check_round_trip

    spec, cleaned, out, data = _spec(root), _load(root, "cleaned"), _load(root, "published"), root / "data"
    published = PublishedVersion(out.dataset, out.tag, out.commit, out.url, out.content_hash, out.rows)
    return lambda: _all_passed("round_trip", [check_round_trip(lambda: open_remote(spec, data_dir=data), published,
                                                               cleaned, data_dir=data)])


def ours_cache(root: Path) -> Callable[[], dict]:
    from dsm_assets.cache import refresh_cache
    from dsm_assets.remotes import open_remote

    spec, out, data = _spec(root), _load(root, "published"), root / "data"

    def run() -> dict:
        result = refresh_cache(spec, open_remote(spec, data_dir=data), tag=out.tag, commit=out.commit, data_dir=data)
        _save(root, "cache", result)
        return {"rows": result.rows, "bytes": result.bytes}
    return run


def ours_preflight(root: Path) -> Callable[[], dict]:
    from dsm_assets.preflight import preflight

    spec = _spec(root)

    def run() -> dict:
        state = preflight(spec, root / "data", deep=True)
        if not state.ready:
            _fail(f"preflight --deep: {state.status}: {state.reason}")
        return {}
    return run


def base_preflight(root: Path) -> Callable[[], dict]:
    import hashlib

    folder = _load(root, "cache").path

    def run() -> dict:
        files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
        for path in files:
            with open(path, "rb") as f:
                hashlib.file_digest(f, "sha256")
        return {"files": len(files)}
    return run


def ours_shards(root: Path) -> Callable[[], dict]:
    from dsm_assets.shards.writing import write_shards

    spec, cache = _spec(root), _load(root, "cache")

    def run() -> dict:
        result = write_shards(spec, cache.path, root / "outputs")
        _save(root, "shards", result)
        manifest = result.manifest
        return {"rows": manifest["total_samples"], "shards": len(manifest["shards"]),
                "compression": manifest["compression"], "bytes": sum(s["bytes"] for s in manifest["shards"])}
    return run


def base_shards(root: Path) -> Callable[[], dict]:
    """What a user would write with webdataset: the same members as ours (the json of the columns other than
    the text, the cls, the txt) from the cached parquet, read in batches, the same number of shards, fsynced
    like ours, as plain `.tar` even when ours gzips: ShardWriter's `.tar.gz` is tarfile's gzip level 9, which
    made it ~4× slower still here, so plain tar is its fastest. Above
    SUBSET_ROWS it writes a seeded subset of the row groups (the others are not read) and its time is scaled
    to every row."""
    import random

    import pyarrow.parquet as pq
    import webdataset as wds

    spec, cache = _spec(root), _load(root, "cache")
    parts = sorted((cache.path / "data").glob("*.parquet"))
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    keep = min(1.0, _load(root, "subset_rows") / max(1, rows))
    per_shard = -(-int(rows * keep) // max(1, min(spec.shards.count, rows)))
    index = {label: i for i, label in enumerate(spec.cleaning.labels.allowed)}
    folder = root / "scratch" / "shards"
    folder.mkdir(parents=True)
    rng = random.Random(19)

    # a seeded keep-th of all the row groups of all the files (at least one); only these are read
    every = [(part, g) for part in parts for g in range(pq.ParquetFile(part).num_row_groups)]
    groups = every if keep == 1 else sorted(rng.sample(every, max(1, round(keep * len(every)))))

    def run() -> dict:
        n = 0
        with wds.ShardWriter(str(folder / "s-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
            for part, group in groups:
                pf = pq.ParquetFile(part, pre_buffer=False)
                for batch in pf.iter_batches(batch_size=4096, row_groups=[group]):
                    for row in batch.to_pylist():
                        text = row.pop("text")
                        sink.write({"__key__": f"sample{n:09d}", "json": json.dumps(row, sort_keys=True).encode(),
                                    "cls": str(index[row["label"]]).encode(), "txt": (text or "").encode()})
                        n += 1
        fsync_all(folder)
        return {"rows": rows, "measured_rows": n, "scale": rows / max(1, n)}
    return run


def ours_shard_checks(root: Path) -> Callable[[], dict]:
    from dsm_assets.shards.checks import check_shards

    spec, shards = _spec(root), _load(root, "shards")
    return lambda: _all_passed("the shard checks", check_shards(spec, shards.folder, root / "data"))


def base_shard_checks(root: Path) -> Callable[[], dict]:
    """webdataset.WebDataset reading every shard; above SUBSET_ROWS samples, the first SUBSET_ROWS / shards
    samples of each shard, its time scaled to every sample."""
    from itertools import islice

    import webdataset as wds

    shards = _load(root, "shards")
    total = shards.manifest["total_samples"]
    urls = [str(shards.folder / s["name"]) for s in shards.manifest["shards"]]
    subset = _load(root, "subset_rows")
    each = None if total <= subset else -(-subset // len(urls))

    def run() -> dict:
        if each is None:
            n = sum(1 for _ in wds.WebDataset(urls, shardshuffle=False, empty_check=False))
            if n != total:
                _fail(f"webdataset read {n} samples, the manifest says {total}")
            return {"rows": n}
        n = sum(sum(1 for _ in islice(wds.WebDataset([u], shardshuffle=False, empty_check=False), each))
                for u in urls)
        return {"rows": total, "measured_rows": n, "scale": total / max(1, n)}
    return run


def _opened_then_touched(open_dataset: Callable[[], object]) -> dict:
    start = time.perf_counter()
    dataset = open_dataset()
    return {"open_seconds": time.perf_counter() - start, **_touch_every_row(dataset)}


def ours_load(root: Path) -> Callable[[], dict]:
    import datasets  # noqa: F401  (dsm_assets.load imports it on first use: before the clock, as the baseline)

    import dsm_assets
    from dsm_assets.registry import load_registry

    registry = load_registry(root / "registry.yaml")
    return lambda: _opened_then_touched(lambda: dsm_assets.load(NAME, data_dir=root / "data", registry=registry))


def base_load(root: Path) -> Callable[[], dict]:
    import datasets

    folder, hf_cache = _load(root, "cache").path, str(root / "hf" / "datasets")
    return lambda: _opened_then_touched(lambda: datasets.load_dataset(str(folder), split="train", cache_dir=hf_cache))


# hop: (ours, what ours calls, baseline, what the baseline is)
HOPS: dict[str, tuple[Callable, str, Callable, str]] = {
    "cleaned": (ours_cleaned, "clean_dataset", base_cleaned, "pyarrow read_csv + write_table"),
    "quality": (ours_quality, "quality.check_cleaned", _read_parquet, "pyarrow read_table"),
    "published": (ours_published, "publish_cleaned, local remote", _copy_parquet, "file copy"),
    "round_trip": (ours_round_trip, "check_round_trip", _read_parquet, "pyarrow read_table"),
    "cache": (ours_cache, "refresh_cache", _copy_parquet, "file copy"),
    "preflight": (ours_preflight, "preflight --deep", base_preflight, "sha256 of the files"),
    "shards": (ours_shards, "write_shards", base_shards, "webdataset.ShardWriter"),
    "shard checks": (ours_shard_checks, "check_shards", base_shard_checks, "webdataset read"),
    "load": (ours_load, "dsm_assets.load + every row", base_load, "datasets.load_dataset + every row"),
}
# steps whose rows must equal the cleaned rows (the baseline's too, where it reads cleaned data)
ROW_CHECKED = {"round_trip", "cache", "shards", "shard checks", "load"}


class _AnonPeak:
    """The process's peak anonymous RSS (RssAnon: heap, not file pages), sampled every 10 ms in a thread.
    VmHWM also counts the pages of memory-mapped files (`load`'s Arrow file, datasets' cache files) as they
    are read: page cache that the kernel takes back under pressure, which the line shows apart."""

    def __init__(self) -> None:
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, vm(os.getpid(), "RssAnon"))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, vm(os.getpid(), "RssAnon"))


def child(step: str, root: Path) -> None:
    hop, side = step.rsplit(":", 1)
    ours, _, baseline, _ = HOPS[hop]
    call = (ours if side == "ours" else baseline)(root)
    anon = _AnonPeak()
    start = time.perf_counter()
    info = call()
    took = (time.perf_counter() - start) * info.get("scale", 1)  # a baseline measured on a subset, scaled
    print(json.dumps({"seconds": took, "peak_rss": own_peak_rss(), "peak_anon": anon.stop(), **info}))


# ------------------------------------------------------------------ the parent

def _csv(root: Path) -> Path:
    return root / "data" / "raw" / NAME / "reviews.csv"


def setup(root: Path, megabytes: float, subset_rows: int) -> tuple[int, int]:
    """The registry (bench_cleaning's text_reviews entry; no estimated_size, one shard per 256 MB), the
    webdataset baselines' subset size, and the CSV. (rows, bytes) of the CSV."""
    import yaml

    from bench.bench_cleaning import setup as cleaning_setup
    from bench.bench_cleaning import write_csv

    _, registry, _ = cleaning_setup(root)
    doc = yaml.safe_load(registry.read_text())
    entry = doc["datasets"][0]
    entry["shards"] = {"count": max(4, round(megabytes / MB_PER_SHARD))}
    entry["remote"] = {"kind": "local", "repo": f"bench/{NAME}"}
    registry.write_text(yaml.safe_dump(doc))
    for folder in ("state", "scratch", "outputs", "hf"):
        (root / folder).mkdir()
    _save(root, "subset_rows", subset_rows)
    progress(f"hops: generating a {megabytes:g} MB CSV")
    return write_csv(_csv(root), rows=int(megabytes * 1e6 / ROW_BYTES))


def _run(root: Path, step: str) -> dict:
    env = {"HF_HOME": str(root / "hf"), "HF_DATASETS_CACHE": str(root / "hf" / "datasets"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    got = run_child(["-m", "bench.bench_hops", "--child", step, str(root)], step, env)
    shutil.rmtree(root / "scratch")  # what a baseline wrote
    (root / "scratch").mkdir()
    return got


def measure(quick: bool = False, large: bool = False, mb: float | None = None,
            ) -> list[Line]:
    sizes = "large" if large else "quick" if quick else "default"
    megabytes = mb or SIZES_MB[sizes]
    root = Path(tempfile.mkdtemp(prefix="dsm-bench-hops-"))
    try:
        rows_csv, size = setup(root, megabytes, SUBSET_ROWS[sizes])
        what = f"{size / 1e6:,.0f} MB CSV, {rows_csv / 1e6:.2g} M rows"
        lines, peaks, cleaned_rows = [], [], None
        for hop, (_, ours_what, _, base_what) in HOPS.items():
            progress(f"hops: {hop} ({ours_what}), then the baseline ({base_what})")
            ours = _run(root, f"{hop}:ours")
            base = _run(root, f"{hop}:baseline")
            progress(f"  ours {ours}; baseline {base}")
            if hop == "cleaned":
                cleaned_rows = ours["rows"]
                if base and base["rows"] != rows_csv:
                    _fail(f"pyarrow read {base['rows']} rows, the generator wrote {rows_csv}")
            for side, got in (("ours", ours), ("baseline", base or {})):
                if hop in ROW_CHECKED and "rows" in got and got["rows"] != cleaned_rows:
                    _fail(f"{hop} ({side}) has {got['rows']} rows, cleaning kept {cleaned_rows}")
            peaks.append((_peak(hop, ours), hop))
            if hop == "shards":
                written = ours
            if hop == "shard checks":
                ours["write_seconds"] = written["seconds"]
            lines.append(_line(hop, ours_what, base_what, what, ours, base))
            if hop == "shards":
                lines.append(_bytes_line(root, what, ours))
        peak, worst = max(peaks)
        lines.append(Line(f"largest peak RSS over the {len(HOPS)} hops (load: its heap) ({what})",
                          f"input {size / 1e9:.2f} GB",
                          f"{mib(peak)} ({worst})", f"{peak / size:.1%} of the input", "≤ 1 GiB in every hop",
                          peak <= RSS_GOAL))
        return lines
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _peak(hop: str, got: dict) -> int:
    """The peak the 1 GiB goal is about: VmHWM, but for `load` its heap. Its pass over every row reads the
    memory-mapped Arrow file, whose pages VmHWM counts as they are read (the whole file by the end, as for
    datasets.load_dataset): page cache, shared and dropped under pressure, not memory the process holds."""
    return got["peak_anon"] if hop == "load" else got["peak_rss"]


def _rss(got: dict) -> str:
    """Peak RSS (VmHWM) and, apart, the peak of its anonymous part (heap; the rest is mapped file pages)."""
    return f"{mib(got['peak_rss'])} (heap {mib(got['peak_anon'])})"


def _bytes_line(root: Path, what: str, ours: dict) -> Line:
    """Shard bytes against the cached parquet's uncompressed size (the issue's ≤ 1.5× for text rows)."""
    import pyarrow.parquet as pq

    parquet = 0
    for part in sorted((_load(root, "cache").path / "data").glob("*.parquet")):
        meta = pq.ParquetFile(part).metadata
        parquet += sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    ratio = ours["bytes"] / max(1, parquet)
    return Line(f"shard bytes ({ours['compression']}, {ours['shards']} shards) vs the parquet uncompressed ({what})",
                f"parquet {mib(parquet)}", mib(ours["bytes"]), times(ratio), "≤ 1.5×", ratio <= 1.5)


def _line(hop: str, ours_what: str, base_what: str, what: str, ours: dict, base: dict) -> Line:
    goal, meets = "≤ 1 GiB RSS", _peak(hop, ours) <= RSS_GOAL
    t, rss = ours["seconds"] / base["seconds"], ours["peak_rss"] / base["peak_rss"]
    if hop == "load":
        goal = "≤ 1 GiB heap (the mapped file's pages apart); time and RSS ≤ load_dataset's"
        meets = meets and t <= 1 and rss <= 1
    if hop == "shards":
        goal += "; ≥ 3× ShardWriter's speed"
        meets = meets and t <= 1 / 3
    if hop == "shard checks":
        goal += "; ≤ 1× write_shards' time"
        meets = meets and ours["seconds"] <= ours.get("write_seconds", ours["seconds"])
    if "measured_rows" in base:
        base_what += f" (on a seeded {base['measured_rows']:,} samples, time scaled)"
    return Line(f"hop {hop}: {ours_what} ({what})",
                f"{base_what} {seconds(base['seconds'])}, {_rss(base)}", f"{seconds(ours['seconds'])}, {_rss(ours)}",
                f"time {times(t)}, RSS {times(rss)}", goal, meets)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--large", action="store_true", help="the 5 GB CSV")
    parser.add_argument("--mb", type=float, help="CSV size in MB (overrides --quick/--large)")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    print(markdown_table(measure(args.quick, args.large, args.mb)))


if __name__ == "__main__":
    main()
