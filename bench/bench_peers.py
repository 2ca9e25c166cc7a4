"""Our cleaning next to polars and DuckDB doing the same cleaning of the same generated CSV, each in its own
child process: time and peak RSS (VmHWM), as ratios against ours.

    .venv/bin/python -m bench.bench_peers [--quick] [--rows N]

The CSV is bench_cleaning's; the rules are the shipped `text_reviews` ones, written out by hand for each
peer: trim the text columns, empty text → null, drop rows with a null text or label, drop labels outside
positive/negative/neutral, keep the first row of each text, write zstd parquet. The generator's `id` is the
row's position in the file, so "first" is "smallest id" for DuckDB (whose parallel CSV scan has no row
number); polars keeps the first by `unique(keep="first", maintain_order=True)`. DuckDB's `trim` removes
spaces only, polars' `strip_chars` and ours any whitespace: the generated texts hold no other whitespace.
Every peer's output must have our row count and the same sum of ids (the same rows kept), or its line
says so and misses. A peer that is not installed gets a line saying so (they are in the `dev` extras)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Line, markdown_table, mib, own_peak_rss, progress, run_child, seconds, times

ALLOWED = ("positive", "negative", "neutral")
PEERS = ("polars", "duckdb")


def ours(csv: Path, out: Path, root: Path) -> None:
    from bench.bench_cleaning import NAME, setup
    from dsm_assets.cleaning import clean_dataset

    data, _, spec = setup(root / "ours")
    raw = data / "raw" / NAME
    raw.mkdir(parents=True)
    os.link(csv, raw / csv.name)  # the same file, no copy
    result = clean_dataset(spec, data)
    shutil.move(result.path, out)


def polars(csv: Path, out: Path, root: Path) -> None:
    import polars as pl

    text = [pl.col(c).str.strip_chars() for c in ("text", "label")]
    (pl.scan_csv(csv, schema={"id": pl.Int64, "text": pl.String, "label": pl.String})
     .with_columns(text)
     .with_columns(pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in ("text", "label"))
     .filter(pl.col("text").is_not_null() & pl.col("label").is_not_null() & pl.col("label").is_in(ALLOWED))
     .unique(subset="text", keep="first", maintain_order=True)
     .sink_parquet(out, compression="zstd"))


def duckdb(csv: Path, out: Path, root: Path) -> None:
    import duckdb

    allowed = ", ".join(f"'{label}'" for label in ALLOWED)
    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{root / 'duckdb-tmp'}'")
    con.execute(f"""
        COPY (
          SELECT min(id) AS id, text, arg_min(label, id) AS label FROM (
            SELECT id, nullif(trim(text), '') AS text, nullif(trim(label), '') AS label
            FROM read_csv('{csv}', header = true,
                          columns = {{'id': 'BIGINT', 'text': 'VARCHAR', 'label': 'VARCHAR'}})
          ) WHERE text IS NOT NULL AND label IS NOT NULL AND label IN ({allowed})
          GROUP BY text ORDER BY id
        ) TO '{out}' (FORMAT parquet, COMPRESSION zstd)""")
    con.close()


CLEANERS: dict[str, Callable[[Path, Path, Path], None]] = {"ours": ours, "polars": polars, "duckdb": duckdb}


def child(who: str, csv: Path, root: Path) -> None:
    out = root / f"{who}.parquet"
    start = time.perf_counter()
    CLEANERS[who](csv, out, root)
    elapsed, peak = time.perf_counter() - start, own_peak_rss()
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted(out.glob("*.parquet")) if out.is_dir() else [out]  # ours: a folder of parquet files
    ids = pa.chunked_array([c for f in files for c in pq.read_table(f, columns=["id"]).column("id").chunks])
    print(json.dumps({"seconds": elapsed, "peak_rss": peak, "rows": len(ids), "id_sum": pc.sum(ids).as_py()}))


def measure(quick: bool = False, rows: int | None = None) -> list[Line]:
    from bench.bench_cleaning import write_csv

    rows = rows or (200_000 if quick else 1_000_000)
    root = Path(tempfile.mkdtemp(prefix="dsm-bench-peers-"))
    try:
        csv = root / "reviews.csv"
        progress(f"peers: generating {rows} rows")
        _, size = write_csv(csv, rows=rows)
        what = f"{rows / 1e6:g} M rows ({size / 1e6:.0f} MB CSV)"

        def run(who: str) -> dict:
            progress(f"peers: cleaning {what} with {who}")
            got = run_child(["-m", "bench.bench_peers", "--child", who, str(csv), str(root)], f"peers {who}")
            out = root / f"{who}.parquet"  # ours: a folder of parquet files
            shutil.rmtree(out) if out.is_dir() else out.unlink()
            return got

        mine = run("ours")
        lines = []
        for peer in PEERS:
            line = f"cleaning {what} with {peer} (same rules), vs ours"
            if importlib.util.find_spec(peer) is None:
                lines.append(Line(line, f"{peer} not importable", f"{seconds(mine['seconds'])}, "
                                  f"{mib(mine['peak_rss'])}", f"not measured: pip install {peer} (dev extras)",
                                  "report", False))
                continue
            theirs = run(peer)
            base = f"{peer} {seconds(theirs['seconds'])}, {mib(theirs['peak_rss'])}"
            ours_text = f"{seconds(mine['seconds'])}, {mib(mine['peak_rss'])}"
            if (theirs["rows"], theirs["id_sum"]) != (mine["rows"], mine["id_sum"]):
                progress(f"peers: {peer} kept {theirs['rows']} rows (id sum {theirs['id_sum']}), ours "
                         f"{mine['rows']} (id sum {mine['id_sum']}): NOT the same rows")
                lines.append(Line(line, base, ours_text, f"ROWS DIFFER: {peer} {theirs['rows']}, ours {mine['rows']}",
                                  "same rows; report", False))
                continue
            lines.append(Line(line, base, ours_text,
                              f"{peer} is {times(mine['seconds'] / theirs['seconds'])} as fast, "
                              f"{times(theirs['peak_rss'] / mine['peak_rss'])} the RSS",
                              f"same rows ({mine['rows']}); report", True))
        return lines
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--child", nargs=3, metavar=("WHO", "CSV", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    print(markdown_table(measure(args.quick, args.rows)))


if __name__ == "__main__":
    main()
