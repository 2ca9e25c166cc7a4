"""Loopback servers shared by the remote tests: moto's S3 and our Hub-API server, one of each per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from dsm_assets.arrow_types import type_name
from dsm_assets.cleaning import CleanResult
from dsm_assets.contenthash import hash_table
from dsm_assets.remotes.hub import HubRemote
from dsm_assets.remotes.local import LocalRemote
from dsm_assets.remotes.s3 import S3Remote

BUCKET = "dsm-test"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
HUB_TOKEN = "hf_test_token_not_a_secret"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield url
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> str:
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return moto_url


@pytest.fixture(scope="session")
def hub():
    """The session's Hub server, in LFS mode as the Hub is: parquet, arrow, tar and large files go through
    Git LFS (the client sends them that way: conftest sets HF_HUB_DISABLE_XET, see test_hub_transfer for Xet)."""
    from .hub_server import HubServer

    server = HubServer(token=HUB_TOKEN, lfs=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hub_server(hub):
    """The session's Hub server, with faults, delays and paging reset before and after each test."""
    _reset(hub)
    yield hub
    _reset(hub)


def _reset(server) -> None:
    server.clear_faults()
    server.xet_token_status, server.page_size = 503, 1000


@pytest.fixture(scope="session")
def hub_regular():
    """A Hub server that takes every file as a regular git file (no LFS): the contract suite's third mode."""
    from .hub_server import HubServer

    server = HubServer(token=HUB_TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hub_regular_server(hub_regular):
    _reset(hub_regular)
    yield hub_regular
    _reset(hub_regular)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_remote(kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    if kind == "local":
        return LocalRemote(tmp_path / "remote")
    if kind == "s3":
        request.getfixturevalue("aws_env")
        return S3Remote(BUCKET, f"datasets/{unique('ds')}", endpoint_url=request.getfixturevalue("moto_url"))
    server = request.getfixturevalue("hub_regular_server" if kind == "hub-regular" else "hub_server")
    return HubRemote(f"dsm/{unique('ds')}", endpoint=server.url, token=HUB_TOKEN, cache_dir=tmp_path / "hf-cache",
                     backoff_seconds=0.01, max_tries=3, transfer="lfs")


def cleaned_file(path: Path, table: pa.Table) -> CleanResult:
    """Write `table` as a cleaned parquet file and describe it the way the cleaned asset does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    schema = {f.name: type_name(f.type) for f in table.schema}
    return CleanResult.of_file(path, content_hash=hash_table(table), rows=table.num_rows, schema=schema)


def table_of(n: int, *, offset: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(offset, offset + n), pa.int64()),
                     "text": [f"row {i}" for i in range(offset, offset + n)],
                     "tags": pa.array([[f"t{i % 3}"] for i in range(n)], pa.list_(pa.string()))})
