"""Every asset key of the graph, built in one place: `<dataset>/raw|cleaned|published|cache|shards` per
registered dataset and `models/<name>` per model."""

import dagster as dg

from dsm_assets.registry import DatasetSpec, ModelSpec

# One word for the models' group and key prefix: models/<name> in the `models` group.
MODELS = "models"


def raw_key(spec: DatasetSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "raw"])


def cleaned_key(spec: DatasetSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "cleaned"])


def published_key(spec: DatasetSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "published"])


def cache_key(spec: DatasetSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "cache"])


def shards_key(spec: DatasetSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "shards"])


def model_key(model: ModelSpec | str) -> dg.AssetKey:
    return dg.AssetKey([MODELS, model if isinstance(model, str) else model.name])
