"""`<dataset>/published`: the cleaned data as a tagged version on the dataset's remote, and the blocking
round_trip check that reads it back at its pinned commit (`round_trip.py`)."""

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from dsm_assets import publishing, round_trip
from dsm_assets.checks import CheckOutcome
from dsm_assets.defs import handoff
from dsm_assets.defs.checks import check_result
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.keys import cleaned_key, published_key
from dsm_assets.defs.presentation import asset_step, check_step, owners_and_tags
from dsm_assets.defs.resources import DsmPaths, DsmRemotes
from dsm_assets.registry import DatasetSpec

CODE_VERSION = "published-1"


def build_published_asset(*, spec: DatasetSpec) -> dg.AssetsDefinition:
    @asset_step(
        f"publish_{spec.name}",
        key=published_key(spec), deps=[cleaned_key(spec)], group_name=spec.name, code_version=CODE_VERSION,
        **owners_and_tags(spec), kinds={spec.remote.kind}, metadata={"remote": spec.remote.display(spec.name)},
        description=f"{spec.name} for: {spec.use}. Published as a version (v1.0, v1.1, …) to "
                    f"{spec.remote.display(spec.name)}; unchanged content publishes nothing. Check: round_trip "
                    "(blocking).",
    )
    def _published(context: dg.AssetExecutionContext, dsm_paths: DsmPaths,
                   dsm_remotes: DsmRemotes) -> dg.MaterializeResult:
        cleaned = handoff.read_cleaned(context.instance, spec)
        if cleaned is None:
            raise dg.Failure(f"{spec.name}/cleaned has no materialised file; materialise it first")
        with as_failure():
            remote = dsm_remotes.open(spec, dsm_paths.data)
            outcome = publishing.publish_cleaned(spec, remote, cleaned, data_dir=dsm_paths.data,
                                                 repair=_round_trip_failed(context.instance, spec))
        if outcome.repaired:
            context.log.warning(f"{spec.name}: {outcome.tag} was corrupt on the remote; re-stored "
                                f"{', '.join(outcome.repaired)} from the cleaned data")
        verb = "published" if outcome.new else "unchanged, still"
        context.log.info(f"{spec.name}: {verb} {outcome.tag} ({outcome.commit[:12]}), "
                         f"{outcome.bytes_uploaded} bytes uploaded, {outcome.bytes_reused} reused "
                         f"({len(outcome.files) - outcome.files_reused} files uploaded, {outcome.files_reused} "
                         "already on the remote)")
        return dg.MaterializeResult(data_version=dg.DataVersion(outcome.commit),
                                    metadata=handoff.published_metadata(outcome))

    return _published


def _round_trip_failed(instance: dg.DagsterInstance, spec: DatasetSpec) -> bool:
    """Whether the latest round_trip said the published version does not read back (then publishing
    unchanged content repairs the remote's copy instead of only reporting "unchanged")."""
    key = dg.AssetCheckKey(published_key(spec), round_trip.NAME)
    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    # the latest one that finished (this run's own round_trip is already recorded as planned): limit=1 is
    # "the latest", not a cap on history
    latest = instance.event_log_storage.get_asset_check_execution_history(key, limit=1, status=done)
    return bool(latest) and latest[0].status == AssetCheckExecutionRecordStatus.FAILED


def build_round_trip_check(*, spec: DatasetSpec) -> dg.AssetChecksDefinition:
    @check_step(f"round_trip_{spec.name}", dg.AssetCheckSpec(
        round_trip.NAME, asset=published_key(spec), blocking=True, description=round_trip.DESCRIPTION))
    def _round_trip(context: dg.AssetCheckExecutionContext, dsm_paths: DsmPaths,
                    dsm_remotes: DsmRemotes) -> dg.AssetCheckResult:
        published = handoff.read_published(context.instance, spec)
        cleaned = handoff.read_cleaned(context.instance, spec)
        if published is None or cleaned is None:
            return check_result(CheckOutcome(round_trip.NAME, False, "nothing published yet; materialise first"))
        return check_result(round_trip.check_round_trip(lambda: dsm_remotes.open(spec, dsm_paths.data), published,
                                                        cleaned, data_dir=dsm_paths.data))

    return _round_trip
