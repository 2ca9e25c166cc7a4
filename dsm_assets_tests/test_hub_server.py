"""The test Hub server driven by the real huggingface_hub and datasets clients.

huggingface_hub and datasets read HF_ENDPOINT / HF_HOME at import time, so in-process calls pass
`endpoint=` and `token=` explicitly, and `datasets.load_dataset` runs in a subprocess with its own env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    HfFileSystem,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

from .hub_server import HubServer, blob_sha

TOKEN = "hf_test_token_not_a_secret"
REPO = "dsm/hub-server-test"
PARQUET = "data/train-00000-of-00001.parquet"
README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: "data/train-*.parquet"
---
# A test dataset
"""
LOAD_SCRIPT = """
import json, sys
import datasets
repo, shas = sys.argv[1], sys.argv[2:]
print(json.dumps({sha: list(datasets.load_dataset(repo, revision=sha, split="train")["id"]) for sha in shas}))
"""


@pytest.fixture
def server() -> Iterator[HubServer]:
    with HubServer(token=TOKEN) as hub:
        yield hub


@pytest.fixture
def api(server: HubServer) -> HfApi:
    return HfApi(endpoint=server.url, token=TOKEN)


@pytest.fixture
def repo(api: HfApi) -> str:
    api.create_repo(REPO, repo_type="dataset", private=True)
    return REPO


