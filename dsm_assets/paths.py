"""Where data and outputs live. The environment is read when a function is called, never at import."""

from __future__ import annotations

import os
from pathlib import Path

from dsm_assets.errors import PathEscapeError


def data_dir() -> Path:
    """`DSM_DATA_DIR`, default `./data`, as an absolute path."""
    return Path(os.environ.get("DSM_DATA_DIR") or "data").resolve()


def outputs_dir() -> Path:
    """`DSM_OUTPUTS_DIR`, default `./outputs`, as an absolute path."""
    return Path(os.environ.get("DSM_OUTPUTS_DIR") or "outputs").resolve()


def under(base: Path, *parts: str) -> Path:
    """`base/parts…` for a folder or file we write, refused when a symlink on the way leads out of `base`
    (the data or outputs dir): what we write stays where the user pointed DSM_DATA_DIR / DSM_OUTPUTS_DIR."""
    base = base.resolve()
    path = base.joinpath(*parts)
    target = path.resolve()
    if target != base and base not in target.parents:
        raise PathEscapeError(f"{path}: a symlink leads outside {base} (to {target}); dsm_assets writes only inside "
                              "it: remove the link, or set DSM_DATA_DIR / DSM_OUTPUTS_DIR to the disk you want")
    return path


def inside(base: Path, relative: str | Path, *, what: str) -> Path:
    """Resolve `relative` under `base` and refuse anything (`..`, absolute paths, symlinks) that leaves it."""
    base = base.resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        parts = Path(relative)
        how = "an absolute path" if parts.is_absolute() else "with '..'" if ".." in parts.parts else "through a symlink"
        raise PathEscapeError(f"{what}: '{relative}' resolves outside {base} ({how}, to {target}); use a path "
                              "inside the data dir, or point DSM_DATA_DIR at the disk you want")
    return target
