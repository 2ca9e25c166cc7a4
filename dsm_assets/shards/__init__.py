"""cache → shards: WebDataset tar shards of the cached version, and the manifest that is their one truth.

    <outputs>/shards/<dataset>/<tag>-<commit12>/<dataset>-000000.tar[.gz] …   manifest.json

`encoding` turns rows into samples, `tar` writes one shard, `manifest` seals and verifies the manifest,
`writing` shards a cached version (reusing shards that check out), `reading` reads them back, `checks`
holds the shard checks and `decoding` the audio decoder webdataset lacks (`audio_decoder`). The same data
gives byte-identical shards and the same manifest hash."""

from __future__ import annotations

from dsm_assets.errors import ShardError
from dsm_assets.shards.decoding import audio_decoder, decode_audio
from dsm_assets.shards.manifest import (
    FORMAT,
    SEALS,
    SELF_HASH,
    SHARDS_MANIFEST,
    field_groups,
    manifest_hash,
    manifest_problem,
    sealed,
    verify_shards,
)
from dsm_assets.shards.reading import current_shards, read_back, shard_urls, webdataset_pipeline
from dsm_assets.shards.writing import ShardsResult, shard_count, write_shards

__all__ = [
    "FORMAT",
    "SEALS",
    "SELF_HASH",
    "SHARDS_MANIFEST",
    "ShardError",
    "ShardsResult",
    "audio_decoder",
    "current_shards",
    "decode_audio",
    "field_groups",
    "manifest_hash",
    "manifest_problem",
    "read_back",
    "sealed",
    "shard_count",
    "shard_urls",
    "verify_shards",
    "webdataset_pipeline",
    "write_shards",
]
