"""The round_trip check: read a published version back at its pinned commit through the remote's normal
read path, compare row count and content hash with the cleaned data it was published from, and record the
version as verified when they match (what the cache, preflight and `dsm_assets.load` then take). The
version is read and hashed a batch at a time (`Remote.read_batches`), never whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dsm_assets import atomic, state
from dsm_assets.checks import CheckOutcome
from dsm_assets.cleaning import CleanResult
from dsm_assets.contenthash import hash_batches
from dsm_assets.errors import DsmError
from dsm_assets.layout import staging_dir
from dsm_assets.records import PublishedVersion
from dsm_assets.remotes.base import Remote

NAME = "round_trip"
DESCRIPTION = ("Loads the published version back at its pinned commit through the remote's normal read path and "
               "compares row count and content hash with the cleaned data.")


def check_round_trip(open_remote: Callable[[], Remote], published: PublishedVersion, cleaned: CleanResult, *,
                     data_dir: Path) -> CheckOutcome:
    """The check's outcome; the remote is opened here so that one that cannot be opened fails the check."""
    commit = published.commit
    try:
        # batch by batch: memory stays bounded whatever the version's size; downloads go to the data dir's disk
        with atomic.scratch_dir(staging_dir(data_dir)) as scratch, \
                open_remote().read_batches(commit, scratch=scratch) as reader:
            got_hash, rows = hash_batches(reader.schema, reader)
    except DsmError as exc:
        return CheckOutcome(NAME, False, f"could not read {commit[:12]} back: {exc}")
    problems = []
    if rows != cleaned.rows_out:
        problems.append(f"rows: remote {rows} vs cleaned {cleaned.rows_out}")
    if got_hash != cleaned.version:
        problems.append(f"content hash: remote {got_hash} vs cleaned {cleaned.version}")
    text = "; ".join(problems) or f"{rows} rows, content hash {got_hash[:12]} match the cleaned data"
    if not problems:
        state.record_verified(data_dir, published.dataset, tag=published.tag, commit=commit, url=published.url)
    return CheckOutcome(NAME, not problems, text, metadata={
        "commit": commit, "remote_rows": rows, "cleaned_rows": cleaned.rows_out,
        "remote_content_hash": got_hash, "cleaned_content_hash": cleaned.version})
