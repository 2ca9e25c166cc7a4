"""The recorded_models sensor: models trained outside Dagster (`record_model` on a training node with no
network) become materialisations of their model asset, with the same metadata as a model trained here.
The node never reaches the Dagster instance: the sensor reads the lineage files on the shared filesystem."""

import json

import dagster as dg

from dsm_assets.defs import handoff
from dsm_assets.defs.automation import DATA_VERSION_TAG
from dsm_assets.defs.keys import model_key
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.errors import DsmError
from dsm_assets.layout import cache_root, models_dir
from dsm_assets.lineage import LINEAGE, model_versions, read_lineage_file
from dsm_assets.recording import RECORDED_BY
from dsm_assets.registry import ModelSpec, Registry
from dsm_assets.training import ModelResult

SENSOR = "recorded_models"
INTERVAL_SECONDS = 30


def build_recorded_models_sensor(*, registry: Registry) -> dg.SensorDefinition:
    @dg.sensor(name=SENSOR, minimum_interval_seconds=INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Reports models recorded by training jobs outside Dagster (dsm_assets.record_model).")
    def _watch(context: dg.SensorEvaluationContext, dsm_paths: DsmPaths) -> dg.SensorResult:
        reported = set(json.loads(context.cursor)) if context.cursor else set()
        events = []
        for model in registry.models:
            for version in model_versions(dsm_paths.outputs, model.name):
                if f"{model.name}/{version}" not in reported and (event := _event(model, version, registry, dsm_paths)):
                    events.append(event)
                    reported.add(f"{model.name}/{version}")
        return dg.SensorResult(asset_events=events, cursor=json.dumps(sorted(reported)),
                               skip_reason=None if events else "no newly recorded models")

    return _watch


def _event(model: ModelSpec, version: str, registry: Registry, dsm_paths: DsmPaths) -> dg.AssetMaterialization | None:
    """The materialisation of a version `record_model` wrote (None for one trained here, or unreadable)."""
    folder = models_dir(dsm_paths.outputs, model.name) / version
    try:
        lineage = read_lineage_file(folder / LINEAGE, model.name)
    except DsmError:
        return None
    if not lineage or lineage.get("recorded_by") != RECORDED_BY:
        return None
    result = ModelResult(model.name, version, folder, lineage["metrics"], lineage, trained=True)
    cache = cache_root(registry.get(model.dataset), dsm_paths.data)
    return dg.AssetMaterialization(asset_key=model_key(model), metadata=handoff.model_metadata(result, cache),
                                   tags={DATA_VERSION_TAG: version})
