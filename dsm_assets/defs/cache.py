"""`<dataset>/cache`: the latest verified version on local disk, its blocking preflight check, and the
cache_refresh schedule.

Refresh triggers: the schedule (cron from the registry) re-verifies and repairs every cache, and the
automation condition (defs/automation.py) refreshes a cache whose commit is not the latest published one
once that version's blocking round_trip check has passed."""

import dagster as dg

from dsm_assets import cache, preflight
from dsm_assets.defs import handoff
from dsm_assets.defs.automation import refresh_condition
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.keys import cache_key, published_key
from dsm_assets.defs.presentation import asset_step, check_step, owners_and_tags
from dsm_assets.defs.resources import DsmPaths, DsmRemotes
from dsm_assets.registry import DatasetSpec, Registry

CODE_VERSION = "cache-1"
SCHEDULE = "cache_refresh"


def build_cache_asset(*, spec: DatasetSpec, keep: int) -> dg.AssetsDefinition:
    target = f"the version pinned in the registry ({spec.pin})" if spec.pin else "the latest verified version"

    @asset_step(
        f"cache_{spec.name}",
        key=cache_key(spec), deps=[published_key(spec)], group_name=spec.name, code_version=CODE_VERSION,
        **owners_and_tags(spec), kinds={"parquet"},
        automation_condition=refresh_condition(holds=handoff.CACHE_HOLDS),
        description=f"Offline cache of {spec.name} ({spec.use}): {target}, pinned to its commit, in "
                    f"{spec.cache_dir} under the data dir; keeps {keep} versions. Check: preflight (blocking).",
    )
    def _cache(context: dg.AssetExecutionContext, dsm_paths: DsmPaths, dsm_remotes: DsmRemotes) -> dg.MaterializeResult:
        with as_failure():
            remote = dsm_remotes.open(spec, dsm_paths.data)
            result = cache.refresh_wanted(spec, remote, data_dir=dsm_paths.data, keep=keep)
        context.log.info(f"{spec.name}: cache {'refreshed to' if result.refreshed else 'already holds'} "
                         f"{result.tag} ({result.commit[:12]}) at {result.path}")
        return dg.MaterializeResult(data_version=dg.DataVersion(result.commit), metadata=handoff.cache_metadata(result))

    return _cache


def build_preflight_check(*, spec: DatasetSpec, registry: Registry) -> dg.AssetChecksDefinition:
    @check_step(f"preflight_{spec.name}", dg.AssetCheckSpec(
        "preflight", asset=cache_key(spec), blocking=True,
        description="The cache is complete (manifest, every file's size and sha256), holds the expected version "
                    "(registry pin, else the latest verified), and loads offline in a process with no network.",
    ))
    def _preflight(dsm_paths: DsmPaths) -> dg.AssetCheckResult:
        state = preflight.preflight(spec, dsm_paths.data, deep=True)
        if not state.ready:
            return dg.AssetCheckResult(passed=False, description=f"{state.status}: {state.reason}",
                                       metadata={"status": state.status})
        loaded, how = preflight.offline_probe(spec, dsm_paths.data, registry.path)
        return dg.AssetCheckResult(passed=loaded, description=f"{state.version} ready; {how}",
                                   metadata={"status": "ready" if loaded else "corrupt", "version": state.version})

    return _preflight


def build_cache_schedule(*, registry: Registry) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=SCHEDULE, cron_schedule=registry.cache.refresh_cron,
        target=dg.AssetSelection.assets(*(cache_key(s) for s in registry.datasets)),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Re-verifies every offline cache and refreshes or repairs it (cron: registry cache.refresh_cron).",
    )
