"""`<dataset>/shards`: WebDataset shards of the cached version, and the checks that keep them honest.

The manifest is the one truth: the reader takes its length from it, so a loader's estimated size cannot
drift. The registry's `shards.estimated_size` is only an expectation; when it disagrees with the manifest
the `estimated_size` check fails, loudly, naming both numbers."""

import dagster as dg

from dsm_assets import shards
from dsm_assets.defs import handoff
from dsm_assets.defs.automation import refresh_condition
from dsm_assets.defs.checks import all_failed, selected_results
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.keys import cache_key, shards_key
from dsm_assets.defs.presentation import asset_step, check_step, owners_and_tags
from dsm_assets.defs.resources import DsmPaths, DsmRemotes
from dsm_assets.registry import DatasetSpec
from dsm_assets.shard_publishing import ShardsPublished, publish_shards
from dsm_assets.shards import checks as shard_checks

CODE_VERSION = "shards-3"


def build_shards_asset(*, spec: DatasetSpec) -> dg.AssetsDefinition:
    @asset_step(
        f"shard_{spec.name}",
        key=shards_key(spec), deps=[cache_key(spec)], group_name=spec.name, code_version=CODE_VERSION,
        **owners_and_tags(spec), kinds={"webdataset"},
        automation_condition=refresh_condition(holds=handoff.SHARDS_HOLD),
        description=f"WebDataset tar shards of the cached {spec.name} ({spec.use}): shards.count "
                    f"{spec.shards.count}, compression {spec.shards.compression}, and a manifest.json (shards, "
                    "bytes, samples, hashes, source version and commit).",
    )
    def _shards(context: dg.AssetExecutionContext, dsm_paths: DsmPaths,
                dsm_remotes: DsmRemotes) -> dg.MaterializeResult:
        cached = handoff.read_cache(context.instance, spec)
        if cached is None:
            raise dg.Failure(f"{spec.name}/cache was never materialised; materialise it first")
        published = None
        with as_failure():
            result = shards.write_shards(spec, cached.folder, dsm_paths.outputs)
            if spec.shards.publish:
                remote = dsm_remotes.open(spec, dsm_paths.data)
                published = publish_shards(remote, result.folder, result.manifest, cached.folder)
        m = result.manifest
        if result.repaired:
            context.log.warning(f"{spec.name}: shards not reused, rewritten: {result.repaired}")
        if published and published.repaired:
            context.log.warning(f"{spec.name}: {published.tag} was corrupt on the remote; re-stored "
                                f"{', '.join(published.repaired)} from the local shards")
        context.log.info(f"{spec.name}: {'wrote' if result.written else 'reused'} {len(m['shards'])} shard(s), "
                         f"{m['total_samples']} samples, in {result.folder}")
        return dg.MaterializeResult(data_version=dg.DataVersion(result.manifest_hash),
                                    metadata=handoff.shards_metadata(result, _published_text(published)))

    return _shards


def _published_text(published: ShardsPublished | None) -> str:
    if published is None:
        return "not published"
    if published.new:
        return published.tag
    return f"already published as {published.tag}" + (f", repaired {len(published.repaired)} file(s)"
                                                       if published.repaired else "")


def build_shards_checks(*, spec: DatasetSpec) -> dg.AssetChecksDefinition:
    key = shards_key(spec)
    specs = [dg.AssetCheckSpec(name, asset=key, description=text, blocking=name != "estimated_size")
             for name, text in shard_checks.DESCRIPTIONS.items()]

    @check_step(f"check_{spec.name}_shards", *specs)
    def _checks(context: dg.AssetCheckExecutionContext, dsm_paths: DsmPaths):
        sharded = handoff.read_shards(context.instance, spec)
        outcomes = (all_failed(shard_checks.DESCRIPTIONS, "no shards recorded; materialise the asset first")
                    if sharded is None else shard_checks.check_shards(spec, sharded.folder, dsm_paths.data))
        yield from selected_results(context, key, outcomes)

    return _checks
