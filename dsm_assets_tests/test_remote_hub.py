"""Hub faults through the real huggingface_hub client against the loopback Hub server."""

from __future__ import annotations

import pytest

from dsm_assets.errors import RemoteAuthError, RemoteError, RemoteNotFoundError
from dsm_assets.layout import DATA_PATH
from dsm_assets.remotes.hub import HubRemote

from .killing import publish_and_die
from .servers import HUB_TOKEN, cleaned_file, table_of, unique


def hub_remote(server, tmp_path, **kwargs) -> HubRemote:
    repo = kwargs.pop("repo", f"dsm/{unique('hub')}")
    options = {"token": HUB_TOKEN, "backoff_seconds": 0.01, "max_tries": 3, "cache_dir": tmp_path / "hf"} | kwargs
    return HubRemote(repo, endpoint=server.url, **options)


def first_version(server, tmp_path):
    remote = hub_remote(server, tmp_path)
    ref = cleaned_file(tmp_path / "a.parquet", table_of(10))
    return remote, remote.publish({DATA_PATH: ref.path}, tag="v1.0", parent=None, message="first")


def test_wrong_token_says_which_variable_to_set(hub_server, tmp_path):
    remote = hub_remote(hub_server, tmp_path, token="hf_wrong")
    with pytest.raises(RemoteAuthError, match="401 unauthorized; set HF_TOKEN") as info:
        remote.tags()
    assert "hf_wrong" not in str(info.value) and HUB_TOKEN not in str(info.value)


def test_missing_repo_with_create_disabled_names_the_repo(hub_server, tmp_path):
    remote = hub_remote(hub_server, tmp_path, repo="dsm/never-created", create=False)
    with pytest.raises(RemoteNotFoundError, match=r"dataset repo 'dsm/never-created' not found; create it or set "
                                                  r"remote\.create: true"):
        remote.tags()


def test_429_twice_then_success_gives_exactly_one_new_version(hub_server, tmp_path):
    remote, v10 = first_version(hub_server, tmp_path)
    hub_server.inject(429, 2, path_contains="/commit/")
    new = cleaned_file(tmp_path / "b.parquet", table_of(20))
    v11 = remote.publish({DATA_PATH: new.path}, tag="v1.1", parent=v10.commit, message="after 429s")
    assert remote.tags() == {"v1.0": v10.commit, "v1.1": v11.commit}
    assert hub_server.branch_head(remote.repo_id) == v11.commit


def test_500_every_time_gives_up_after_n_tries_and_promotes_nothing(hub_server, tmp_path):
    remote, v10 = first_version(hub_server, tmp_path)
    head = hub_server.branch_head(remote.repo_id)
    hub_server.inject(500, 100, path_contains="/commit/")
    new = cleaned_file(tmp_path / "b.parquet", table_of(20))
    with pytest.raises(RemoteError, match=r"failed after 3 tries \(HTTP 500\); nothing was promoted"):
        remote.publish({DATA_PATH: new.path}, tag="v1.1", parent=v10.commit, message="doomed")
    commits = [r for r in hub_server.requests if r[0] == "POST" and "/commit/" in r[1]]
    assert len(commits) >= 3
    hub_server.clear_faults()
    assert remote.tags() == {"v1.0": v10.commit} and hub_server.branch_head(remote.repo_id) == head


def test_killed_between_upload_and_promote_leaves_main_and_tags_alone(hub_server, tmp_path):
    remote, v10 = first_version(hub_server, tmp_path)
    head = hub_server.branch_head(remote.repo_id)
    new = cleaned_file(tmp_path / "b.parquet", table_of(20))
    publish_and_die("hub", files={DATA_PATH: new.path}, tag="v1.1", parent=v10.commit, repo=remote.repo_id,
                    endpoint=hub_server.url, token=HUB_TOKEN)
    assert remote.tags() == {"v1.0": v10.commit} and hub_server.branch_head(remote.repo_id) == head
    v11 = remote.publish({DATA_PATH: new.path}, tag="v1.1", parent=v10.commit, message="next run")
    assert remote.tags()["v1.1"] == v11.commit


def test_publish_goes_through_a_staging_branch_and_cleans_it_up(hub_server, tmp_path):
    remote, _ = first_version(hub_server, tmp_path)
    commits = [path for method, path in hub_server.requests if method == "POST" and "/commit/" in path
               and remote.repo_id in path]
    assert any("dsm-staging-v1.0" in p for p in commits) and commits[-1].endswith("/commit/main")
    refs = remote.api.list_repo_refs(remote.repo_id, repo_type="dataset")
    assert [b.name for b in refs.branches] == ["main"]
