"""`models/<name>`: a model trained on a dataset's shards, with its lineage recorded and shown, retrained
when the dataset publishes a newly verified version (the same automation condition as cache and shards)."""

import json

import dagster as dg

from dsm_assets import training
from dsm_assets.defs import handoff
from dsm_assets.defs.automation import refresh_condition
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.keys import MODELS, model_key, shards_key
from dsm_assets.defs.presentation import asset_step, check_step, owners_and_tags
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.layout import cache_root
from dsm_assets.lineage import upstream_of
from dsm_assets.preflight import preflight
from dsm_assets.registry import DatasetSpec, ModelSpec
from dsm_assets.shards import SHARDS_MANIFEST


def build_model_asset(*, model: ModelSpec, dataset: DatasetSpec) -> dg.AssetsDefinition:
    name = model_key(model).to_user_string()

    @asset_step(
        f"train_{model.name}",
        key=model_key(model), deps=[shards_key(dataset)], group_name=MODELS, code_version=training.CODE_VERSION,
        **owners_and_tags(dataset), kinds={"scikitlearn"},
        automation_condition=refresh_condition(holds=handoff.MODEL_HOLDS),
        description=f"{model.use}. Trained on the shards of the cached, verified {dataset.name} version; each "
                    f"version in outputs/models/{model.name}/, with lineage.json. Check: accuracy at least "
                    f"{model.threshold}.",
    )
    def _model(context: dg.AssetExecutionContext, dsm_paths: DsmPaths) -> dg.MaterializeResult:
        state = preflight(dataset, dsm_paths.data)
        if not state.ready:
            raise dg.Failure(f"{name} was not trained: the {dataset.name} cache is {state.status}: {state.reason}")
        sharded = handoff.read_shards(context.instance, dataset)
        if sharded is None:
            raise dg.Failure(f"{dataset.name}/shards was never materialised; materialise it first")
        manifest = json.loads((sharded.folder / SHARDS_MANIFEST).read_text())
        if manifest["commit"] != state.commit:
            raise dg.Failure(f"{name} was not trained: the {dataset.name} shards are of {manifest['version']} but "
                             f"the cache holds {state.version}; materialise {dataset.name}/shards")
        with as_failure():
            upstream = upstream_of(dataset, dsm_paths.data, manifest["version"], manifest["commit"],
                                   manifest["content_hash"])
            result = training.train_model(model, dataset, shards_folder=sharded.folder, outputs_dir=dsm_paths.outputs,
                                          upstream=upstream, run_id=context.run.run_id)
        context.log.info(f"{name}: {'trained' if result.trained else 'reused'} {result.version}, accuracy "
                         f"{result.metrics['accuracy']:.3f}, on {dataset.name} {manifest['version']}")
        return dg.MaterializeResult(data_version=dg.DataVersion(result.version),
                                    metadata=handoff.model_metadata(result, cache_root(dataset, dsm_paths.data)))

    return _model


def build_model_check(*, model: ModelSpec) -> dg.AssetChecksDefinition:
    @check_step(f"check_{model.name}_accuracy", dg.AssetCheckSpec(
        "accuracy", asset=model_key(model), blocking=True,
        description=f"Held-out accuracy is at least {model.threshold}."))
    def _accuracy(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        trained = handoff.read_model(context.instance, model)
        if trained is None:
            return dg.AssetCheckResult(passed=False, description="no trained model yet")
        accuracy = trained.accuracy
        return dg.AssetCheckResult(passed=accuracy >= model.threshold,
                                   description=f"accuracy {accuracy:.3f} (threshold {model.threshold})",
                                   metadata={"accuracy": dg.MetadataValue.text(f"{accuracy:.3f}"),
                                             "threshold": model.threshold})

    return _accuracy
