"""The Dagster instance folder (DAGSTER_HOME) that `make demo` and `make dev` share, seeded so that the UI
opens without obstacles and small runs start fast: telemetry off, no "join the community" modal (Dagster's
`nux`), and the daemon's run queue polled every second instead of every 5 (QueuedRunCoordinator default).

    python -m dsm_assets.dagster_home      prepares it and prints its path (the Makefile's `dev` uses it)

Settings a user added to dagster.yaml are kept; only the two keys we own are filled in where missing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from dsm_assets import atomic, paths

SEEDED = {
    "telemetry": {"enabled": False},
    "nux": {"enabled": False},
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                        "config": {"dequeue_interval_seconds": 1}},
}


def prepare(home: Path) -> Path:
    """Create `home` with a dagster.yaml holding SEEDED (merged into an existing file: keys already there
    are the user's and stay). Returns the path."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    current = yaml.safe_load(config.read_text()) if config.exists() else None
    current = current if isinstance(current, dict) else {}
    missing = {k: v for k, v in SEEDED.items() if k not in current}
    if missing or not config.exists():
        atomic.write_bytes(config, yaml.safe_dump({**current, **missing}, sort_keys=False).encode())
    return home


def default_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or paths.outputs_dir() / "dagster_home").resolve()


if __name__ == "__main__":
    print(prepare(default_home()))
    sys.exit(0)
