from __future__ import annotations

import hashlib
import threading

import pytest

from dsm_assets.contenthash import hash_table
from dsm_assets.errors import ConcurrentPublishError, RemoteError
from dsm_assets.layout import DATA_PATH
from dsm_assets.remotes.local import LocalRemote

from .killing import publish_and_die
from .servers import cleaned_file, table_of


def test_killed_between_upload_and_promote_leaves_the_old_version_latest(tmp_path):
    remote = LocalRemote(tmp_path / "remote")
    old = cleaned_file(tmp_path / "a.parquet", table_of(10))
    v10 = remote.publish({DATA_PATH: old.path}, tag="v1.0", parent=None, message="first")
    new = cleaned_file(tmp_path / "b.parquet", table_of(20))
    publish_and_die("local", files={DATA_PATH: new.path}, tag="v1.1", parent=v10.commit, root=str(remote.root))
    assert remote.tags() == {"v1.0": v10.commit} and remote.head() == v10.commit
    assert hash_table(remote.load_table(v10.commit)) == old.version
    v11 = remote.publish({DATA_PATH: new.path}, tag="v1.1", parent=v10.commit, message="retry")  # next run completes
    assert remote.tags()["v1.1"] == v11.commit and remote.head() == v11.commit
    assert v11.bytes_uploaded == 0  # the killed run's objects were already there, content-addressed


def test_two_threads_racing_for_the_same_tag_yield_exactly_one_version(tmp_path):
    remote = LocalRemote(tmp_path / "remote")
    base = remote.publish({DATA_PATH: cleaned_file(tmp_path / "a.parquet", table_of(3)).path}, tag="v1.0",
                          parent=None, message="first")
    refs = [cleaned_file(tmp_path / f"w{i}.parquet", table_of(4 + i)) for i in range(6)]
    outcomes: list[object] = []

    def writer(ref) -> None:
        try:
            outcomes.append(remote.publish({DATA_PATH: ref.path}, tag="v1.1", parent=base.commit, message="race"))
        except ConcurrentPublishError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=writer, args=(r,)) for r in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if not isinstance(o, ConcurrentPublishError)]
    assert len(winners) == 1 and len(outcomes) == 6
    assert remote.tags() == {"v1.0": base.commit, "v1.1": winners[0].commit} and remote.head() == winners[0].commit


def test_a_corrupt_existing_object_is_uploaded_again_before_the_tag(tmp_path):
    remote = LocalRemote(tmp_path / "remote")
    data = cleaned_file(tmp_path / "a.parquet", table_of(10))
    digest = hashlib.sha256(data.path.read_bytes()).hexdigest()
    planted = remote.root / "objects" / digest  # already there, same size, one byte off
    planted.parent.mkdir(parents=True)
    corrupt = bytearray(data.path.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0x01
    planted.write_bytes(bytes(corrupt))
    v10 = remote.publish({DATA_PATH: data.path}, tag="v1.0", parent=None, message="first")
    assert v10.bytes_uploaded == data.path.stat().st_size  # not skipped as "already stored"
    assert hash_table(remote.load_table(v10.commit)) == data.version


def test_round_trip_of_a_corrupted_object_is_one_line_naming_it(tmp_path):
    remote = LocalRemote(tmp_path / "remote")
    data = cleaned_file(tmp_path / "a.parquet", table_of(10))
    v10 = remote.publish({DATA_PATH: data.path}, tag="v1.0", parent=None, message="first")
    obj = remote.object_path(v10.commit, DATA_PATH)
    corrupt = bytearray(obj.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0x01
    obj.write_bytes(bytes(corrupt))
    with pytest.raises(RemoteError) as info:
        remote.load_table(v10.commit)
    message = str(info.value)
    assert "\n" not in message and str(obj) in message and "is corrupt: sha256" in message
    assert obj.name in message.split("expected ")[1]
    # the next publish of that content repairs the object under a new version
    v11 = remote.publish({DATA_PATH: data.path}, tag="v1.1", parent=v10.commit, message="again")
    assert hash_table(remote.load_table(v11.commit)) == data.version
    assert hash_table(remote.load_table(v10.commit)) == data.version  # same object: v1.0 repaired too
