"""Unchanged republish vs first publish, per remote kind, measured in one run on the same data.

    .venv/bin/python -m bench.bench_publish [--rows 2000000]

Goal: an unchanged republish uploads zero bytes and takes at most 5 % of the first publish's time.
S3 runs against a moto server and the Hub against the loopback Hub-API server, both on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="dsm-bench-hf-")

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from moto.server import ThreadedMotoServer

from dsm_assets.arrow_types import type_name
from dsm_assets.contenthash import hash_table
from dsm_assets.publishing import CleanedRef, publish_cleaned
from dsm_assets.registry import load_registry
from dsm_assets.remotes.hub import HubRemote
from dsm_assets.remotes.local import LocalRemote
from dsm_assets.remotes.s3 import S3Remote
from dsm_assets_tests.hub_server import HubServer


def cleaned(tmp: Path, rows: int) -> CleanedRef:
    """Incompressible text (random hex), so the parquet is as big as real data of that many rows."""
    rng = random.Random(7)
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "text": [rng.randbytes(32).hex() for _ in range(rows)]})
    path = tmp / "cleaned.parquet"
    pq.write_table(table, path, compression="zstd")
    return CleanedRef(path, hash_table(table), rows, {f.name: type_name(f.type) for f in table.schema})


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dsm-bench-publish-"))
    ref = cleaned(tmp, args.rows)
    spec = load_registry().get("text_reviews")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
    s3.create_bucket(Bucket="bench")
    s3.put_bucket_versioning(Bucket="bench", VersioningConfiguration={"Status": "Enabled"})
    hub = HubServer(token="bench")
    hub.start()
    remotes = {
        "local": LocalRemote(tmp / "remote"),
        "s3": S3Remote("bench", "datasets/bench", endpoint_url=f"http://{host}:{port}"),
        "hub": HubRemote("bench/data", endpoint=hub.url, token="bench", cache_dir=tmp / "hf"),
    }
    print(f"parquet: {ref.path.stat().st_size / 1e6:.1f} MB, {args.rows} rows")
    print(f"{'remote':<7} {'first s':>8} {'first bytes':>12} {'again s':>8} {'again bytes':>12} {'ratio':>7}  goal")
    for kind, remote in remotes.items():
        data_dir = tmp / kind
        first, t_first = timed(lambda r=remote, d=data_dir: publish_cleaned(spec, r, ref, data_dir=d))
        again, t_again = timed(lambda r=remote, d=data_dir: publish_cleaned(spec, r, ref, data_dir=d))
        ratio = t_again / t_first
        ok = again.bytes_uploaded == 0 and not again.new and ratio <= 0.05
        print(f"{kind:<7} {t_first:8.3f} {first.bytes_uploaded:12d} {t_again:8.3f} {again.bytes_uploaded:12d} "
              f"{ratio:7.1%}  {'meets' if ok else 'MISSES'} (0 bytes, <= 5 %)")
    hub.stop()
    moto.stop()


if __name__ == "__main__":
    main()
