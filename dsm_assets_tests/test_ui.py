"""The Dagster UI as a user sees it: real `dagster dev`, real Chromium (Debian's, driven by Playwright).

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

from dsm_assets.samples import install_samples

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


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


@pytest.fixture
def dagster_dev(tmp_path: Path) -> Iterator[str]:
    """`dagster dev` on a free loopback port, with a temp instance and a data dir holding the samples."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    install_samples(tmp_path / "data")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DSM_DATA_DIR": str(tmp_path / "data"),
           "DSM_OUTPUTS_DIR": str(tmp_path / "outputs")}
    port = free_port()
    log = open(tmp_path / "dagster-dev.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
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
                pytest.fail(f"dagster dev did not come up: {(tmp_path / 'dagster-dev.log').read_text()[-2000:]}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def wait_for_run(url: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    query = "{ runsOrError(limit: 1) { ... on Runs { results { runId status jobName } } } }"
    while time.monotonic() < deadline:
        runs = graphql(url, query)["runsOrError"]["results"]
        if runs and runs[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[0]
        time.sleep(2)
    pytest.fail("the run launched from the UI did not finish in time")


def test_a_user_materialises_a_dataset_from_the_ui(dagster_dev: str) -> None:
    ensure_chromium()
    from playwright.sync_api import expect, sync_playwright

    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)

        page.goto(f"{dagster_dev}/asset-groups", wait_until="networkidle")
        dismiss_welcome(page)
        for group in ("text_reviews", "chords", "shapes", "models"):
            expect(page.get_by_text(group, exact=True).first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "1-asset-graph.png")

        page.goto(f"{dagster_dev}/locations/dsm_assets/asset-groups/chords", wait_until="networkidle")
        dismiss_welcome(page)
        page.get_by_role("button", name="Materialize all").click()
        page.screenshot(path=ARTIFACTS / "2-launched.png")
        run = wait_for_run(dagster_dev)
        assert run["status"] == "SUCCESS", run
        page.goto(f"{dagster_dev}/runs/{run['runId']}", wait_until="networkidle")
        page.screenshot(path=ARTIFACTS / "3-run.png")

        page.goto(f"{dagster_dev}/assets/chords/published", wait_until="networkidle")
        dismiss_welcome(page)
        expect(page.get_by_text("v1.0", exact=True).first).to_be_visible()
        expect(page.get_by_text("commit", exact=True).first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "4-published.png", full_page=True)

        page.goto(f"{dagster_dev}/assets/chords/published?view=checks", wait_until="networkidle")
        dismiss_welcome(page)
        expect(page.get_by_text("round_trip").first).to_be_visible()
        expect(page.get_by_text("Passed").first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "5-checks.png", full_page=True)
        browser.close()
    assert sorted(p.name for p in ARTIFACTS.iterdir()) == [f"{i}-{n}.png" for i, n in enumerate(
        ["asset-graph", "launched", "run", "published", "checks"], start=1)]


def dismiss_welcome(page) -> None:
    """Dagster asks new browsers to join its community once; a user clicks Skip."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.click()
