"""`python -m dsm_assets.demo` (what `make demo` runs), twice, in a fresh data dir and Dagster home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsm_assets.demo"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parent.parent)


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in directory.rglob("*") if p.is_file()}


def test_demo_twice_then_one_edited_row(tmp_path):
    env = {**os.environ, "DSM_DATA_DIR": str(tmp_path / "data"), "DSM_OUTPUTS_DIR": str(tmp_path / "outputs")}
    env.pop("DAGSTER_HOME", None)  # the demo defaults it to <outputs>/dagster_home
    env.pop("DSM_REGISTRY", None)
    first = run_demo(env)
    assert first.returncode == 0, first.stderr[-3000:]
    clean = tmp_path / "data" / "clean"
    before = snapshot(clean)
    second = run_demo(env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert snapshot(clean) == before
    names = ("text_reviews ", "chords ", "shapes ", "chord_tones ")
    table = lambda out: [ln.split()[:3] for ln in out.splitlines() if ln.startswith(names)]  # noqa: E731
    assert table(first.stdout) == table(second.stdout) and len(table(first.stdout)) == 4
    assert "11/11 passed" in second.stdout and "12/12 passed" in second.stdout
    assert first.stdout.count("v1.0 (new)") == 4 and second.stdout.count("v1.0 (unchanged)") == 4
    raw = tmp_path / "data" / "raw" / "chords" / "chords.jsonl"
    lines = raw.read_text().splitlines(keepends=True)
    raw.write_text(lines[0].replace('"tempo": ', '"tempo": 1') + "".join(lines[1:]))  # edit one raw row
    third = run_demo(env)
    assert third.returncode == 0, third.stderr[-3000:]
    row = lambda name: next(r for r in third.stdout.splitlines() if r.startswith(f"{name} "))  # noqa: E731
    assert "v1.1 (new)" in row("chords") and "v1.0 (unchanged)" in row("text_reviews")
    assert "make dev" in second.stdout and "http://127.0.0.1:3000" in second.stdout
    assert (tmp_path / "outputs" / "dagster_home" / "dagster.yaml").exists()
