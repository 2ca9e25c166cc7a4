"""What every benchmark returns (Lines: a ratio against a baseline measured in the same run) and the
helpers they share: timing, progress on stderr, and the one table `python -m bench` prints."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Line:
    line: str  # what is measured
    baseline: str  # the baseline and its measurement, e.g. "md5sum 1.52 s"
    ours: str  # our measurement, e.g. "0.17 s"
    ratio: str  # e.g. "8.9× faster", "0.81×", "2.0 %"
    goal: str  # e.g. "≥ 8× faster"
    meets: bool


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def interleaved(ours: Callable[[], object], baseline: Callable[[], object], runs: int) -> tuple[float, float]:
    """Best of `runs` for each (the run least disturbed by the shared machine), taking turns, so a busy
    spell hits both alike."""
    t_ours, t_base = [], []
    for _ in range(runs):
        t_ours.append(timed(ours)[1])
        t_base.append(timed(baseline)[1])
    return min(t_ours), min(t_base)


def seconds(t: float) -> str:
    return f"{t:.3f} s" if t < 10 else f"{t:.1f} s"


def times(ratio: float) -> str:
    """A ratio to 3 significant digits (0.799×, 2.69×, 429×), so a near miss does not print as the goal."""
    return f"{ratio:.3g}×"


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f} MiB"


def markdown_table(lines: list[Line]) -> str:
    rows = [["line", "baseline", "ours", "ratio", "goal", "meets"], ["---"] * 6]
    rows += [[x.line, x.baseline, x.ours, x.ratio, x.goal, "meets" if x.meets else "MISSES"] for x in lines]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def run_alone(measure: Callable[..., list[Line]], *int_options: str) -> None:
    """One benchmark on its own (`python -m bench.bench_x [--quick] [--<option> N]`): its lines as a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    for option in int_options:
        parser.add_argument(f"--{option}", type=int)
    print(markdown_table(measure(**vars(parser.parse_args()))))


def vm(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) in bytes; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def own_peak_rss() -> int:
    """This process's peak RSS: VmHWM, not getrusage's ru_maxrss, which Linux carries over from the parent
    into a child at exec (a child's own peak is what the memory lines report)."""
    return vm(os.getpid(), "VmHWM")


def run_child(args: list[str], what: str, env: dict[str, str] | None = None) -> dict:
    """Run `python <args>` as a child process and return the JSON object it prints last on stdout; progress
    (its current RSS) every 20 s. A child that fails ends the bench with its exit status: a broken hop is
    never reported as a number."""
    child = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, **(env or {})})
    start = time.monotonic()
    while child.poll() is None:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            progress(f"  {what}: {time.monotonic() - start:.0f} s, child RSS {mib(vm(child.pid, 'VmRSS'))}")
    out = child.stdout.read()
    if child.returncode != 0:
        sys.exit(f"bench: {what} failed in its child process (exit {child.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def fsync_all(folder: Path) -> None:
    """fsync every file in `folder`: a writer's time includes getting its files to disk (ours fsyncs shards)."""
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
