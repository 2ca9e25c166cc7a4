"""Raw fingerprints: cold (no stat cache) vs `md5sum` of the same files, and an unchanged re-run (stat cache
warm) vs cold, in one run on the same files.

    .venv/bin/python -m bench.bench_fingerprint [--mib 1024]

Goals: a cold fingerprint is at least 8x faster than `md5sum` (a subprocess; both read from the page cache,
which is warmed first), and an unchanged re-run at least 50x faster than a cold one. Best of 5 each."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Line, interleaved, progress, run_alone, seconds, times
from dsm_assets.fingerprint import fingerprint_files

FILES = 64
RUNS = 5


def write_files(root: Path, total_mib: int) -> list[Path]:
    """FILES files of random bytes (one random block, a distinct first line per file), an hour old, so the
    stat cache takes them (fingerprint's racy-mtime rule skips files changed in the last seconds)."""
    size = total_mib * 2**20 // FILES
    block = np.random.default_rng(3).integers(0, 256, size, dtype=np.uint8).tobytes()
    past = time.time() - 3600
    files = []
    for i in range(FILES):
        path = root / "raw" / f"part-{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"file {i}\n".encode()
        path.write_bytes(header + block[len(header):])
        os.utime(path, (past, past))
        files.append(path)
    return files


def measure(quick: bool = False, mib: int | None = None) -> list[Line]:
    total = mib or (256 if quick else 1024)
    root = Path(tempfile.mkdtemp(prefix="dsm-bench-fingerprint-"))
    try:
        progress(f"fingerprint: {FILES} files, {total} MiB, best of {RUNS}")
        files = write_files(root, total)
        md5sum = ["md5sum", *map(str, files)]
        subprocess.run(md5sum, check=True, stdout=subprocess.DEVNULL)  # warms the page cache for both

        def cold() -> None:
            fingerprint_files(files, root, None)

        t_cold, t_md5 = interleaved(cold, lambda: subprocess.run(md5sum, check=True, stdout=subprocess.DEVNULL),
                                    RUNS)
        cache = root / "statcache.json"
        first = fingerprint_files(files, root, cache)
        warm, t_warm = None, float("inf")
        for _ in range(RUNS):
            start = time.perf_counter()
            warm = fingerprint_files(files, root, cache)
            t_warm = min(t_warm, time.perf_counter() - start)
        assert warm.rehashed == 0 and warm.digest == first.digest, "the stat cache did not cover the re-run"
    finally:
        shutil.rmtree(root, ignore_errors=True)
    what = f"{FILES} files, {total} MiB"
    return [
        Line(f"raw fingerprint, cold, {what}", f"md5sum {seconds(t_md5)}", seconds(t_cold),
             f"{times(t_md5 / t_cold)} faster", "≥ 8× faster", t_md5 / t_cold >= 8),
        Line(f"unchanged re-run (stat cache warm), {what}", f"cold fingerprint {seconds(t_cold)}",
             f"{t_warm * 1e3:.2f} ms", f"{times(t_cold / t_warm)} faster", "≥ 50× faster", t_cold / t_warm >= 50),
    ]


if __name__ == "__main__":
    run_alone(measure, "mib")
