"""Run a publish in a subprocess that SIGKILLs itself at the moment promotion would start, so tests can
check what a crash between upload and promote leaves behind. Only the boundary is intercepted (the
promotion step's first write); the upload before it runs for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

PRELUDE = """
import json, os, signal, sys
from pathlib import Path
args = json.loads(sys.argv[1])
def die(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)
"""

SCRIPTS = {
    "local": """
from dsm_assets.remotes.local import LocalRemote
LocalRemote._promote = die
remote = LocalRemote(Path(args["root"]))
""",
    "s3": """
from dsm_assets.remotes.s3 import S3Remote
remote = S3Remote(args["bucket"], args["prefix"], endpoint_url=args["endpoint"])
def before_put(params, **_):
    if "/versions/" in params["Key"]:
        die()
remote.client.meta.events.register("before-parameter-build.s3.PutObject", before_put)
""",
    "hub": """
from huggingface_hub import HfApi
from dsm_assets.remotes.hub import HubRemote
real_commit = HfApi.create_commit
def create_commit(self, *a, **k):
    if k.get("revision") == "main":
        die()
    return real_commit(self, *a, **k)
HfApi.create_commit = create_commit
remote = HubRemote(args["repo"], endpoint=args["endpoint"], token=args["token"], backoff_seconds=0.01)
""",
}

PUBLISH = """
files = {k: Path(v) for k, v in args["files"].items()}
remote.publish(files, tag=args["tag"], parent=args["parent"], message="killed before promote")
"""


def publish_and_die(kind: str, *, files: dict[str, Path], tag: str, parent: str | None, env: dict | None = None,
                    **remote_args: str) -> int:
    args = {"files": {k: str(v) for k, v in files.items()}, "tag": tag, "parent": parent, **remote_args}
    code = PRELUDE + SCRIPTS[kind] + PUBLISH
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, f"expected a SIGKILL, got {done.returncode}: {done.stderr[-2000:]}"
    return done.returncode
