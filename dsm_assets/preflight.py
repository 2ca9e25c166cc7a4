"""Is a dataset's offline cache ready? For job scripts (`dsm preflight`) and the blocking cache check.

ready   the cache is complete and holds the expected version
missing nothing is cached yet
stale   the cache holds another version than the one expected (the registry's pin, else the latest
        version whose round_trip check passed)
corrupt a manifest or file is missing, has the wrong size, or (with deep) the wrong sha256

This module reads local files only: no dagster, no network, so it runs fast on a node without either."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from dsm_assets.cache import read_manifest, verify_folder
from dsm_assets.errors import StateError
from dsm_assets.layout import cache_current, cache_root
from dsm_assets.registry import DatasetSpec, display_path
from dsm_assets.versioning import wanted_version


@dataclass(frozen=True)
class Preflight:
    dataset: str
    version: str | None
    commit: str | None
    cache: str
    status: str  # ready | missing | stale | corrupt
    reason: str

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def preflight(spec: DatasetSpec, data_dir: Path, *, deep: bool = False) -> Preflight:
    root = cache_root(spec, data_dir)
    current = cache_current(spec, data_dir)
    shown = display_path(root)
    if not current.exists():
        return Preflight(spec.name, None, None, shown, "missing",
                         f"no cache in {shown}; materialise {spec.name}/cache (make demo, or the cache_refresh "
                         "schedule) on a machine with access to the remote")
    folder = current.resolve()
    problem = verify_folder(folder, deep=deep)
    if problem:
        return Preflight(spec.name, None, None, display_path(folder), "corrupt",
                         f"{problem}; re-materialise {spec.name}/cache to rebuild it")
    manifest = read_manifest(folder)
    tag, commit = manifest["version"], manifest["commit"]
    result = Preflight(spec.name, tag, commit, display_path(folder), "ready", "")
    try:
        wanted = wanted_version(spec, data_dir)
    except StateError as exc:  # which version is current is unknown: never call the cache ready then
        return Preflight(spec.name, tag, commit, display_path(folder), "corrupt", str(exc))
    if wanted is None:
        return result
    if tag != wanted.tag or (wanted.commit and commit != wanted.commit):
        where = "pinned in the registry" if wanted.pinned else "the latest verified version"
        return Preflight(spec.name, tag, commit, display_path(folder), "stale",
                         f"cache holds {tag} ({commit[:12]}) but {wanted.tag} is {where}; re-materialise "
                         f"{spec.name}/cache")
    return result


# Loads the cache in a child process where the network cannot be used: HF offline mode set before any
# import, sockets refused, and (where the kernel allows it) no network namespace at all.
_OFFLINE_PROBE = """
import socket, sys
def _denied(*args, **kwargs):
    raise OSError("network access is denied during the offline probe")
socket.socket.connect = socket.socket.connect_ex = _denied
socket.getaddrinfo = socket.create_connection = _denied
import dsm_assets
print(dsm_assets.load(sys.argv[1]).num_rows)
"""


def offline_probe(spec: DatasetSpec, data_dir: Path, registry_path: Path) -> tuple[bool, str]:
    """Load the dataset through `dsm_assets.load` with no network. (passed, description)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DSM_DATA_DIR": str(data_dir),
           "DSM_REGISTRY": str(registry_path)}
    cmd = [sys.executable, "-c", _OFFLINE_PROBE, spec.name]
    isolated = _unshare_works()
    if isolated:
        cmd = ["unshare", "--net", *cmd]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    how = "in a process with no network namespace" if isolated else "with sockets refused"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"offline load failed {how}: {last}"
    rows = int(done.stdout.strip().splitlines()[-1])
    manifest_rows = read_manifest(cache_current(spec, data_dir).resolve())["rows"]
    if rows != manifest_rows:
        return False, f"offline load gave {rows} rows, the cache manifest says {manifest_rows}"
    return True, f"loaded {rows} rows offline {how}"


@cache
def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0
