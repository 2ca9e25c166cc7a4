"""A small run launched as the UI launches it: end-to-end time against the step's own compute time, under
the multiprocess executor (Dagster's default, the "before") and the in-process one (ours for `make dev`).

    .venv/bin/python -m bench.bench_ui_run [--quick]

Real `dagster dev` (webserver + daemon, queued run coordinator, a run worker process per run) on a free
loopback port, with a one-dataset registry whose CSV is generated so that cleaning takes about a second.
Each run is launched through the webserver's GraphQL `launchPipelineExecution`, the mutation the UI's
Materialize button sends, for `bench_text/cleaned` alone; a row is appended first so the step really
cleans. End-to-end is the run's creation to its end (the instance's own timestamps), compute is the step's
start to end. Best of 3 per setup. "Before" is Dagster's defaults (multiprocess executor, the daemon polling
its run queue every 5 s); "make dev" is the DAGSTER_HOME `dsm_assets.dagster_home` seeds (queue polled every
second) and the in-process executor. Goal: a ~1 s step finishes within 10 s end to end."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from bench.common import Line, progress, run_alone, seconds, times
from dsm_assets.dagster_home import prepare

ROOT = Path(__file__).resolve().parent.parent
ASSET = ["bench_text", "cleaned"]
STEP = "clean_bench_text"
LAUNCH = """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status creationTime startTime endTime
  stepStats { stepKey startTime endTime } } } }"""


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def write_dataset(root: Path, rows: int) -> tuple[Path, Path]:
    """A text_reviews-shaped CSV of `rows` rows and a registry naming it. Returns (data dir, registry)."""
    raw = root / "data" / "raw" / "bench_text" / "reviews.csv"
    raw.parent.mkdir(parents=True)
    rng = random.Random(0)
    words = ["good", "bad", "fine", "great", "poor", "okay", "solid", "weak", "fast", "slow", "cheap", "sturdy"]
    labels = ["positive", "negative", "neutral"]
    with raw.open("w") as f:
        f.write("id,text,label\n")
        for i in range(rows):
            text = " ".join(rng.choices(words, k=rng.randint(8, 60)))
            f.write(f"{i},{text} {i},{labels[i % 3]}\n")
    registry = root / "registry.yaml"
    registry.write_text(yaml.safe_dump({"version": 1, "datasets": [{
        "name": "bench_text", "use": "benchmark", "source": {"path": "raw/bench_text/*.csv", "format": "csv"},
        "schema": {"id": "int64", "text": "string", "label": "string"},
        "cleaning": {"dedupe_key": ["text"], "required": ["text", "label"],
                     "labels": {"column": "label", "allowed": labels}},
    }]}, sort_keys=False))
    return root / "data", registry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dagster_dev(root: Path, data: Path, registry: Path, executor: str) -> tuple[subprocess.Popen, str]:
    home = root / f"home-{executor}"
    if executor == "in_process":  # ours: the DAGSTER_HOME `make dev` seeds
        prepare(home)
    else:  # before: Dagster's defaults, telemetry off as the project always had
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DSM_DATA_DIR": str(data), "DSM_REGISTRY": str(registry),
           "DSM_OUTPUTS_DIR": str(root / "outputs"), "DSM_EXECUTOR": executor}
    port = free_port()
    log = (root / f"dagster-dev-{executor}.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            entries = graphql(url, query)["workspaceOrError"]["locationEntries"]
            if [e["loadStatus"] for e in entries] == ["LOADED"]:
                return proc, url
        except OSError:
            pass
        time.sleep(1)
    stop(proc)
    raise RuntimeError(f"dagster dev did not come up; see {log.name}")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def one_run(url: str, raw: Path, n: int) -> tuple[float, float]:
    """Launch the cleaned asset as the UI does; (end-to-end, step compute) in seconds."""
    with raw.open("a") as f:
        f.write(f"{10**9 + n},a brand new review number {n},positive\n")
    params = {"selector": {"repositoryLocationName": "dsm_assets", "repositoryName": "__repository__",
                           "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": ASSET}],
                           "assetCheckSelection": []},
              "mode": "default", "executionMetadata": {"tags": []}}
    launched = graphql(url, LAUNCH, {"p": params})["launchPipelineExecution"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launch failed: {launched}")
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        run = graphql(url, RUN, {"id": run_id})["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            if run["status"] != "SUCCESS":
                raise RuntimeError(f"run {run_id} ended {run['status']}")
            [step] = [s for s in run["stepStats"] if s["stepKey"] == STEP]
            return run["endTime"] - run["creationTime"], step["endTime"] - step["startTime"]
        time.sleep(0.2)
    raise RuntimeError(f"run {run_id} did not finish in 300 s")


def measure_executor(root: Path, data: Path, registry: Path, executor: str, runs: int) -> tuple[float, float]:
    proc, url = start_dagster_dev(root, data, registry, executor)
    try:
        results = [one_run(url, data / "raw" / "bench_text" / "reviews.csv", i) for i in range(runs)]
    finally:
        stop(proc)
    best = min(results)  # the least disturbed run
    progress(f"ui run, {executor}: " + ", ".join(f"{e:.1f} s for a {c:.2f} s step" for e, c in results))
    return best


def measure(quick: bool = False) -> list[Line]:
    rows, runs = (40_000, 2) if quick else (80_000, 3)
    root = Path(tempfile.mkdtemp(prefix="dsm-bench-ui-"))
    try:
        data, registry = write_dataset(root, rows)
        progress(f"ui run: {rows} rows, dagster dev with the multiprocess executor, then in-process")
        before = measure_executor(root, data, registry, "multiprocess", runs)
        after = measure_executor(root, data, registry, "in_process", runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    line = f"UI-launched single-asset run (cleaning {rows:,} rows), end-to-end vs the step's compute"
    return [
        Line(line + ", Dagster's defaults: multiprocess executor, 5 s queue (before)",
             f"step {seconds(before[1])}", seconds(before[0]), times(before[0] / before[1]), "report only", True),
        Line(line + ", make dev: in-process executor, 1 s queue", f"step {seconds(after[1])}", seconds(after[0]),
             times(after[0] / after[1]), "≤ 10 s end to end", after[0] <= 10),
    ]


if __name__ == "__main__":
    run_alone(measure)
