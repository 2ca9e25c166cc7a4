"""`make bench`: every benchmark, then ONE table of ratios, each measured in this run against its baseline on
the same data. Progress goes to stderr, the table (markdown) to stdout.

    .venv/bin/python -m bench [--quick]      (--quick: smaller sizes, for development)"""

from __future__ import annotations

import argparse
import platform
import sys
import time

from bench import (
    bench_cleaning,
    bench_fingerprint,
    bench_graph,
    bench_load,
    bench_preflight,
    bench_publish,
    bench_shards,
    bench_ui_run,
)
from bench.common import markdown_table


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (development); not the goals' sizes")
    args = parser.parse_args()
    start = time.monotonic()
    lines = []
    # the 5 GB cleaning last: its writes would still be going to disk during the fsync-timed shard writing
    for module in (bench_fingerprint, bench_shards, bench_publish, bench_preflight, bench_graph, bench_ui_run,
                   bench_cleaning, bench_load):
        lines += module.measure(quick=args.quick)
    elapsed = time.monotonic() - start
    print(markdown_table(lines))
    missed = sum(not line.meets for line in lines)
    print(f"\n{len(lines) - missed} of {len(lines)} goals met{' (--quick sizes)' if args.quick else ''}; "
          f"{elapsed / 60:.1f} min on {platform.node()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
