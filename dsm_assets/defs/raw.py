"""`<dataset>/raw`: an observable source whose data version is the raw files' content fingerprint, and the
raw_files sensor that observes it whenever the files change, so nobody has to press Observe."""

import json
from pathlib import Path

import dagster as dg

from dsm_assets import fingerprint
from dsm_assets.defs.automation import DATA_VERSION_TAG
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.keys import raw_key
from dsm_assets.defs.presentation import beta_quietly, owners_and_tags, size
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.errors import DsmError
from dsm_assets.layout import statcache_path
from dsm_assets.registry import DatasetSpec, Registry
from dsm_assets.sources import resolve_files

CODE_VERSION = "raw-1"
WATCH_SENSOR = "raw_files"
WATCH_SECONDS = 30


def build_raw_asset(*, spec: DatasetSpec) -> dg.AssetsDefinition:
    key = raw_key(spec)

    def _observe(context: dg.AssetExecutionContext, dsm_paths: DsmPaths):
        with as_failure():
            fp = _fingerprint(spec, dsm_paths.data)
        context.log.info(f"{spec.name}: {fp.files} file(s), {fp.bytes} bytes, re-read {fp.rehashed}")
        yield dg.ObserveResult(asset_key=key, data_version=dg.DataVersion(fp.digest), metadata=_metadata(fp))

    spec_ = dg.AssetSpec(key, group_name=spec.name, code_version=CODE_VERSION, kinds={spec.source.format},
                         **owners_and_tags(spec), description=f"Raw files {spec.source.path} (under the data dir) "
                                                              f"for: {spec.use}",
                         metadata={"source": spec.source.path, "format": spec.source.format})
    # the decorator is beta but the only way to give an observable source a code_version
    with beta_quietly("multi_observable_source_asset"):
        return dg.multi_observable_source_asset(name=f"observe_{spec.name}", specs=[spec_])(_observe)


def _fingerprint(spec: DatasetSpec, data_dir: Path) -> fingerprint.Fingerprint:
    return fingerprint.fingerprint_files(resolve_files(spec, data_dir), data_dir, statcache_path(data_dir, spec.name))


def _metadata(fp: fingerprint.Fingerprint) -> dict:
    return {"files": fp.files, "size": size(fp.bytes), "fingerprint": fp.digest, "files_rehashed": fp.rehashed}


def build_raw_watch_sensor(*, registry: Registry) -> dg.SensorDefinition:
    """Every WATCH_SECONDS, fingerprint each dataset's raw files (the stat cache makes an unchanged tree cost
    a stat per file) and record an observation, without a run, for each whose fingerprint changed: the UI
    then shows `cleaned` as unsynced and the one-click publish job has fresh raw versions to work from."""

    @dg.sensor(name=WATCH_SENSOR, minimum_interval_seconds=WATCH_SECONDS,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Observes raw files when they change (no run: an observation event per change).")
    def _watch(context: dg.SensorEvaluationContext, dsm_paths: DsmPaths) -> dg.SensorResult:
        events, problems = [], []
        for spec in registry.datasets:
            try:
                fp = _fingerprint(spec, dsm_paths.data)
            except DsmError as exc:
                problems.append(str(exc))
                continue
            record = context.instance.get_latest_data_version_record(raw_key(spec), is_source=True)
            seen = record.asset_observation.data_version if record and record.asset_observation else None
            if fp.digest != seen:
                events.append(dg.AssetObservation(asset_key=raw_key(spec), tags={DATA_VERSION_TAG: fp.digest},
                                                  metadata=_metadata(fp)))
        reported = set(json.loads(context.cursor)) if context.cursor else set()
        for problem in problems:
            if problem not in reported:  # once per problem, not every 30 s
                context.log.warning(problem)
        return dg.SensorResult(asset_events=events, cursor=json.dumps(sorted(problems)),
                               skip_reason=None if events else "raw files unchanged")

    return _watch
