"""`<dataset>/cleaned`: the cleaning step as an asset, plus its blocking quality checks."""

from pathlib import Path
from typing import Any

import dagster as dg

from dsm_assets import cleaning, quality
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.presentation import asset_step, check_step, labels, markdown_table, size
from dsm_assets.defs.raw import raw_key
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.publishing import CleanedRef
from dsm_assets.registry import DatasetSpec

CODE_VERSION = f"cleaned-{cleaning.CODE_VERSION}"
# Preview cells are cut short so that every column fits the asset page's metadata panel.
PREVIEW_CELL = 32


def cleaned_key(spec: DatasetSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "cleaned"])


def build_cleaned_asset(*, spec: DatasetSpec) -> dg.AssetsDefinition:
    rules = ", ".join(quality.check_names(spec))

    @asset_step(
        f"clean_{spec.name}",
        key=cleaned_key(spec), deps=[raw_key(spec)], group_name=spec.name, code_version=CODE_VERSION, **labels(spec),
        kinds={"parquet"},
        description=f"Cleaned {spec.name} for: {spec.use}. Checks: {rules}.",
    )
    def _cleaned(context: dg.AssetExecutionContext, dsm_paths: DsmPaths) -> dg.MaterializeResult:
        with as_failure():
            result = cleaning.clean_dataset(spec, dsm_paths.data)
        if result.repaired:
            context.log.warning(f"{spec.name}: not reused, rebuilt: {result.repaired}")
        verb = "reused" if result.reused else "wrote"
        context.log.info(f"{spec.name}: {verb} {result.path.name}: {result.rows_in} rows in, "
                         f"{result.rows_out} out, dropped {result.dropped or 'none'}")
        return dg.MaterializeResult(data_version=dg.DataVersion(result.version), metadata=_metadata(spec, result))

    return _cleaned


def _metadata(spec: DatasetSpec, result: cleaning.CleanResult) -> dict[str, Any]:
    columns = [dg.TableColumn(name, type_, description=spec.column_docs.get(name))
               for name, type_ in result.schema.items()]
    meta: dict[str, Any] = {
        "dagster/row_count": result.rows_out,
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "rows_dropped": result.rows_in - result.rows_out,
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "preview": dg.MetadataValue.md(markdown_table(result.preview, list(result.schema), max_cell=PREVIEW_CELL)),
        "path": dg.MetadataValue.path(str(result.path)),
        "size": size(result.path.stat().st_size),
        "content_hash": result.version,
        "raw_fingerprint": result.raw_fingerprint,
        "reused": result.reused,
    }
    meta.update({f"dropped_{reason.replace(':', '_')}": n for reason, n in result.dropped.items()})
    return meta


def build_cleaned_checks(*, spec: DatasetSpec) -> dg.AssetChecksDefinition:
    key = cleaned_key(spec)
    specs = [dg.AssetCheckSpec(name, asset=key, blocking=True, description=quality.DESCRIPTIONS[name])
             for name in quality.check_names(spec)]

    @check_step(f"check_{spec.name}_cleaned", *specs)
    def _checks(context: dg.AssetCheckExecutionContext):
        selected = {k.name for k in context.selected_asset_check_keys}
        cleaned = latest_cleaned(context.instance, spec)
        if cleaned is None:
            for name in selected:
                yield dg.AssetCheckResult(check_name=name, asset_key=key, passed=False,
                                          description="no cleaned file recorded; materialize the asset first")
            return
        for outcome in quality.check_cleaned(spec, cleaned.path):
            if outcome.name in selected:
                yield dg.AssetCheckResult(check_name=outcome.name, asset_key=key, passed=outcome.passed,
                                          description=outcome.description, metadata=outcome.metadata)

    return _checks


def latest_cleaned(instance: dg.DagsterInstance, spec: DatasetSpec) -> CleanedRef | None:
    """The cleaned file the latest materialisation recorded (None if never materialised or since deleted)."""
    event = instance.get_latest_materialization_event(cleaned_key(spec))
    if event is None or event.asset_materialization is None:
        return None
    meta = event.asset_materialization.metadata
    path = Path(meta["path"].value)
    if not path.exists():
        return None
    schema = {c.name: c.type for c in meta["dagster/column_schema"].value.columns}
    return CleanedRef(path=path, content_hash=meta["content_hash"].value, rows=meta["rows_out"].value, schema=schema)
