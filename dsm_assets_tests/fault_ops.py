"""The operations the fault matrix kills: each runs the real core function in a child process.

Children are forked from a multiprocessing forkserver that imported this module (and with it pyarrow,
boto3 and huggingface_hub) once, so a trial costs a fork instead of an interpreter start and the kill
can land anywhere in the operation itself. Arguments are plain JSON-able dicts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dsm_assets.cache import refresh_cache
from dsm_assets.cleaning import CleanResult
from dsm_assets.publishing import publish_cleaned
from dsm_assets.registry import load_registry
from dsm_assets.remotes.base import Remote
from dsm_assets.remotes.hub import HubRemote
from dsm_assets.remotes.local import LocalRemote
from dsm_assets.remotes.s3 import S3Remote
from dsm_assets.shards import write_shards


def build_remote(desc: dict[str, Any]) -> Remote:
    if desc["kind"] == "local":
        return LocalRemote(Path(desc["root"]))
    if desc["kind"] == "s3":
        return S3Remote(desc["bucket"], desc["prefix"], endpoint_url=desc["endpoint"])
    return HubRemote(desc["repo"], endpoint=desc["endpoint"], token=desc["token"], cache_dir=Path(desc["cache_dir"]),
                     backoff_seconds=0.01, max_tries=3)


def publish(args: dict[str, Any]) -> None:
    spec = load_registry(args["registry"]).get(args["dataset"])
    ref = CleanResult.of_file(Path(args["parquet"]), content_hash=args["content_hash"], rows=args["rows"],
                               schema=args["schema"])
    publish_cleaned(spec, build_remote(args["remote"]), ref, data_dir=Path(args["data_dir"]))


def refresh(args: dict[str, Any]) -> None:
    spec = load_registry(args["registry"]).get(args["dataset"])
    refresh_cache(spec, build_remote(args["remote"]), tag=args["tag"], commit=args["commit"],
                  data_dir=Path(args["data_dir"]))


def shards(args: dict[str, Any]) -> None:
    spec = load_registry(args["registry"]).get(args["dataset"])
    write_shards(spec, Path(args["cache_folder"]), Path(args["outputs_dir"]))


OPS = {"publish": publish, "refresh": refresh, "shards": shards}


def run(op: str, args: dict[str, Any]) -> None:
    """The child's entry point: the forkserver's environment is the one it started with, so set ours."""
    os.environ.update(args.get("env", {}))
    OPS[op](args)
