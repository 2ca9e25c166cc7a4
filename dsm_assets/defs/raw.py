"""`<dataset>/raw`: an observable source whose data version is the raw files' content fingerprint."""

import warnings

import dagster as dg

from dsm_assets import fingerprint
from dsm_assets.cleaning import statcache_path
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.presentation import labels
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.registry import DatasetSpec
from dsm_assets.sources import resolve_files

# The decorator is beta but the only way to give an observable source a code_version; hide its nag.
warnings.filterwarnings("ignore", message=".*multi_observable_source_asset.*", category=dg.BetaWarning)

CODE_VERSION = "raw-1"


def raw_key(spec: DatasetSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "raw"])


def build_raw_asset(*, spec: DatasetSpec) -> dg.AssetsDefinition:
    key = raw_key(spec)

    @dg.multi_observable_source_asset(
        name=f"{spec.name}__raw",
        specs=[dg.AssetSpec(
            key, group_name=spec.name, code_version=CODE_VERSION, kinds={spec.source.format}, **labels(spec),
            description=f"Raw files `{spec.source.path}` (under the data dir) for: {spec.use}",
            metadata={"source": spec.source.path, "format": spec.source.format},
        )],
    )
    def _observe(context: dg.AssetExecutionContext, dsm_paths: DsmPaths):
        with as_failure():
            files = resolve_files(spec, dsm_paths.data)
            fp = fingerprint.fingerprint_files(files, dsm_paths.data, statcache_path(dsm_paths.data, spec.name))
        context.log.info(f"{spec.name}: {fp.files} file(s), {fp.bytes} bytes, re-read {fp.rehashed}")
        yield dg.ObserveResult(
            asset_key=key,
            data_version=dg.DataVersion(fp.digest),
            metadata={"files": fp.files, "bytes": fp.bytes, "fingerprint": fp.digest,
                      "files_rehashed": fp.rehashed},
        )

    return _observe
