"""Shard writing: ours vs webdataset.ShardWriter vs a plain sequential write of the same bytes, one run.

    .venv/bin/python -m bench.bench_shards [--quick]

Goal, for 100 KB samples: >= 2x ShardWriter's throughput and >= 0.8x the plain write's. Every writer gets
the same samples (a small json and a random payload each) and writes 8 shards' worth into a fresh
directory; each writer's files are fsynced before the clock stops, since ours fsyncs for durability."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import webdataset as wds

from bench.common import Line, progress, run_alone, seconds, times
from dsm_assets.shards.tar import write_shard

SHARDS = 8


def samples(n: int, size: int) -> list[tuple[str, list[tuple[str, bytes]]]]:
    rng = random.Random(size)
    return [(f"sample{i:09d}", [("json", b'{"id": %d}' % i), ("bin", rng.randbytes(size))]) for i in range(n)]


def chunks(items: list, parts: int) -> list[list]:
    return [items[len(items) * i // parts: len(items) * (i + 1) // parts] for i in range(parts)]


def fsync_all(folder: Path) -> None:
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def ours(folder: Path, data) -> None:
    for i, part in enumerate(chunks(data, SHARDS)):
        write_shard(folder / f"s-{i:06d}.tar", iter(part))  # fsyncs each shard itself


def shard_writer(folder: Path, data) -> None:
    with wds.ShardWriter(str(folder / "s-%06d.tar"), maxcount=len(data) // SHARDS + 1, verbose=0) as sink:
        for key, files in data:
            sink.write({"__key__": key, **dict(files)})
    fsync_all(folder)


def plain(folder: Path, data) -> None:
    for i, part in enumerate(chunks(data, SHARDS)):
        with open(folder / f"s-{i:06d}.bin", "wb") as f:
            for _, files in part:
                for _, payload in files:
                    f.write(payload)
    fsync_all(folder)


def best_of(writers, data, runs: int = 5) -> list[float]:
    """Each writer's best time of `runs`, the writers taking turns (the machine is shared)."""
    times = [float("inf")] * len(writers)
    for _ in range(runs):
        for i, fn in enumerate(writers):
            folder = Path(tempfile.mkdtemp(prefix="dsm-bench-shards-"))
            start = time.perf_counter()
            fn(folder, data)
            times[i] = min(times[i], time.perf_counter() - start)
            shutil.rmtree(folder)
    return times


def measure(quick: bool = False) -> list[Line]:
    n, size = (500 if quick else 1500), 100_000
    progress(f"shards: {n} x {size // 1000} KB samples, best of 5: ours, webdataset.ShardWriter, plain write")
    data = samples(n, size)
    t_ours, t_sw, t_plain = best_of((ours, shard_writer, plain), data)
    what = f"{n} × {size // 1000} KB samples, {SHARDS} shards"
    return [
        Line(f"shard writing vs webdataset.ShardWriter, {what}", f"ShardWriter {seconds(t_sw)}", seconds(t_ours),
             times(t_sw / t_ours), "≥ 2×", t_sw / t_ours >= 2),
        Line(f"shard writing vs plain write of the same bytes, {what}", f"plain write {seconds(t_plain)}",
             seconds(t_ours), times(t_plain / t_ours), "≥ 0.8×", t_plain / t_ours >= 0.8),
    ]


if __name__ == "__main__":
    run_alone(measure)
