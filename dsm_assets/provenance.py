"""What this process loaded: every `dsm_assets.load` remembers the version it returned, so a model
recorded later (`record_model`) states the data it was trained on from fact, not from what the user types."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loaded:
    """A version `dsm_assets.load` returned in this process."""

    dataset: str
    tag: str
    commit: str
    content_hash: str


_LOADED: dict[str, Loaded] = {}


def remember_load(loaded: Loaded) -> None:
    _LOADED[loaded.dataset] = loaded


def loaded_version(dataset: str) -> Loaded | None:
    """The last version of `dataset` this process loaded, None if it loaded none."""
    return _LOADED.get(dataset)