def parquet_bytes(rows: int, *, offset: int = 0) -> bytes:
    table = pa.table({"id": pa.array(range(offset, offset + rows), pa.int64()),
                      "text": [f"row {i}" for i in range(offset, offset + rows)]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def publish(api: HfApi, rows: int, *, offset: int = 0, parent: str | None = None) -> str:
    ops = [CommitOperationAdd("README.md", README.encode()),
           CommitOperationAdd(PARQUET, parquet_bytes(rows, offset=offset))]
    return api.create_commit(REPO, ops, commit_message=f"{rows} rows", repo_type="dataset",
                             parent_commit=parent).oid


def test_create_repo_is_idempotent_with_exist_ok(server: HubServer, api: HfApi) -> None:
    url = api.create_repo(REPO, repo_type="dataset", private=True)
    assert url == f"{server.url}/datasets/{REPO}"
    assert api.create_repo(REPO, repo_type="dataset", exist_ok=True) == url
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(REPO, repo_type="dataset")
    assert exc.value.response.status_code == 409
    info = api.dataset_info(REPO)
    assert info.sha == server.branch_head(REPO) and len(info.sha) == 40
    assert info.private is True
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]


def test_commit_with_parent_and_stale_parent_gets_412(server: HubServer, api: HfApi, repo: str) -> None:
    initial = api.dataset_info(repo).sha
    first = publish(api, 5, parent=initial)
    assert server.branch_head(repo) == first != initial
    files = server.files_at(repo, first)
    assert files[PARQUET] == parquet_bytes(5) and files["README.md"] == README.encode()
    assert pq.read_table(pa.BufferReader(files[PARQUET])).num_rows == 5
    server.clear_log()
    assert publish(api, 5, parent=first) == first  # preupload's oid shows nothing changed: no commit is sent
    assert not any("/commit/" in path for _, path in server.requests)

    with pytest.raises(HfHubHTTPError) as exc:
        publish(api, 7, parent=initial)
    assert exc.value.response.status_code == 412
    assert "A commit has happened since" in str(exc.value)
    assert server.branch_head(repo) == first

    second = publish(api, 7, parent=first[:12])  # a short parent sha matches by prefix
    assert server.files_at(repo)[PARQUET] == parquet_bytes(7)
    api.create_commit(repo, [CommitOperationDelete("data/")], commit_message="drop data", repo_type="dataset",
                      parent_commit=second)
    assert sorted(server.files_at(repo)) == [".gitattributes", "README.md"]


def test_branches_and_tags(server: HubServer, api: HfApi, repo: str) -> None:
    sha = publish(api, 3)
    api.create_branch(repo, branch="feature/x", revision=sha, repo_type="dataset")
    api.create_tag(repo, tag="v1.0", revision=sha, repo_type="dataset", tag_message="first")
    refs = api.list_repo_refs(repo, repo_type="dataset")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": sha, "feature/x": sha}
    assert {(t.name, t.ref, t.target_commit) for t in refs.tags} == {("v1.0", "refs/tags/v1.0", sha)}
    assert api.dataset_info(repo, revision="refs/heads/feature/x").sha == sha
    assert api.dataset_info(repo, revision=sha[:7]).sha == sha

    with pytest.raises(HfHubHTTPError) as exc:
        api.create_branch(repo, branch="feature/x", repo_type="dataset")
    assert exc.value.response.status_code == 409
    api.delete_branch(repo, branch="feature/x", repo_type="dataset")
    assert [b.name for b in api.list_repo_refs(repo, repo_type="dataset").branches] == ["main"]

    newer = publish(api, 4, offset=3)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_tag(repo, tag="v1.0", revision=newer, repo_type="dataset")
    assert exc.value.response.status_code == 409
    api.create_tag(repo, tag="v1.0", revision=newer, repo_type="dataset", exist_ok=True)
    assert server.tags(repo) == {"v1.0": sha}
    api.delete_tag(repo, tag="v1.0", repo_type="dataset")
    assert server.tags(repo) == {}


def test_downloads_and_listings(server: HubServer, api: HfApi, repo: str, tmp_path: Path) -> None:
    sha = publish(api, 5)
    publish(api, 6, offset=5)
    path = hf_hub_download(repo, PARQUET, repo_type="dataset", revision=sha, endpoint=server.url, token=TOKEN,
                           cache_dir=tmp_path / "hf")
    assert Path(path).read_bytes() == parquet_bytes(5)
    snapshot = Path(snapshot_download(repo, repo_type="dataset", revision=sha, endpoint=server.url, token=TOKEN,
                                      cache_dir=tmp_path / "hf-snap"))
    assert snapshot.name == sha
    assert (snapshot / PARQUET).read_bytes() == parquet_bytes(5)
    assert (snapshot / "README.md").read_text() == README

    top = {e.path: type(e).__name__ for e in api.list_repo_tree(repo, revision=sha, repo_type="dataset")}
    assert top == {".gitattributes": "RepoFile", "README.md": "RepoFile", "data": "RepoFolder"}
    deep = {e.path for e in api.list_repo_tree(repo, revision=sha, recursive=True, repo_type="dataset")}
    assert deep == {".gitattributes", "README.md", "data", PARQUET}
    (entry,) = api.list_repo_tree(repo, "data", revision=sha, repo_type="dataset")
    assert (entry.path, entry.size, entry.blob_id) == (PARQUET, len(parquet_bytes(5)), blob_sha(parquet_bytes(5)))

    info = api.get_paths_info(repo, [PARQUET, "data", "missing.txt"], revision=sha, repo_type="dataset")
    assert {e.path: type(e).__name__ for e in info} == {PARQUET: "RepoFile", "data": "RepoFolder"}
    assert [c.title for c in api.list_repo_commits(repo, repo_type="dataset")] == ["6 rows", "5 rows",
                                                                                    "initial commit"]
    with HfFileSystem(endpoint=server.url, token=TOKEN).open(f"datasets/{repo}@{sha}/{PARQUET}", "rb") as f:
        f.seek(4)
        assert f.read(8) == parquet_bytes(5)[4:12]  # a Range request


def test_load_dataset_pins_the_revision(server: HubServer, api: HfApi, repo: str, tmp_path: Path) -> None:
    old = publish(api, 5)
    new = publish(api, 8, offset=100)
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_DATASETS_CACHE", "HF_HUB_CACHE"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, repo, new, old], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    assert ids[new] == list(range(100, 108))
    assert ids[old] == list(range(5))


def test_injected_429_on_preupload_is_retried_by_the_client(server: HubServer, api: HfApi, repo: str) -> None:
    server.inject(429, 2, method="POST", path_contains="/preupload/")
    server.clear_log()
    sha = publish(api, 2)
    assert server.branch_head(repo) == sha
    assert sum("/preupload/" in path for _, path in server.requests) == 3


def test_injected_500_on_commit_is_not_retried(server: HubServer, api: HfApi, repo: str) -> None:
    before = server.branch_head(repo)
    server.inject(500, 1, path_contains="/commit/")
    server.clear_log()
    with pytest.raises(HfHubHTTPError) as exc:
        publish(api, 2)
    assert exc.value.response.status_code == 500
    assert sum("/commit/" in path for _, path in server.requests) == 1
    assert server.branch_head(repo) == before
    assert publish(api, 2) == server.branch_head(repo)  # the fault was used up


def test_delay_and_clear_faults(server: HubServer, api: HfApi, repo: str) -> None:
    server.delay_seconds = 0.3
    server.inject(503, 5, method="DELETE")
    started = time.monotonic()
    api.dataset_info(repo)
    assert time.monotonic() - started >= 0.3
    server.clear_faults()
    assert server.delay_seconds == 0
    api.create_branch(repo, branch="dev", repo_type="dataset")
    api.delete_branch(repo, branch="dev", repo_type="dataset")


def test_wrong_token_gets_401(server: HubServer, repo: str, tmp_path: Path) -> None:
    wrong = HfApi(endpoint=server.url, token="hf_wrong")
    with pytest.raises(HfHubHTTPError) as exc:
        wrong.dataset_info(repo)
    assert exc.value.response.status_code == 401
    assert not isinstance(exc.value, RepositoryNotFoundError)
    with pytest.raises(HfHubHTTPError) as exc:
        hf_hub_download(repo, "README.md", repo_type="dataset", endpoint=server.url, token="hf_wrong",
                        cache_dir=tmp_path / "hf")
    assert exc.value.response.status_code == 401


def test_missing_repo_and_missing_file(server: HubServer, api: HfApi, repo: str, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("dsm/does-not-exist")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("dsm/does-not-exist", "README.md", repo_type="dataset", endpoint=server.url, token=TOKEN,
                        cache_dir=tmp_path / "hf")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "nope.txt", repo_type="dataset", endpoint=server.url, token=TOKEN,
                        cache_dir=tmp_path / "hf")


def test_standalone_entry_point() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "dsm_assets_tests.hub_server", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        with urllib.request.urlopen(f"{url}/api/whoami-v2", timeout=10) as response:
            assert json.load(response)["name"] == "hub-test-user"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
