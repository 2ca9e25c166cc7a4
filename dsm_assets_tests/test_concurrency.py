"""Two runs materialise the same dataset at once: the remote's compare-and-swap decides. One new version,
no corruption; the other run no-ops (it saw the new version) or fails cleanly (it lost the race)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dsm_assets.contenthash import hash_table
from dsm_assets.remotes.local import LocalRemote

from .caching import edit_chords

ROOT = Path(__file__).resolve().parent.parent


def materialize(env: dict[str, str], select: str) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "dagster"
    return subprocess.Popen([str(exe), "asset", "materialize", "-m", "dsm_assets.definitions", "--select", select],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_concurrent_runs_make_exactly_one_new_version(tmp_path, data_dir):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DSM_DATA_DIR": str(data_dir)}
    select = "chords/cleaned,chords/published"
    first = materialize(env, select)
    assert first.wait(timeout=300) == 0, first.stdout.read()[-3000:]
    edit_chords(data_dir, 2)
    runs = [materialize(env, select) for _ in range(2)]
    outputs = [(run.wait(timeout=300), run.stdout.read()) for run in runs]
    remote = LocalRemote(data_dir / "remote" / "dsm" / "chords")
    assert sorted(remote.tags()) == ["v1.0", "v1.1"]  # exactly one new version
    for code, out in outputs:
        assert code == 0 or "another writer published first" in out, out[-3000:]
    assert any(code == 0 for code, _ in outputs)
    v11 = remote.tags()["v1.1"]
    info = __import__("json").loads(remote.read_file(v11, "dsm.json"))
    assert hash_table(remote.load_table(v11)) == info["content_hash"]  # no corruption
    assert remote.head() == v11
