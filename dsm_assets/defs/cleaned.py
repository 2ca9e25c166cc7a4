"""`<dataset>/cleaned`: the cleaning step as an asset, plus its blocking quality checks."""

import dagster as dg

from dsm_assets import cleaning, quality
from dsm_assets.defs import handoff
from dsm_assets.defs.checks import all_failed, selected_results
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.keys import cleaned_key, raw_key
from dsm_assets.defs.presentation import asset_step, check_step, owners_and_tags
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.registry import DatasetSpec

CODE_VERSION = f"cleaned-{cleaning.CODE_VERSION}"


def build_cleaned_asset(*, spec: DatasetSpec) -> dg.AssetsDefinition:
    rules = ", ".join(quality.check_names(spec))

    @asset_step(
        f"clean_{spec.name}",
        key=cleaned_key(spec), deps=[raw_key(spec)], group_name=spec.name, code_version=CODE_VERSION,
        **owners_and_tags(spec), kinds={"parquet"},
        description=f"Cleaned {spec.name} for: {spec.use}. Checks: {rules}.",
    )
    def _cleaned(context: dg.AssetExecutionContext, dsm_paths: DsmPaths) -> dg.MaterializeResult:
        with as_failure():
            result = cleaning.clean_dataset(spec, dsm_paths.data)
        if result.repaired:
            context.log.warning(f"{spec.name}: not reused, rebuilt: {result.repaired}")
        verb = "reused" if result.reused else "wrote"
        context.log.info(f"{spec.name}: {verb} {result.path.name}/ ({_files(len(result.files))}): {result.rows_in} "
                         f"rows in, {result.rows_out} out, dropped {result.dropped or 'none'}")
        if result.contact_sheet is not None:
            context.log.info(f"{spec.name}: contact sheet of 64 images spread over the rows: {result.contact_sheet}")
        return dg.MaterializeResult(data_version=dg.DataVersion(result.version),
                                    metadata=handoff.cleaned_metadata(spec, result))

    return _cleaned


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def build_cleaned_checks(*, spec: DatasetSpec) -> dg.AssetChecksDefinition:
    key = cleaned_key(spec)
    specs = [dg.AssetCheckSpec(name, asset=key, blocking=True, description=quality.DESCRIPTIONS[name])
             for name in quality.check_names(spec)]

    @check_step(f"check_{spec.name}_cleaned", *specs)
    def _checks(context: dg.AssetCheckExecutionContext):
        cleaned = handoff.read_cleaned(context.instance, spec)
        outcomes = (all_failed(quality.check_names(spec), "no cleaned file recorded; materialize the asset first")
                    if cleaned is None else quality.check_cleaned(spec, cleaned.files))
        yield from selected_results(context, key, outcomes)

    return _checks
