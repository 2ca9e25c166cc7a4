"""`<dataset>/shards`: WebDataset shards of the cached version, and the checks that keep them honest.

The manifest is the one truth: the reader takes its length from it, so a loader's estimated size cannot
drift. The registry's `shards.estimated_size` is only an expectation; when it disagrees with the manifest
the `estimated_size` check fails, loudly, naming both numbers."""

from pathlib import Path

import dagster as dg

from dsm_assets import shards
from dsm_assets.defs.automation import refresh_condition
from dsm_assets.defs.cache import cache_key
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.presentation import asset_step, check_step, labels, size
from dsm_assets.defs.resources import DsmPaths, DsmRemotes
from dsm_assets.registry import DatasetSpec
from dsm_assets.shards import checks as shard_checks

CODE_VERSION = "shards-1"


def shards_key(spec: DatasetSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "shards"])


def build_shards_asset(*, spec: DatasetSpec) -> dg.AssetsDefinition:
    @asset_step(
        f"shard_{spec.name}",
        key=shards_key(spec), deps=[cache_key(spec)], group_name=spec.name, code_version=CODE_VERSION, **labels(spec),
        kinds={"webdataset"}, automation_condition=refresh_condition(consumed="commit"),
        description=f"WebDataset tar shards of the cached {spec.name} ({spec.use}): {spec.shards.count} shard(s) "
                    "and a manifest.json (shards, bytes, samples, hashes, source version and commit).",
    )
    def _shards(context: dg.AssetExecutionContext, dsm_paths: DsmPaths,
                dsm_remotes: DsmRemotes) -> dg.MaterializeResult:
        event = context.instance.get_latest_materialization_event(cache_key(spec))
        if event is None:
            raise dg.Failure(f"{spec.name}/cache was never materialised; materialise it first")
        cache_folder = Path(event.asset_materialization.metadata["path"].value)
        published = None
        with as_failure():
            result = shards.write_shards(spec, cache_folder, dsm_paths.outputs)
            if spec.shards.publish:
                remote = dsm_remotes.open(spec, dsm_paths.data)
                published = shards.publish_shards(remote, result.folder, result.manifest, cache_folder)
        m = result.manifest
        if result.repaired:
            context.log.warning(f"{spec.name}: shards not reused, rewritten: {result.repaired}")
        if published and published.repaired:
            context.log.warning(f"{spec.name}: {published.tag} was corrupt on the remote; re-stored "
                                f"{', '.join(published.repaired)} from the local shards")
        context.log.info(f"{spec.name}: {'wrote' if result.written else 'reused'} {len(m['shards'])} shard(s), "
                         f"{m['total_samples']} samples, in {result.folder}")
        return dg.MaterializeResult(data_version=dg.DataVersion(result.manifest_hash), metadata={
            "version": m["version"], "commit": m["commit"], "shards": len(m["shards"]),
            "dagster/row_count": m["total_samples"], "size": size(sum(s["bytes"] for s in m["shards"])),
            "manifest": dg.MetadataValue.path(str(result.folder / shards.MANIFEST)),
            "manifest_hash": result.manifest_hash, "written": result.written, "fields": ", ".join(m["fields"]),
            "published": _published_text(published),
        })

    return _shards


def _published_text(published: shards.ShardsPublished | None) -> str:
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
        selected = {k.name for k in context.selected_asset_check_keys}
        event = context.instance.get_latest_materialization_event(key)
        if event is None:
            for name in selected:
                yield dg.AssetCheckResult(check_name=name, asset_key=key, passed=False,
                                          description="no shards recorded; materialise the asset first")
            return
        folder = Path(event.asset_materialization.metadata["manifest"].value).parent
        for outcome in shard_checks.check_shards(spec, folder, dsm_paths.data):
            if outcome.name in selected:
                yield dg.AssetCheckResult(check_name=outcome.name, asset_key=key, passed=outcome.passed,
                                          description=outcome.description, metadata=outcome.metadata)

    return _checks
