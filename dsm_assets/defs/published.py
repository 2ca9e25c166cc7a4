"""`<dataset>/published`: the cleaned data as a tagged version on the dataset's remote, and the blocking
round_trip check that reads it back at its pinned commit."""

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from dsm_assets import publishing
from dsm_assets.contenthash import hash_table
from dsm_assets.defs.cleaned import cleaned_key, latest_cleaned
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.presentation import asset_step, check_step, labels, location, size
from dsm_assets.defs.resources import DsmPaths, DsmRemotes
from dsm_assets.errors import DsmError
from dsm_assets.registry import DatasetSpec

CODE_VERSION = "published-1"


def published_key(spec: DatasetSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "published"])


def build_published_asset(*, spec: DatasetSpec) -> dg.AssetsDefinition:
    @asset_step(
        f"publish_{spec.name}",
        key=published_key(spec), deps=[cleaned_key(spec)], group_name=spec.name, code_version=CODE_VERSION,
        **labels(spec),
        kinds={spec.remote.kind}, metadata={"remote": spec.remote.display(spec.name)},
        description=f"{spec.name} for: {spec.use}. Published as a version (v1.0, v1.1, …) to "
                    f"{spec.remote.display(spec.name)}; unchanged content publishes nothing. Check: round_trip "
                    "(blocking).",
    )
    def _published(context: dg.AssetExecutionContext, dsm_paths: DsmPaths,
                   dsm_remotes: DsmRemotes) -> dg.MaterializeResult:
        cleaned = latest_cleaned(context.instance, spec)
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
                         f"{outcome.bytes_uploaded} bytes uploaded")
        return dg.MaterializeResult(
            data_version=dg.DataVersion(outcome.commit),
            metadata={
                "version": outcome.tag,
                "commit": outcome.commit,
                "url": location(outcome.url),
                "uploaded": size(outcome.bytes_uploaded),
                "bytes_uploaded": outcome.bytes_uploaded,
                "files": len(outcome.files),
                "new_version": outcome.new,
                "content_hash": outcome.content_hash,
                "dagster/row_count": outcome.rows,
            },
        )

    return _published


def _round_trip_failed(instance: dg.DagsterInstance, spec: DatasetSpec) -> bool:
    """Whether the latest round_trip said the published version does not read back (then publishing
    unchanged content repairs the remote's copy instead of only reporting "unchanged")."""
    key = dg.AssetCheckKey(published_key(spec), "round_trip")
    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    # the latest that finished: this run's own round_trip is already recorded as planned
    latest = instance.event_log_storage.get_asset_check_execution_history(key, limit=1, status=done)
    return bool(latest) and latest[0].status == AssetCheckExecutionRecordStatus.FAILED


def build_round_trip_check(*, spec: DatasetSpec) -> dg.AssetChecksDefinition:
    @check_step(f"round_trip_{spec.name}", dg.AssetCheckSpec(
        "round_trip", asset=published_key(spec), blocking=True,
        description="Loads the published version back at its pinned commit through the remote's normal read "
                    "path and compares row count and content hash with the cleaned data.",
    ))
    def _round_trip(context: dg.AssetCheckExecutionContext, dsm_paths: DsmPaths,
                    dsm_remotes: DsmRemotes) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(published_key(spec))
        cleaned = latest_cleaned(context.instance, spec)
        if event is None or cleaned is None:
            return dg.AssetCheckResult(passed=False, description="nothing published yet; materialise first")
        commit = event.asset_materialization.metadata["commit"].value
        try:
            table = dsm_remotes.open(spec, dsm_paths.data).load_table(commit)
        except DsmError as exc:
            return dg.AssetCheckResult(passed=False, description=f"could not read {commit[:12]} back: {exc}")
        got_hash = hash_table(table)
        problems = []
        if table.num_rows != cleaned.rows:
            problems.append(f"rows: remote {table.num_rows} vs cleaned {cleaned.rows}")
        if got_hash != cleaned.content_hash:
            problems.append(f"content hash: remote {got_hash} vs cleaned {cleaned.content_hash}")
        text = "; ".join(problems) or f"{table.num_rows} rows, content hash {got_hash[:12]} match the cleaned data"
        if not problems:  # what the cache asset and `dsm preflight` take as the latest verified version
            meta = event.asset_materialization.metadata
            publishing.record_verified(dsm_paths.data, spec.name, tag=meta["version"].value, commit=commit,
                                       url=meta["url"].value)
        return dg.AssetCheckResult(passed=not problems, description=text, metadata={
            "commit": commit, "remote_rows": table.num_rows, "cleaned_rows": cleaned.rows,
            "remote_content_hash": got_hash, "cleaned_content_hash": cleaned.content_hash})

    return _round_trip
