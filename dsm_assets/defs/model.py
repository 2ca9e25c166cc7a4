"""`model/<name>`: a model trained on a dataset's shards, with its lineage recorded and shown, retrained
when the dataset publishes a newly verified version (the same automation condition as cache and shards)."""

import json
from pathlib import Path
from typing import Any

import dagster as dg

from dsm_assets import training
from dsm_assets.defs.cache import REFRESH_ON_VERIFIED_PUBLISH
from dsm_assets.defs.cleaned import cleaned_key
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.presentation import labels
from dsm_assets.defs.published import published_key
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.defs.shards import shards_key
from dsm_assets.preflight import preflight
from dsm_assets.registry import DatasetSpec, ModelSpec
from dsm_assets.shards import MANIFEST

GROUP = "models"


def model_key(model: ModelSpec) -> dg.AssetKey:
    return dg.AssetKey(["model", model.name])


def build_model_asset(*, model: ModelSpec, dataset: DatasetSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=model_key(model), deps=[shards_key(dataset)], group_name=GROUP, code_version=training.CODE_VERSION,
        **labels(dataset),
        kinds={"scikitlearn"}, automation_condition=REFRESH_ON_VERIFIED_PUBLISH,
        description=f"{model.use}. Trained on the `{dataset.name}` shards of the cached, verified version; writes "
                    f"outputs/models/{model.name}/<version>/ with lineage.json. Check: accuracy >= {model.threshold}.",
    )
    def _model(context: dg.AssetExecutionContext, dsm_paths: DsmPaths) -> dg.MaterializeResult:
        state = preflight(dataset, dsm_paths.data)
        if not state.ready:
            raise dg.Failure(f"model/{model.name} was not trained: the {dataset.name} cache is {state.status}: "
                             f"{state.reason}")
        folder = _shards_folder(context.instance, dataset)
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest["commit"] != state.commit:
            raise dg.Failure(f"model/{model.name} was not trained: the {dataset.name} shards are of "
                             f"{manifest['version']} but the cache holds {state.version}; materialise "
                             f"{dataset.name}/shards")
        with as_failure():
            result = training.train_model(model, dataset, shards_folder=folder, outputs_dir=dsm_paths.outputs,
                                          upstream=upstream(context.instance, dataset, manifest),
                                          run_id=context.run.run_id)
        context.log.info(f"model/{model.name}: {'trained' if result.trained else 'reused'} {result.version}, "
                         f"accuracy {result.metrics['accuracy']:.3f}, on {dataset.name} {manifest['version']}")
        return dg.MaterializeResult(data_version=dg.DataVersion(result.version), metadata={
            "accuracy": float(result.metrics["accuracy"]),
            "model_version": result.version,
            "dataset_version": manifest["version"],
            "dataset_commit": manifest["commit"],
            "lineage": dg.MetadataValue.path(str(result.folder / training.LINEAGE)),
            "model_path": dg.MetadataValue.path(str(result.folder / "model.joblib")),
            "train_samples": result.metrics["train_samples"],
            "test_samples": result.metrics["test_samples"],
            "trained": result.trained,
        })

    return _model


def _shards_folder(instance: dg.DagsterInstance, dataset: DatasetSpec) -> Path:
    event = instance.get_latest_materialization_event(shards_key(dataset))
    if event is None:
        raise dg.Failure(f"{dataset.name}/shards was never materialised; materialise it first")
    return Path(event.asset_materialization.metadata["manifest"].value).parent


def upstream(instance: dg.DagsterInstance, dataset: DatasetSpec, manifest: dict[str, Any]) -> dict[str, Any]:
    """What the instance knows about this exact data: the remote URL of its commit, and the cleaned and raw
    versions it came from (found by data version, so an older model still gets its own history)."""
    found: dict[str, Any] = {"remote_url": None, "cleaned_version": manifest["content_hash"], "raw_fingerprint": None}
    for record in instance.fetch_materializations(published_key(dataset), limit=100).records:
        meta = record.asset_materialization.metadata
        if meta.get("commit") and meta["commit"].value == manifest["commit"]:
            found["remote_url"] = meta["url"].value
            break
    for record in instance.fetch_materializations(cleaned_key(dataset), limit=100).records:
        meta = record.asset_materialization.metadata
        if meta.get("content_hash") and meta["content_hash"].value == manifest["content_hash"]:
            found["raw_fingerprint"] = meta["raw_fingerprint"].value
            break
    return found


def build_model_check(*, model: ModelSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=model_key(model), name="accuracy", blocking=True,
                    description=f"Held-out accuracy is at least {model.threshold}.")
    def _accuracy(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(model_key(model))
        if event is None:
            return dg.AssetCheckResult(passed=False, description="no trained model yet")
        accuracy = event.asset_materialization.metadata["accuracy"].value
        return dg.AssetCheckResult(passed=accuracy >= model.threshold,
                                   description=f"accuracy {accuracy:.3f} (threshold {model.threshold})",
                                   metadata={"accuracy": accuracy, "threshold": model.threshold})

    return _accuracy
