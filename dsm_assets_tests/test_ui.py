"""The Dagster UI as a user sees it after `make demo` and `make dev`: real `dagster dev`, real Chromium (Debian's,
driven by Playwright).

Screenshots are saved to outputs/test-artifacts/ui/ for a human to look at."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsm_assets.dagster_home import prepare

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "outputs" / "test-artifacts" / "ui"
# As root in a container Chromium needs --no-sandbox; the rest keeps it off the (closed) network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


def ensure_chromium() -> None:
    """Install Debian's Chromium when it is missing (never skip: the browser test is part of the suite)."""
    if Path(CHROMIUM).exists():
        return
    steps = [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            pytest.fail(f"Chromium is missing and `{' '.join(step)}` failed: {done.stderr.strip()[-300:]}; "
                        "install the Debian package 'chromium' (as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """As a new user: `make demo` (python -m dsm_assets.demo), then `make dev` (the seeded home, `dagster dev` on
    a free loopback port). Yields the UI's URL, the data dir and the `dagster dev` log."""
    root = tmp_path_factory.mktemp("ui")
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster_home"), "DSM_DATA_DIR": str(root / "data"),
           "DSM_OUTPUTS_DIR": str(root / "outputs"), "PYTHONWARNINGS": "ignore:Function `dev_command` is superseded"}
    demo = subprocess.run([sys.executable, "-m", "dsm_assets.demo"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr[-3000:]
    prepare(root / "dagster_home")  # as `make dev` does before it starts dagster dev
    port = free_port()
    log_path = root / "dagster-dev.log"
    log = log_path.open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                entries = graphql(url, "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }")
                if [e["loadStatus"] for e in entries["workspaceOrError"]["locationEntries"]] == ["LOADED"]:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dagster dev did not come up: {log_path.read_text()[-2000:]}")
            time.sleep(1)
        yield url, root / "data", log_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.copy(log_path, ARTIFACTS / "dagster-dev.log")


RUNS = """query($after: Float) { runsOrError(filter: {createdAfter: $after}) { ... on Runs { results {
  runId status jobName tags { key value } } } } }"""
LATEST = """query($path: [String!]!) { assetOrError(assetKey: {path: $path}) { ... on Asset {
  assetMaterializations(limit: 1) { runId metadataEntries { label
    ... on TextMetadataEntry { text } ... on PathMetadataEntry { path } ... on IntMetadataEntry { intValue } } }
  assetObservations(limit: 1) { timestamp } } } }"""
SENSOR = """query($name: String!) { sensorOrError(sensorSelector: {repositoryLocationName: "dsm_assets",
  repositoryName: "__repository__", sensorName: $name}) { ... on Sensor { sensorState { status } } } }"""


def runs_since(url: str, after: float) -> list[dict]:
    return graphql(url, RUNS, {"after": after})["runsOrError"]["results"]


def wait_for_run(url: str, after: float, job: str, timeout: float = 300) -> dict:
    """The run of `job` created after `after`, once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in runs_since(url, after) if r["jobName"] == job]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[0]
        time.sleep(2)
    pytest.fail(f"no finished run of {job} in {timeout:.0f} s: {runs_since(url, after)}")


def latest(url: str, path: list[str]) -> tuple[dict, float]:
    """The asset's latest materialization metadata (label → value) and its latest observation time."""
    asset = graphql(url, LATEST, {"path": path})["assetOrError"]
    [mat] = asset["assetMaterializations"] or [{"metadataEntries": []}]
    values = {e["label"]: e.get("text") or e.get("path") or e.get("intValue") for e in mat["metadataEntries"]}
    observed = asset["assetObservations"]
    return values, float(observed[0]["timestamp"]) / 1000 if observed else 0.0


def wait_until(what: str, test, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(3)


def browser(p):
    b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = b.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(60_000)
    return b, page


def test_a_user_materialises_a_dataset_from_the_ui(ui: tuple[str, Path, Path]) -> None:
    url, _, _ = ui
    ensure_chromium()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        b, page = browser(p)
        page.goto(f"{url}/asset-groups", wait_until="networkidle")
        assert page.get_by_role("button", name="Skip").count() == 0  # no welcome modal on a seeded home
        for group in ("text_reviews", "chords", "shapes", "chord_tones", "models"):
            expect(page.get_by_text(group, exact=True).first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "1-asset-graph.png")

        page.goto(f"{url}/locations/dsm_assets/asset-groups/chords", wait_until="networkidle")
        started = time.time()
        page.get_by_role("button", name="Materialize all").click()
        page.screenshot(path=ARTIFACTS / "2-launched.png")
        run = wait_for_run(url, started - 1, "__ASSET_JOB")
        assert run["status"] == "SUCCESS", run
        page.goto(f"{url}/runs/{run['runId']}", wait_until="networkidle")
        expect(page.get_by_text("publish_chords").first).to_be_visible()  # steps named for what they do
        page.screenshot(path=ARTIFACTS / "3-run.png")

        page.goto(f"{url}/assets/chords/published", wait_until="networkidle")
        expect(page.get_by_text("v1.0", exact=True).first).to_be_visible()
        expect(page.get_by_text("commit", exact=True).first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "4-published.png", full_page=True)

        page.goto(f"{url}/assets/chords/published?view=checks", wait_until="networkidle")
        expect(page.get_by_text("round_trip").first).to_be_visible()
        expect(page.get_by_text("Passed").first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "5-checks.png", full_page=True)
        b.close()


def test_new_raw_data_becomes_a_new_version_and_a_retrained_model_by_itself(ui: tuple[str, Path, Path]) -> None:
    """Edit a raw file; the raw_files sensor observes it; one click on the publish_new_data job publishes v1.1;
    the automation (running from the start, nobody toggled it) refreshes cache, shards and the model."""
    url, data, log = ui
    ensure_chromium()
    from playwright.sync_api import expect, sync_playwright

    from .test_model_assets import edit_text_reviews

    for sensor in ("dsm_automation", "raw_files"):
        assert graphql(url, SENSOR, {"name": sensor})["sensorOrError"]["sensorState"]["status"] == "RUNNING"
    with sync_playwright() as p:
        b, page = browser(p)
        page.goto(f"{url}/automation", wait_until="networkidle")
        expect(page.get_by_text("dsm_automation").first).to_be_visible()
        expect(page.get_by_text("raw_files").first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "6-automation-running.png")

        edited = time.time()
        edit_text_reviews(data)
        wait_until("the raw_files sensor to observe the edit",
                   lambda: latest(url, ["text_reviews", "raw"])[1] > edited)
        page.goto(f"{url}/locations/dsm_assets/asset-groups/text_reviews", wait_until="networkidle")
        expect(page.get_by_text("Unsynced").first).to_be_visible()  # cleaned is behind the observed raw files
        page.screenshot(path=ARTIFACTS / "7-raw-observed.png")

        page.goto(f"{url}/locations/dsm_assets/jobs/publish_new_data", wait_until="networkidle")
        clicked = time.time()
        page.get_by_role("button", name="Materialize all").click()
        page.screenshot(path=ARTIFACTS / "8-publish-launched.png")
        run = wait_for_run(url, clicked - 1, "publish_new_data")
        assert run["status"] == "SUCCESS", run
        published, _ = latest(url, ["text_reviews", "published"])
        assert published["version"] == "v1.1"

        wait_until("automation to retrain the model on v1.1",
                   lambda: latest(url, ["models", "sentiment"])[0].get("dataset_version") == "v1.1")
        model, _ = latest(url, ["models", "sentiment"])
        shards, _ = latest(url, ["text_reviews", "shards"])
        assert model["dataset_commit"] == published["commit"]
        assert model["shards_manifest_hash"] == shards["manifest_hash"]
        automated = [r for r in runs_since(url, clicked) if {"key": "dsm/trigger", "value": "automation"} in r["tags"]]
        assert automated and all(r["status"] == "SUCCESS" for r in automated), automated

        page.set_viewport_size({"width": 1600, "height": 2400})
        page.goto(f"{url}/assets/models/sentiment", wait_until="networkidle")
        expect(page.get_by_text("v1.1", exact=True).first).to_be_visible()
        expect(page.get_by_text(published["commit"]).first).to_be_visible()
        expect(page.get_by_text(shards["manifest_hash"]).first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "9-model-lineage.png")
        page.set_viewport_size({"width": 1600, "height": 1000})
        page.goto(f"{url}/runs", wait_until="networkidle")
        page.screenshot(path=ARTIFACTS / "10-runs.png")
        b.close()
    warnings = [line for line in log.read_text().splitlines() if "Warning" in line]
    assert warnings == [], warnings  # `make dev` starts, runs and automates without avoidable warnings
    names = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert names == sorted(f"{i}-{n}.png" for i, n in enumerate(
        ["asset-graph", "launched", "run", "published", "checks", "automation-running", "raw-observed",
         "publish-launched", "model-lineage", "runs"], start=1))
