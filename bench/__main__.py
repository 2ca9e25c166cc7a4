"""`make bench`: every benchmark, then ONE table of ratios, each measured in this run against its baseline on
the same data. Progress goes to stderr, the table (markdown) to stdout.

    .venv/bin/python -m bench [--quick]      (make bench; goal: under 10 minutes on 2 cores. --quick: smaller
                                              sizes, for development)
    .venv/bin/python -m bench --large        (make bench-large: only the hop-by-hop lines, on a 5 GB CSV, peak
                                              RSS <= 1 GiB in every hop; 12-21 minutes on 2 cores, 2026-11-30,
                                              the two webdataset baselines on a seeded 100,000 samples, time
                                              scaled)"""

from __future__ import annotations

import argparse
import platform
import sys
import time

from bench import (
    bench_cleaning,
    bench_fingerprint,
    bench_graph,
    bench_hops,
    bench_incremental,
    bench_load,
    bench_peers,
    bench_preflight,
    bench_publish,
    bench_shards,
    bench_ui_run,
)
from bench.common import markdown_table


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (development); not the goals' sizes")
    parser.add_argument("--large", action="store_true", help="only the hop-by-hop lines, on a 5 GB CSV")
    args = parser.parse_args()
    if args.quick and args.large:
        parser.error("--quick and --large exclude each other")
    start = time.monotonic()
    lines = []
    if args.large:
        lines += bench_hops.measure(large=True)
    # the 5 GB cleaning last: its writes would still be going to disk during the fsync-timed shard writing
    for module in () if args.large else (bench_fingerprint, bench_shards, bench_publish, bench_incremental,
                                         bench_preflight, bench_graph, bench_ui_run, bench_hops, bench_peers,
                                         bench_cleaning, bench_load):
        lines += module.measure(quick=args.quick)
    elapsed = time.monotonic() - start
    print(markdown_table(lines))
    missed = sum(not line.meets for line in lines)
    sizes = " (--quick sizes)" if args.quick else " (--large)" if args.large else ""
    print(f"\n{len(lines) - missed} of {len(lines)} goals met{sizes}; "
          f"{elapsed / 60:.1f} min on {platform.node()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
