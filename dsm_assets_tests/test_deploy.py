"""deploy/: the sample graph through Postgres instance storage and Celery workers on a Redis broker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
import yaml

from dsm_assets.defs.executor import celery_config_source
from dsm_assets.samples import install_samples

from .caching import edit_chords
from .deployment import ensure_packages, postgres, redis, start_worker, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent


def dagster_job(job: str, env: dict[str, str]) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "dagster"
    return subprocess.Popen([str(exe), "job", "execute", "-m", "dsm_assets.definitions", "-j", job], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def sql(pg: dict[str, str], query: str, *args) -> list[tuple]:
    with psycopg2.connect(host=pg["DAGSTER_PG_HOST"], port=pg["DAGSTER_PG_PORT"], user="dagster",
                          dbname=pg["DAGSTER_PG_DB"]) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """Postgres + Redis + two celery workers; yields (env for dagster commands, pg env, worker procs)."""
    ensure_packages()
    with postgres() as pg, redis() as broker:
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
        data = tmp_path / "data"
        install_samples(data)
        env = {**os.environ, **pg, "DAGSTER_HOME": str(home), "DSM_DATA_DIR": str(data),
               "DSM_OUTPUTS_DIR": str(tmp_path / "outputs"), "DSM_CELERY_BROKER": f"{broker}/0",
               "DSM_CELERY_BACKEND": f"{broker}/1",
               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # dagster-celery runs `celery`
               "DSM_CELERY_VISIBILITY_TIMEOUT": "20"}  # a killed worker's task comes back after 20 s
        monkeypatch.setenv("DSM_CELERY_VISIBILITY_TIMEOUT", "20")  # for celery_config_source() below
        config = tmp_path / "worker.yaml"
        config.write_text(yaml.safe_dump({"execution": {"config": {
            "broker": f"{broker}/0", "backend": f"{broker}/1", "config_source": celery_config_source()}}}))
        workers = [start_worker(f"w{i}", config, env, tmp_path / f"worker{i}.log") for i in (1, 2)]
        try:
            for i in (1, 2):
                wait_ready(tmp_path / f"worker{i}.log")
            yield env, pg, workers, data
        finally:
            for w in workers:
                stop(w)


def run_ok(job: str, env: dict[str, str]) -> str:
    proc = dagster_job(job, env)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    return out


def test_the_sample_graph_runs_on_postgres_and_celery_and_survives_a_killed_worker(deployment):
    env, pg, workers, data = deployment
    run_ok("observe_raw", env)
    run_ok("materialize_all", env)
    runs = sql(pg, "select run_id, status from runs order by create_timestamp")
    assert [status for _, status in runs] == ["SUCCESS", "SUCCESS"]
    materialized = {row[0] for row in sql(pg, "select distinct asset_key from event_logs "
                                              "where dagster_event_type = 'ASSET_MATERIALIZATION'")}
    expected = {f'["{d}", "{hop}"]' for d in ("text_reviews", "chords", "shapes", "chord_tones")
                for hop in ("cleaned", "published", "cache", "shards")} | {'["models", "sentiment"]'}
    assert expected <= materialized
    celery_steps = sql(pg, "select count(*) from event_logs where run_id = %s and event like %s",
                       runs[-1][0], "%celery%")
    assert celery_steps[0][0] > 0  # the steps went through the celery executor

    edit_chords(data, 5)  # new work for the next run
    run_ok("observe_raw", env)
    proc = dagster_job("materialize_all", env)
    deadline = time.monotonic() + 120
    while not sql(pg, "select 1 from event_logs e join runs r on e.run_id = r.run_id where r.status = 'STARTED' "
                      "and e.dagster_event_type = 'STEP_START' limit 1"):
        assert time.monotonic() < deadline, "the run never started a step"
        time.sleep(0.2)
    stop(workers[0], signal.SIGKILL)  # a worker dies mid-run
    out, _ = proc.communicate(timeout=600)
    [(run_id, status)] = sql(pg, "select run_id, status from runs order by create_timestamp desc limit 1")
    assert status in ("SUCCESS", "FAILURE"), out[-3000:]  # finished or failed cleanly, never lost
    events = sql(pg, "select count(*) from event_logs where run_id = %s", run_id)[0][0]
    assert events > 0
    if status == "SUCCESS":
        published = sql(pg, "select count(*) from event_logs where run_id = %s and dagster_event_type = "
                            "'ASSET_MATERIALIZATION' and asset_key = %s", run_id, '["chords", "published"]')
        assert published[0][0] == 1
