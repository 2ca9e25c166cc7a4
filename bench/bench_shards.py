"""Shard writing: ours vs webdataset.ShardWriter vs a plain sequential write of the same bytes, one run.

    .venv/bin/python -m bench.bench_shards

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

from dsm_assets.shards import _write_shard

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
        _write_shard(folder / f"s-{i:06d}.tar", iter(part))  # fsyncs each shard itself


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


def best_of(fn, data, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        folder = Path(tempfile.mkdtemp(prefix="dsm-bench-shards-"))
        start = time.perf_counter()
        fn(folder, data)
        times.append(time.perf_counter() - start)
        shutil.rmtree(folder)
    return min(times)


def main() -> None:
    print(f"{'samples':<16} {'ours s':>7} {'ShardWriter s':>14} {'plain s':>8} {'vs ShardWriter':>15} "
          f"{'vs plain':>9}  goal")
    for size, n in ((100_000, 1500), (1_000, 50_000)):
        data = samples(n, size)
        t_ours, t_sw, t_plain = (best_of(fn, data) for fn in (ours, shard_writer, plain))
        vs_sw, vs_plain = t_sw / t_ours, t_plain / t_ours
        label = f"{n} x {size // 1000} KB"
        goal = ""
        if size == 100_000:
            ok = vs_sw >= 2 and vs_plain >= 0.8
            goal = f"{'meets' if ok else 'MISSES'} (>= 2x ShardWriter, >= 0.8x plain)"
        print(f"{label:<16} {t_ours:7.3f} {t_sw:14.3f} {t_plain:8.3f} {vs_sw:14.2f}x {vs_plain:8.2f}x  {goal}")


if __name__ == "__main__":
    main()
