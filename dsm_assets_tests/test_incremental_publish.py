"""Incremental versions: each remote sends only content it does not hold, whatever path a file had before.

The cleaned data is several parquet files whose names carry the file count (train-00000-of-00002.parquet),
so appending rows renames every file even where its content is unchanged: v1.0 = {A, B} as 2 files, then
v1.1 = {A, B, C} as 3. Each remote must send C (and the small files that changed) and nothing of A or B."""

from __future__ import annotations

import boto3
import pytest

from dsm_assets.remotes.s3 import S3Remote

from .servers import BUCKET, cleaned_file, make_remote, table_of, unique

V10 = ("data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet")
V11 = ("data/train-00000-of-00003.parquet", "data/train-00001-of-00003.parquet", "data/train-00002-of-00003.parquet")
CARD = "README.md"


def contents(tmp_path):
    """Three distinct parquet files and two cards (the card changes with every version, as the real one does)."""
    a, b, c = (cleaned_file(tmp_path / f"{n}.parquet", table_of(200 * (i + 1), offset=10_000 * i)).path
               for i, n in enumerate("abc"))
    card1, card2 = tmp_path / "card1.md", tmp_path / "card2.md"
    card1.write_text("# v1.0\n")
    card2.write_text("# v1.1, one more file\n")
    return a, b, c, card1, card2


@pytest.mark.parametrize("kind", ["local", "s3", "hub"])
def test_a_renamed_file_with_stored_content_is_not_sent_again(kind, tmp_path, request):
    remote = make_remote(kind, tmp_path, request)
    a, b, c, card1, card2 = contents(tmp_path)
    v10_files = {V10[0]: a, V10[1]: b, CARD: card1}
    v11_files = {V11[0]: a, V11[1]: b, V11[2]: c, CARD: card2}
    v10 = remote.publish(v10_files, tag="v1.0", parent=None, message="two files")
    server = request.getfixturevalue("hub_server") if kind == "hub" else None
    if server:
        server.clear_received()
    v11 = remote.publish(v11_files, tag="v1.1", parent=v10.commit, message="three files")

    # the Hub commits small files twice (the staging branch, then main); its LFS objects go once
    small = card2.stat().st_size * (2 if kind == "hub" else 1)
    assert v11.bytes_uploaded == c.stat().st_size + small
    assert set(v11.reused) == {V11[0], V11[1]}
    assert v11.bytes_reused == a.stat().st_size + b.stat().st_size
    if server:  # what the server received as LFS objects: C alone
        assert server.received["lfs"] == c.stat().st_size
    for published, files in ((v10, v10_files), (v11, v11_files)):
        assert set(remote.list_files(published.commit)) - {".gitattributes"} == set(files)
        for path, local in files.items():
            assert remote.read_file(published.commit, path) == local.read_bytes(), (published.tag, path)


def test_s3_copies_reused_content_server_side_and_keeps_the_manifest_format(tmp_path, aws_env):
    remote = S3Remote(BUCKET, f"datasets/{unique('copy')}", endpoint_url=aws_env)
    a, b, c, card1, card2 = contents(tmp_path)
    v10 = remote.publish({V10[0]: a, V10[1]: b, CARD: card1}, tag="v1.0", parent=None, message="m")
    v11 = remote.publish({V11[0]: a, V11[1]: b, V11[2]: c, CARD: card2}, tag="v1.1", parent=v10.commit, message="m")
    manifest = remote._manifest_for(v11.commit)["files"]
    client = boto3.client("s3", endpoint_url=aws_env)
    for path in V11:  # every file of the latest version is the current object under its own key
        entry = manifest[path]
        assert set(entry) == {"key", "version_id", "size", "sha256"}  # what older dsm_assets versions read
        assert entry["key"] == remote._key("files", path)
        assert client.head_object(Bucket=BUCKET, Key=entry["key"])["VersionId"] == entry["version_id"]


def test_s3_reuses_content_of_any_earlier_version_not_only_the_latest(tmp_path, aws_env):
    remote = S3Remote(BUCKET, f"datasets/{unique('older')}", endpoint_url=aws_env)
    a, b, c, _, _ = contents(tmp_path)
    v10 = remote.publish({V10[0]: a, V10[1]: b}, tag="v1.0", parent=None, message="m")
    v11 = remote.publish({"data/train-00000-of-00001.parquet": c}, tag="v1.1", parent=v10.commit, message="m")
    v12 = remote.publish({V11[0]: a, V11[1]: b}, tag="v1.2", parent=v11.commit, message="m")  # back to v1.0's data
    assert (v12.bytes_uploaded, v12.bytes_reused) == (0, a.stat().st_size + b.stat().st_size)
    assert remote.read_file(v12.commit, V11[1]) == b.read_bytes()


def test_s3_uploads_again_when_the_reused_object_version_is_gone(tmp_path, aws_env):
    remote = S3Remote(BUCKET, f"datasets/{unique('gone')}", endpoint_url=aws_env)
    a, b, c, _, _ = contents(tmp_path)
    v10 = remote.publish({V10[0]: a, V10[1]: b}, tag="v1.0", parent=None, message="m")
    gone = remote._manifest_for(v10.commit)["files"][V10[0]]
    boto3.client("s3", endpoint_url=aws_env).delete_object(Bucket=BUCKET, Key=gone["key"], VersionId=gone["version_id"])
    v11 = remote.publish({V11[0]: a, V11[1]: b, V11[2]: c}, tag="v1.1", parent=v10.commit, message="m")
    assert v11.bytes_uploaded == a.stat().st_size + c.stat().st_size
    assert remote.read_file(v11.commit, V11[0]) == a.read_bytes()


def test_s3_copies_objects_above_the_copy_limit_in_parts(tmp_path, aws_env):
    """Above CopyObject's 5 GB limit the copy is a multipart upload of UploadPartCopy ranges (here the limit
    is lowered to 1 byte and the parts to S3's 5 MiB minimum, so an 11 MiB file takes three parts)."""
    remote = S3Remote(BUCKET, f"datasets/{unique('parts')}", endpoint_url=aws_env)
    remote.copy_limit, remote.copy_part_size = 1, 5 * 2**20
    big = tmp_path / "big.parquet"
    big.write_bytes(bytes(range(256)) * (11 * 2**12))
    v10 = remote.publish({"data/x.parquet": big}, tag="v1.0", parent=None, message="m")
    v11 = remote.publish({"data/y.parquet": big}, tag="v1.1", parent=v10.commit, message="m")
    assert (v11.bytes_uploaded, v11.bytes_reused) == (0, big.stat().st_size)
    assert remote.read_file(v11.commit, "data/y.parquet") == big.read_bytes()


def test_the_published_metadata_shows_bytes_uploaded_and_reused():
    from dsm_assets.defs.handoff import published_metadata
    from dsm_assets.publishing import PublishOutcome

    outcome = PublishOutcome("t", "v1.1", "c" * 40, "/remote", 1000, ("a", "b", "c", "README.md"), True, "h", 10,
                             bytes_reused=5000, files_reused=2)
    meta = published_metadata(outcome)
    assert (meta["bytes_uploaded"], meta["bytes_reused"], meta["files_uploaded"], meta["files_reused"]) == \
        (1000, 5000, 2, 2)
