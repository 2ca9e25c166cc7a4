"""Unchanged republish vs first publish, per remote kind, measured in one run on the same data.

    .venv/bin/python -m bench.bench_publish [--rows 1000000] [--quick]

Goal: an unchanged republish uploads zero bytes and takes at most 5 % of the first publish's time (best of 3
each, each try on a fresh remote); a first publish to the Hub sends each byte of the files once (≤ 1.05× their
size, counted by the server: LFS PUTs plus commit bodies, staging and promotion together).
S3 runs against a moto server and the Hub against the loopback Hub-API server in LFS mode (the path the Hub
takes for parquet when Xet is off), both on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from moto.server import ThreadedMotoServer

from bench.common import Line, progress, run_alone, seconds, timed
from dsm_assets.arrow_types import type_name
from dsm_assets.cleaning import CleanResult
from dsm_assets.contenthash import hash_table
from dsm_assets.publishing import publish_cleaned
from dsm_assets.registry import DEFAULT_REGISTRY, load_registry
from dsm_assets.remotes.hub import HubRemote
from dsm_assets.remotes.local import LocalRemote
from dsm_assets.remotes.s3 import S3Remote
from dsm_assets_tests.hub_server import HubServer

RUNS = 3


def cleaned(tmp: Path, rows: int) -> CleanResult:
    """Incompressible text (random hex), so the parquet is as big as real data of that many rows."""
    rng = random.Random(7)
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "text": [rng.randbytes(32).hex() for _ in range(rows)]})
    path = tmp / "cleaned.parquet"
    pq.write_table(table, path, compression="zstd")
    return CleanResult.of_file(path, content_hash=hash_table(table), rows=rows,
                               schema={f.name: type_name(f.type) for f in table.schema})


def measure(quick: bool = False, rows: int | None = None) -> list[Line]:
    rows = rows or (200_000 if quick else 1_000_000)
    lines = []
    with ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="dsm-bench-publish-"))
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        ref = cleaned(tmp, rows)
        spec = load_registry(DEFAULT_REGISTRY).get("text_reviews")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        cleanup.callback(moto.stop)
        host, port = moto.get_host_and_port()
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        s3.create_bucket(Bucket="bench")
        s3.put_bucket_versioning(Bucket="bench", VersioningConfiguration={"Status": "Enabled"})
        hub = HubServer(token="bench", lfs=True)
        hub.start()
        cleanup.callback(hub.stop)
        remotes = {  # a fresh, empty remote for each try
            "local": lambda i: LocalRemote(tmp / f"remote{i}"),
            "s3": lambda i: S3Remote("bench", f"datasets/bench{i}", endpoint_url=f"http://{host}:{port}"),
            "hub": lambda i: HubRemote(f"bench/data{i}", endpoint=hub.url, token="bench", cache_dir=tmp / f"hf{i}",
                                       transfer="lfs"),
        }
        size = ref.path.stat().st_size
        progress(f"publish: {size / 1e6:.0f} MB of parquet ({rows} rows) to local, s3 (moto), hub (loopback), "
                 f"best of {RUNS}")
        for kind, make_remote in remotes.items():
            t_first = t_again = float("inf")
            for i in range(RUNS):
                remote, data_dir = make_remote(i), tmp / f"{kind}{i}"
                hub.clear_received()
                first, t = timed(lambda r=remote, d=data_dir: publish_cleaned(spec, r, ref, data_dir=d))
                wire = hub.received["lfs"] + hub.received["commit"]
                t_first = min(t_first, t)
                again, t = timed(lambda r=remote, d=data_dir: publish_cleaned(spec, r, ref, data_dir=d))
                t_again = min(t_again, t)
                assert again.bytes_uploaded == 0 and not again.new, f"{kind}: the unchanged republish uploaded"
            ratio = t_again / t_first
            lines.append(Line(
                f"unchanged republish, {kind} ({size / 1e6:.0f} MB parquet)",
                f"first publish {seconds(t_first)}, {first.bytes_uploaded} B up",
                f"{seconds(t_again)}, {again.bytes_uploaded} B up", f"{ratio:.2%}", "0 bytes, ≤ 5 %",
                again.bytes_uploaded == 0 and not again.new and ratio <= 0.05))
            if kind == "hub":
                files = sum(n for p, n in remote.list_files(first.commit).items() if p != ".gitattributes")
                lines.append(Line(f"first publish, hub over Git LFS ({size / 1e6:.0f} MB parquet)",
                                  f"files {files} B", f"{wire} B received by the server, {first.bytes_uploaded} B "
                                  "reported", f"{wire / files:.3f}×", "≤ 1.05×", wire <= 1.05 * files))
    return lines


if __name__ == "__main__":
    run_alone(measure, "rows")
