"""Cleaning throughput vs bare pyarrow, and peak memory on a 5 GB CSV, on generated review-like data.

    .venv/bin/python -m bench.bench_cleaning [--rows 1000000] [--rss-gb 5]

Goals: clean_dataset (registry-style rules: dedupe on text, required text and label, allowed labels) has at
least 0.5x the throughput of `pyarrow.csv.read_csv` + `pyarrow.parquet.write_table` of the same file (both
write zstd parquet), and (with --rss-gb 5; `python -m bench --large` measures it as its cleaned hop)
cleaning a 5 GB CSV in a child process peaks at no more than 1 GiB RSS.

The CSV is built from one block of ~2^18 rows (random texts of 40-460 characters, ~270 bytes a row),
written again and again with distinct ids and texts per block. Every 20th row of every later block repeats a
row of the first block (duplicates far apart), every 50th repeats the row before it, and a few rows have an
empty text or label, or a label outside the allowed ones, so every rule does real work."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from bench.common import Line, interleaved, markdown_table, mib, own_peak_rss, progress, run_child, seconds, times
from dsm_assets.cleaning import clean_dataset
from dsm_assets.registry import DEFAULT_REGISTRY, DatasetSpec, load_registry

BLOCK_ROWS = 1 << 18
LABELS = np.array(["positive", "negative", "neutral"])
NAME = "bench_reviews"
RSS_GOAL = 1 << 30


def _bodies(rng: np.random.Generator, n: int) -> pa.Array:
    """n random texts of 40-460 lowercase letters and spaces, built as one Arrow string array."""
    lengths = rng.integers(40, 460, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", dtype=np.uint8)
    chars = alphabet[rng.integers(0, len(alphabet), int(offsets[-1]))]
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))


class Generator:
    """Blocks of CSV bytes: block `b` holds rows b * BLOCK_ROWS … (b + 1) * BLOCK_ROWS - 1."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.bodies = _bodies(rng, BLOCK_ROWS)
        self.labels = pa.array(LABELS[rng.integers(0, 3, BLOCK_ROWS)])
        p = np.arange(BLOCK_ROWS)
        labels = pc.if_else(pa.array(p % 89 == 11), "", self.labels)
        self.labels = pc.if_else(pa.array(p % 101 == 13), "spam", labels)
        self.far = p % 20 == 7  # repeats the same position of block 0
        self.near = (p % 50 == 3) & ~self.far  # repeats the row before it
        self.empty = p % 97 == 5

    def block(self, b: int, rows: int = BLOCK_ROWS) -> bytes:
        p = np.arange(BLOCK_ROWS)
        key = b * BLOCK_ROWS + p  # the row whose text this row carries
        body = p.copy()
        if b:
            key[self.far] = p[self.far]
        key[self.near], body[self.near] = key[self.near] - 1, p[self.near] - 1
        text = pc.binary_join_element_wise(pc.cast(pa.array(key), pa.string()), self.bodies.take(pa.array(body)), " ")
        text = pc.if_else(pa.array(self.empty), "", text)
        table = pa.table({"id": pa.array(b * BLOCK_ROWS + p), "text": text, "label": self.labels}).slice(0, rows)
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=b == 0))
        return sink.getvalue().to_pybytes()


def write_csv(path: Path, *, rows: int | None = None, min_bytes: int | None = None) -> tuple[int, int]:
    """Write `rows` rows, or whole blocks until the file holds `min_bytes`. (rows, bytes) written."""
    gen, written, n, b = Generator(), 0, 0, 0
    path.parent.mkdir(parents=True, exist_ok=True)
    last_report = time.monotonic()
    with open(path, "wb") as f:
        while (rows is not None and n < rows) or (min_bytes is not None and written < min_bytes):
            take = min(BLOCK_ROWS, rows - n) if rows is not None else BLOCK_ROWS
            written += f.write(gen.block(b, take))
            n, b = n + take, b + 1
            if min_bytes and time.monotonic() - last_report > 15:
                progress(f"  generating {path.name}: {written / 1e9:.1f} of {min_bytes / 1e9:.1f} GB")
                last_report = time.monotonic()
    return n, written


