"""Keyword-only factories: one registry entry → its assets and checks; a registry → one Definitions."""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from dsm_assets.defs.automation import build_automation_sensor
from dsm_assets.defs.cache import build_cache_asset, build_cache_schedule, build_preflight_check
from dsm_assets.defs.cleaned import build_cleaned_asset, build_cleaned_checks
from dsm_assets.defs.executor import executor_from_env
from dsm_assets.defs.keys import raw_key
from dsm_assets.defs.model import build_model_asset, build_model_check
from dsm_assets.defs.published import build_published_asset, build_round_trip_check
from dsm_assets.defs.raw import build_raw_asset, build_raw_watch_sensor
from dsm_assets.defs.recorded import build_recorded_models_sensor
from dsm_assets.defs.resources import DsmPaths, DsmRemotes
from dsm_assets.defs.shards import build_shards_asset, build_shards_checks
from dsm_assets.registry import DatasetSpec, Registry

OBSERVE_JOB = "observe_raw"
MATERIALIZE_JOB = "materialize_all"
PUBLISH_JOB = "publish_new_data"


@dataclass(frozen=True)
class DatasetDefs:
    assets: list[dg.AssetsDefinition]
    checks: list[dg.AssetChecksDefinition]


def build_dataset_defs(*, spec: DatasetSpec, registry: Registry) -> DatasetDefs:
    return DatasetDefs(
        assets=[build_raw_asset(spec=spec), build_cleaned_asset(spec=spec), build_published_asset(spec=spec),
                build_cache_asset(spec=spec, keep=registry.cache.keep), build_shards_asset(spec=spec)],
        checks=[build_cleaned_checks(spec=spec), build_round_trip_check(spec=spec),
                build_preflight_check(spec=spec, registry=registry), build_shards_checks(spec=spec)],
    )


def build_definitions(*, registry: Registry, data_dir: Path, outputs_dir: Path,
                      remotes: DsmRemotes | None = None,
                      executor: dg.ExecutorDefinition | None = None) -> dg.Definitions:
    per_dataset = [build_dataset_defs(spec=spec, registry=registry) for spec in registry.datasets]
    raw_keys = [raw_key(spec) for spec in registry.datasets]
    observe = dg.define_asset_job(OBSERVE_JOB, selection=dg.AssetSelection.assets(*raw_keys),
                                  description="Observe every raw source (fingerprint the raw files).")
    materialize = dg.define_asset_job(
        MATERIALIZE_JOB, selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*raw_keys),
        description="Materialize every asset downstream of the raw sources, with their checks.",
    )
    publish = dg.define_asset_job(
        PUBLISH_JOB, selection=dg.AssetSelection.assets(*raw_keys).downstream(depth=2),
        description="New raw data to a new version in one run: observe the raw files, clean them, publish a "
                    "version where the content changed and round-trip check it. Automation then refreshes "
                    "caches, shards and models.",
    )
    models = [build_model_asset(model=m, dataset=registry.get(m.dataset), registry_dir=registry.path.parent)
              for m in registry.models]
    return dg.Definitions(
        assets=[*(a for d in per_dataset for a in d.assets), *models],
        asset_checks=[*(c for d in per_dataset for c in d.checks),
                      *(build_model_check(model=m) for m in registry.models)],
        jobs=[publish, observe, materialize],
        schedules=[build_cache_schedule(registry=registry)],
        sensors=[build_automation_sensor(), build_raw_watch_sensor(registry=registry),
                 build_recorded_models_sensor(registry=registry)],
        executor=executor or executor_from_env(),
        resources={"dsm_paths": DsmPaths(data_dir=str(data_dir), outputs_dir=str(outputs_dir)),
                   "dsm_remotes": remotes or DsmRemotes.from_env()},
    )
