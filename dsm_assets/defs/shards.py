"""`<dataset>/shards`: WebDataset shards of the cached version, and the checks that keep them honest.

The manifest is the one truth: the reader takes its length from it, so a loader's estimated size cannot
drift. The registry's `shards.estimated_size` is only an expectation; when it disagrees with the manifest
the `estimated_size` check fails, loudly, naming both numbers."""

import json
from pathlib import Path

import dagster as dg

from dsm_assets import shards
from dsm_assets.cache import read_manifest
from dsm_assets.defs import handoff
from dsm_assets.defs.automation import refresh_condition
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.keys import cache_key, shards_key
from dsm_assets.defs.presentation import asset_step, check_step, owners_and_tags
from dsm_assets.defs.resources import DsmPaths, DsmRemotes
from dsm_assets.layout import cache_version_dir
from dsm_assets.registry import DatasetSpec

CODE_VERSION = "shards-1"


def build_shards_asset(*, spec: DatasetSpec) -> dg.AssetsDefinition:
    @asset_step(
        f"shard_{spec.name}",
        key=shards_key(spec), deps=[cache_key(spec)], group_name=spec.name, code_version=CODE_VERSION,
        **owners_and_tags(spec), kinds={"webdataset"},
        automation_condition=refresh_condition(holds=handoff.SHARDS_HOLD),
        description=f"WebDataset tar shards of the cached {spec.name} ({spec.use}): {spec.shards.count} shard(s) "
                    "and a manifest.json (shards, bytes, samples, hashes, source version and commit).",
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
                published = shards.publish_shards(remote, result.folder, result.manifest, cached.folder)
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


def _published_text(published: shards.ShardsPublished | None) -> str:
    if published is None:
        return "not published"
    if published.new:
        return published.tag
    return f"already published as {published.tag}" + (f", repaired {len(published.repaired)} file(s)"
                                                       if published.repaired else "")


CHECKS = {
    "shard_count": "The manifest lists the registry's shards.count shards (fewer only when there are fewer "
                   "samples), and every one is on disk.",
    "integrity": "Every shard matches its size and hash in the manifest and is a complete tar that "
                 "webdataset.WebDataset reads with the manifest's sample count.",
    "total_samples": "The shards hold exactly the cached version's rows (the cleaned row count).",
    "estimated_size": "The registry's shards.estimated_size, when set, equals the manifest's total_samples.",
}


def build_shards_checks(*, spec: DatasetSpec) -> dg.AssetChecksDefinition:
    key = shards_key(spec)
    specs = [dg.AssetCheckSpec(name, asset=key, description=text, blocking=name != "estimated_size")
             for name, text in CHECKS.items()]

    @check_step(f"check_{spec.name}_shards", *specs)
    def _checks(context: dg.AssetCheckExecutionContext, dsm_paths: DsmPaths):
        selected = {k.name for k in context.selected_asset_check_keys}
        sharded = handoff.read_shards(context.instance, spec)
        if sharded is None:
            for name in selected:
                yield dg.AssetCheckResult(check_name=name, asset_key=key, passed=False,
                                          description="no shards recorded; materialise the asset first")
            return
        outcomes = evaluate(spec, sharded.folder, dsm_paths.data)
        for name in CHECKS:
            if name in selected:
                passed, text = outcomes[name]
                yield dg.AssetCheckResult(check_name=name, asset_key=key, passed=passed, description=text)

    return _checks


def evaluate(spec: DatasetSpec, folder: Path, data_dir: Path) -> dict[str, tuple[bool, str]]:
    """Each check's (passed, description) for the shards in `folder`."""
    try:
        manifest = json.loads((folder / shards.MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return {name: (False, f"manifest.json unreadable in {folder}: {exc}") for name in CHECKS}
    if problem := shards.manifest_problem(folder, manifest):
        return {name: (False, f"{problem}; materialise the shards again to rewrite it") for name in CHECKS}
    total = manifest["total_samples"]
    expected = max(1, min(spec.shards.count, total))
    present = [s for s in manifest["shards"] if (folder / s["name"]).is_file()]
    problems = shards.verify_shards(folder, manifest, deep=True) + shards.read_back(folder, manifest)
    rows = _source_rows(spec, data_dir, manifest)
    estimate = spec.shards.estimated_size
    return {
        "shard_count": (len(manifest["shards"]) == expected == len(present),
                        f"{len(present)} of {len(manifest['shards'])} listed shards present, registry expects "
                        f"{expected}"),
        "integrity": (not problems, "; ".join(dict.fromkeys(problems)) or f"{len(present)} shards verified"),
        "total_samples": (rows == total, f"shards hold {total} samples, the cached version has "
                                         f"{'no cache manifest' if rows is None else f'{rows} rows'}"),
        "estimated_size": (estimate is None or estimate == total,
                           "no estimated_size in the registry" if estimate is None else
                           f"registry shards.estimated_size is {estimate}, the manifest has {total}"
                           + ("" if estimate == total else "; update the registry (readers use the manifest)")),
    }


def _source_rows(spec: DatasetSpec, data_dir: Path, manifest: dict) -> int | None:
    """Rows of the cached version these shards were cut from, from that version's cache manifest."""
    try:
        return read_manifest(cache_version_dir(spec, data_dir, manifest["version"], manifest["commit"]))["rows"]
    except (OSError, ValueError, KeyError):
        return None