def setup(root: Path) -> tuple[Path, Path, DatasetSpec]:
    """(data dir, registry path, spec): the shipped registry's text_reviews entry, on raw/bench_reviews/*.csv."""
    entry = yaml.safe_load(DEFAULT_REGISTRY.read_text())["datasets"][0]
    entry.update(name=NAME, source={"path": f"raw/{NAME}/*.csv", "format": "csv"}, cache_dir=f"cache/{NAME}")
    root.mkdir(parents=True, exist_ok=True)
    registry = root / "registry.yaml"
    registry.write_text(yaml.safe_dump({"version": 1, "datasets": [entry]}))
    return root / "data", registry, load_registry(registry).get(NAME)


def _clean_cold(spec: DatasetSpec, data: Path):
    for leftover in (data / "clean", data / ".dsm"):  # no reuse, no stat cache: the whole job every time
        shutil.rmtree(leftover, ignore_errors=True)
    return clean_dataset(spec, data)


def measure_throughput(root: Path, rows: int, runs: int = 5) -> Line:
    data, _, spec = setup(root)
    csv = data / "raw" / NAME / "reviews.csv"
    progress(f"cleaning: generating {rows} rows")
    _, size = write_csv(csv, rows=rows)
    out = root / "baseline.parquet"

    def baseline() -> None:
        pq.write_table(pacsv.read_csv(csv), out, compression="zstd")

    progress(f"cleaning: {rows} rows ({size / 1e6:.0f} MB), best of {runs}, ours and bare pyarrow in turn")
    t_ours, t_base = interleaved(lambda: _clean_cold(spec, data), baseline, runs)
    shutil.rmtree(data)
    ratio = t_base / t_ours
    return Line(f"cleaning {rows / 1e6:g} M rows ({size / 1e6:.0f} MB CSV), throughput",
                f"pyarrow read_csv + write_table {seconds(t_base)}", seconds(t_ours), times(ratio),
                "≥ 0.5×", ratio >= 0.5)


def measure_rss(root: Path, gigabytes: float) -> Line:
    """Clean a generated CSV of `gigabytes` GB in a child process; its peak RSS (the file is deleted after)."""
    data, registry, _ = setup(root)
    csv = data / "raw" / NAME / "reviews.csv"
    progress(f"peak RSS: generating a {gigabytes:g} GB CSV")
    rows, size = write_csv(csv, min_bytes=int(gigabytes * 1e9))
    progress(f"peak RSS: cleaning {size / 1e9:.1f} GB, {rows} rows, in a child process")
    got = run_child(["-m", "bench.bench_cleaning", "--child", str(data), str(registry)], "cleaning")
    shutil.rmtree(data)  # on a failed child the caller's finally removes it with the rest of the root
    peak = got["peak_rss"]
    progress(f"peak RSS: {mib(peak)} in {got['seconds']:.0f} s, {got['rows_in']} rows in, {got['rows_out']} out")
    return Line(f"peak RSS cleaning a {size / 1e9:.1f} GB CSV ({rows / 1e6:.1f} M rows)",
                f"input {size / 1e9:.1f} GB", mib(peak), f"{peak / size:.1%} of the input", "≤ 1 GiB",
                peak <= RSS_GOAL)


def child(data: Path, registry: Path) -> None:
    spec = load_registry(registry).get(NAME)
    start = time.perf_counter()
    result = clean_dataset(spec, data)
    peak = own_peak_rss()
    print(json.dumps({"peak_rss": peak, "seconds": time.perf_counter() - start, "rows_in": result.rows_in,
                      "rows_out": result.rows_out, "dropped": result.dropped}))


def measure(quick: bool = False, rows: int | None = None, rss_gb: float | None = None) -> list[Line]:
    root = Path(tempfile.mkdtemp(prefix="dsm-bench-cleaning-"))
    try:
        lines = [measure_throughput(root / "rows", rows or (200_000 if quick else 1_000_000))]
        if rss_gb:  # 5 GB takes ~3 minutes: `python -m bench --large` measures it as its cleaned hop
            lines.append(measure_rss(root / "rss", rss_gb))
        return lines
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int)
    parser.add_argument("--rss-gb", type=float)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("DATA_DIR", "REGISTRY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    print(markdown_table(measure(args.quick, args.rows, args.rss_gb)))


if __name__ == "__main__":
    main()
