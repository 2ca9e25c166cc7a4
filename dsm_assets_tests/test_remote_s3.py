from __future__ import annotations

import boto3
import pytest

from dsm_assets.contenthash import hash_table
from dsm_assets.errors import RemoteAuthError, RemoteError, RemoteNotFoundError
from dsm_assets.layout import DATA_PATH
from dsm_assets.remotes.s3 import S3Remote

from .killing import publish_and_die
from .servers import BUCKET, cleaned_file, table_of, unique


def test_killed_before_the_manifest_leaves_the_old_version_latest(tmp_path, aws_env):
    prefix = f"datasets/{unique('kill')}"
    remote = S3Remote(BUCKET, prefix, endpoint_url=aws_env)
    old = cleaned_file(tmp_path / "a.parquet", table_of(10))
    v10 = remote.publish({DATA_PATH: old.path}, tag="v1.0", parent=None, message="first")
    new = cleaned_file(tmp_path / "b.parquet", table_of(20))
    publish_and_die("s3", files={DATA_PATH: new.path}, tag="v1.1", parent=v10.commit, bucket=BUCKET, prefix=prefix,
                    endpoint=aws_env)
    assert remote.tags() == {"v1.0": v10.commit}
    # the new bytes were uploaded as a new object version, but v1.0 still pins the old one
    assert hash_table(remote.load_table(v10.commit)) == old.version
    v11 = remote.publish({DATA_PATH: new.path}, tag="v1.1", parent=v10.commit, message="retry")
    assert hash_table(remote.load_table(v11.commit)) == new.version


def test_unchanged_files_pin_the_existing_object_version(tmp_path, aws_env):
    remote = S3Remote(BUCKET, f"datasets/{unique('pin')}", endpoint_url=aws_env)
    data = cleaned_file(tmp_path / "a.parquet", table_of(10))
    card1, card2 = tmp_path / "c1.md", tmp_path / "c2.md"
    card1.write_text("one")
    card2.write_text("two")
    v10 = remote.publish({DATA_PATH: data.path, "README.md": card1}, tag="v1.0", parent=None, message="m")
    v11 = remote.publish({DATA_PATH: data.path, "README.md": card2}, tag="v1.1", parent=v10.commit, message="m")
    assert v11.bytes_uploaded == 3  # only the card changed
    assert remote.read_file(v10.commit, "README.md") == b"one" and remote.read_file(v11.commit, "README.md") == b"two"


def test_bucket_without_versioning_is_refused(tmp_path, aws_env):
    client = boto3.client("s3", endpoint_url=aws_env)
    client.create_bucket(Bucket="no-versioning")
    remote = S3Remote("no-versioning", "datasets/x", endpoint_url=aws_env)
    with pytest.raises(RemoteError, match="versioning is not enabled"):
        remote.publish({DATA_PATH: cleaned_file(tmp_path / "a.parquet", table_of(3)).path}, tag="v1.0",
                       parent=None, message="m")
    assert remote.tags() == {}


def test_missing_bucket_and_bad_credentials(tmp_path, aws_env, monkeypatch):
    with pytest.raises(RemoteNotFoundError, match="NoSuchBucket; create the bucket"):
        S3Remote("missing-bucket", "datasets/x", endpoint_url=aws_env).tags()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(RemoteAuthError, match="no AWS credentials; set AWS_ACCESS_KEY_ID"):
        S3Remote(BUCKET, "datasets/x", endpoint_url=aws_env).tags()


def test_the_card_and_dsm_registry_tell_the_truth_about_an_s3_remote(tmp_path, aws_env, monkeypatch):
    # before: the card said datasets.load_dataset("dsm/<name>", …) (a Hub call that cannot work for S3) and
    # `dsm registry` printed s3://<bucket>/<prefix>/dsm/<name> while the objects live under <prefix>/<name>/
    from dsm_assets.cli import registry_rows
    from dsm_assets.publishing import publish_cleaned
    from dsm_assets.registry import load_registry
    from dsm_assets.remotes import open_remote

    from .conftest import csv_entry, write_registry

    prefix = unique("p")
    entry = csv_entry(name="s3card", remote={"kind": "s3", "bucket": BUCKET, "prefix": prefix})
    registry = load_registry(write_registry(tmp_path / "r.yaml", [entry]))
    spec = registry.get("s3card")
    remote = open_remote(spec, data_dir=tmp_path / "data")
    out = publish_cleaned(spec, remote, cleaned_file(tmp_path / "a.parquet", table_of(5)), data_dir=tmp_path / "data")
    card = remote.read_file(out.commit, "README.md").decode()
    assert "datasets.load_dataset(" not in card
    assert 'dsm_assets.load("s3card", "v1.0")' in card and "versions/v1.0.json" in card
    [row] = registry_rows(registry)
    assert row["repo"] == f"s3://{BUCKET}/{prefix}/s3card"
    s3 = boto3.client("s3", endpoint_url=aws_env)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/s3card/")["Contents"]]
    assert f"{prefix}/s3card/versions/v1.0.json" in keys
