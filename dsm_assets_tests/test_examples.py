"""examples/train.sbatch, run as a plain script on a machine with no network namespace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dsm_assets.registry import DEFAULT_REGISTRY

from .caching import cache_latest, publish_and_verify

SBATCH = Path(__file__).resolve().parent.parent / "examples" / "train.sbatch"


def run_job(data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DSM_DATA_DIR": str(data_dir), "DSM_REGISTRY": str(DEFAULT_REGISTRY),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("SLURM_JOB_ID", None)
    return subprocess.run(["unshare", "--net", "bash", str(SBATCH), "text_reviews"], env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_job_refuses_to_train_without_a_ready_cache(data_dir):
    done = run_job(data_dir)
    assert done.returncode == 1
    assert "text_reviews: missing: no cache in" in done.stderr and "not training" in done.stderr
    assert "training on" not in done.stdout


def test_the_job_trains_offline_once_the_cache_is_ready(data_dir, shipped):
    p = publish_and_verify(shipped.get("text_reviews"), data_dir)
    cache_latest(p, data_dir)
    done = run_job(data_dir)
    assert done.returncode == 0, done.stderr
    assert f"training on text_reviews: {p.outcome.rows} rows" in done.stdout
