"""The Hub's real upload paths against the loopback server in LFS mode: Git LFS end to end (what the server
received, byte for byte), and Xet failing cleanly where the server offers no Xet storage."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dsm_assets.contenthash import hash_table
from dsm_assets.errors import RemoteError
from dsm_assets.layout import DATA_PATH, INFO_PATH
from dsm_assets.publishing import publish_cleaned

from .conftest import csv_entry, spec_from
from .servers import HUB_TOKEN, cleaned_file, table_of, unique
from .test_remote_hub import hub_remote

SMALL = ("README.md", INFO_PATH)  # regular files: sent in the commit body


@pytest.fixture(autouse=True)
def _quick_xet_retries(monkeypatch):
    """hf_xet retries a failing token request on its own for minutes by default; these tests need seconds."""
    monkeypatch.setenv("HF_XET_CLIENT_RETRY_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("HF_XET_CLIENT_RETRY_MAX_DURATION", "5s")


@pytest.fixture
def spec(tmp_path):
    return spec_from(tmp_path, csv_entry(name="transfer"))


def test_lfs_publish_sends_each_large_byte_once_and_reports_what_was_sent(hub_server, spec, tmp_path):
    # before: bytes_uploaded was 2 x the files' size whatever was sent, and no test took the LFS path
    hub = hub_server
    remote = hub_remote(hub, tmp_path, transfer="lfs")
    ref = cleaned_file(tmp_path / "a.parquet", table_of(5000))
    hub.clear_received()
    first = publish_cleaned(spec, remote, ref, data_dir=tmp_path / "data")
    parquet = ref.path.stat().st_size
    assert hub.received["lfs"] == parquet  # one PUT: the promotion commit found the object stored
    files = hub.files_at(remote.repo_id, "v1.0")
    small = sum(len(files[p]) for p in SMALL)
    assert first.bytes_uploaded == parquet + 2 * small  # the small files go in the staging and the main commit
    [info] = remote.api.get_paths_info(remote.repo_id, [DATA_PATH], revision="v1.0", repo_type="dataset")
    assert info.lfs is not None and info.lfs.size == parquet  # stored as an LFS object, not a regular file
    hub.clear_received()
    again = publish_cleaned(spec, remote, ref, data_dir=tmp_path / "data")
    assert (again.new, again.bytes_uploaded, hub.received["lfs"]) == (False, 0, 0)


def test_an_lfs_published_version_reads_back_through_the_unmodified_clients(hub_server, spec, tmp_path):
    remote = hub_remote(hub_server, tmp_path, transfer="lfs")
    table = table_of(300)
    published = publish_cleaned(spec, remote, cleaned_file(tmp_path / "a.parquet", table), data_dir=tmp_path / "d")
    assert hash_table(remote.load_table(published.commit)) == hash_table(table)  # datasets.load_dataset
    script = ("import sys; from huggingface_hub import snapshot_download; print(snapshot_download(sys.argv[1], "
              "repo_type='dataset', revision='v1.0', cache_dir=sys.argv[2]))")
    env = {"HF_ENDPOINT": hub_server.url, "HF_TOKEN": HUB_TOKEN, "HF_HUB_DISABLE_TELEMETRY": "1",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script, remote.repo_id, str(tmp_path / "snap")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    folder = done.stdout.strip().splitlines()[-1]
    assert pq.read_table(f"{folder}/{DATA_PATH}").equals(pa.Table.from_batches(table.to_batches()))


@pytest.mark.parametrize("status", [503, 401])
def test_xet_without_a_write_token_is_one_line_and_promotes_nothing(hub_server, spec, tmp_path, status,
                                                                   monkeypatch):
    # before: a builtin ConnectionError from hf_xet escaped as a traceback
    pytest.importorskip("hf_xet")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)  # conftest turned Xet off for the other tests
    hub = hub_server
    lfs = hub_remote(hub, tmp_path, transfer="lfs")
    v10 = publish_cleaned(spec, lfs, cleaned_file(tmp_path / "a.parquet", table_of(10)), data_dir=tmp_path / "d")
    xet = hub_remote(hub, tmp_path, repo=lfs.repo_id, transfer="xet")
    hub.xet_token_status = status
    hub.clear_log()
    with pytest.raises(RemoteError) as raised:
        publish_cleaned(spec, xet, cleaned_file(tmp_path / "b.parquet", table_of(20)), data_dir=tmp_path / "d")
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{xet.url}: ") and HUB_TOKEN not in message
    assert hub.tags(lfs.repo_id) == {"v1.0": v10.commit}
    tokens = [r for r in hub.requests if "/xet-write-token/" in r[1]]
    assert 1 <= len(tokens) <= 6  # bounded: hf_xet's own few retries, not ours on top, not forever


def test_300_shards_publish_in_commits_of_100_under_one_tag_and_read_back(hub_server, tmp_path):
    # before: every shard went into one commit (the Hub advises at most ~100 files per commit)
    import webdataset as wds
    from huggingface_hub import snapshot_download

    from dsm_assets.cache import refresh_cache
    from dsm_assets.cleaning import clean_dataset
    from dsm_assets.remotes import RemoteSettings, open_remote
    from dsm_assets.shard_publishing import publish_shards
    from dsm_assets.shards import write_shards

    from .conftest import write_raw

    hub = hub_server
    repo = f"dsm/{unique('many')}"
    spec = spec_from(tmp_path, csv_entry(name="many", remote={"kind": "hub", "repo": repo, "transfer": "lfs"},
                                         shards={"count": 300}))
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", "id,text,label\n" + "".join(f"{i},text {i},{'ab'[i % 2]}\n" for i in range(600)))
    settings = RemoteSettings(hf_endpoint=hub.url, hf_token=HUB_TOKEN, backoff_seconds=0.01, max_tries=3)
    remote = open_remote(spec, data_dir=data, settings=settings)
    cleaned = clean_dataset(spec, data)
    out = publish_cleaned(spec, remote, cleaned,
                          data_dir=data)
    cached = refresh_cache(spec, remote, tag=out.tag, commit=out.commit, data_dir=data)
    sharded = write_shards(spec, cached.path, tmp_path / "outputs")
    hub.clear_log()
    # folder_limit 100 stands in for the Hub's 10,000 entries per folder, to test it on 300 shards
    assert publish_shards(remote, sharded.folder, sharded.manifest, cached.path, folder_limit=100).tag == "v1.0-shards"
    commits = [path for method, path in hub.requests if method == "POST" and "/commit/" in path]
    staged = [c for c in commits if "dsm-staging-v1.0-shards" in c]
    assert len(staged) >= 3 and len(commits) == 2 * len(staged)  # the same chunks on main after verifying
    files = hub.files_at(repo, "v1.0-shards")
    assert sum(p.startswith("shards/") and p.endswith(".tar.gz") for p in files) == 300  # text rows: gzipped
    assert {p.rsplit("/", 1)[0] for p in files if p.endswith(".tar.gz")} == {f"shards/{n:05d}" for n in range(3)}
    hub.page_size = 50  # the listing comes in pages, as on the Hub; refs carry refs/convert/parquet too
    listed = remote.list_files(remote.tags()["v1.0-shards"])
    assert listed == {p: len(b) for p, b in files.items()} and set(remote.tags()) == {"v1.0", "v1.0-shards"}
    folder = snapshot_download(repo, repo_type="dataset", revision="v1.0-shards", endpoint=hub.url, token=HUB_TOKEN,
                               cache_dir=tmp_path / "snap", allow_patterns=["shards/*"])
    urls = sorted(str(p) for p in (tmp_path / "snap").glob("**/shards/*/*.tar.gz"))
    assert len(urls) == 300 and folder
    assert sum(1 for _ in wds.WebDataset(urls, shardshuffle=False)) == 600


def test_a_card_the_hub_would_refuse_fails_the_commit_in_one_line(hub_server, tmp_path):
    # before: the loopback server accepted any README.md, so a card the Hub refuses passed every test
    from .hub_server import card_problems

    bad = tmp_path / "README.md"
    bad.write_text("---\nconfigs:\n- data_files: data/*.parquet\n---\n# x\n")
    remote = hub_remote(hub_server, tmp_path)
    with pytest.raises(RemoteError) as raised:
        remote.publish({"README.md": bad}, tag="v1.0", parent=None, message="bad card")
    assert "(HTTP 400)" in str(raised.value) and "\n" not in str(raised.value) and remote.tags() == {}
    assert card_problems(bad.read_text()) == ["configs[0] needs a config_name"]
