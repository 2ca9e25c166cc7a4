"""`models/<name>`: a model trained on a dataset's shards, with its lineage recorded and shown, retrained
when the dataset publishes a newly verified version (the same automation condition as cache and shards)."""

import json
from pathlib import Path

import dagster as dg

from dsm_assets import training
from dsm_assets.defs import handoff
from dsm_assets.defs.automation import refresh_condition
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.keys import MODELS, model_key, shards_key
from dsm_assets.defs.pipes_training import run_training
from dsm_assets.defs.presentation import asset_step, check_step, owners_and_tags
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.errors import TrainingError
from dsm_assets.layout import cache_root, cache_version_dir
from dsm_assets.lineage import upstream_of
from dsm_assets.preflight import preflight
from dsm_assets.records import ShardSet
from dsm_assets.registry import DatasetSpec, ModelSpec
from dsm_assets.shards import SHARDS_MANIFEST


def build_model_asset(*, model: ModelSpec, dataset: DatasetSpec, registry_dir: Path) -> dg.AssetsDefinition:
    name = model_key(model).to_user_string()
    how = f"Trained by `{' '.join(model.train.command)}` through Dagster Pipes"

    @asset_step(
        f"train_{model.name}",
        key=model_key(model), deps=[shards_key(dataset)], group_name=MODELS,
        code_version=_code_version(model, registry_dir),
        **owners_and_tags(dataset), kinds={"pipes"},
        automation_condition=refresh_condition(holds=handoff.MODEL_HOLDS),
        description=f"{model.use}. {how} on the shards of the cached, verified {dataset.name} version; each "
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
            producer = _producer(context, model, dataset, registry_dir, sharded, dsm_paths)
            code = training.code_version_of(model, registry_dir)
            result = training.train_model(model, dataset, shards_folder=sharded.folder, outputs_dir=dsm_paths.outputs,
                                          upstream=upstream, run_id=context.run.run_id, produce=producer,
                                          code_version=code)
        context.log.info(f"{name}: {'trained' if result.trained else 'reused'} {result.version}, accuracy "
                         f"{result.metrics['accuracy']:.3f}, on {dataset.name} {manifest['version']}")
        return dg.MaterializeResult(data_version=dg.DataVersion(result.version),
                                    metadata=handoff.model_metadata(result, cache_root(dataset, dsm_paths.data)))

    return _model


def _code_version(model: ModelSpec, registry_dir: Path) -> str:
    """The asset's code version; an unreadable train.code file fails the run (one line), not the definitions."""
    try:
        return training.code_version_of(model, registry_dir)
    except TrainingError:
        return "code-unreadable"


def _producer(context: dg.AssetExecutionContext, model: ModelSpec, dataset: DatasetSpec, registry_dir: Path,
              sharded: ShardSet, dsm_paths: DsmPaths) -> training.Producer:
    """Runs the user's training code through Pipes, handing it the pinned dataset as extras."""
    extras = {"dataset": dataset.name, "version": sharded.tag, "commit": sharded.commit,
              "cache_folder": str(cache_version_dir(dataset, dsm_paths.data, sharded.tag, sharded.commit)),
              "shards_folder": str(sharded.folder), "shards_manifest_hash": sharded.manifest_hash,
              "data_dir": str(dsm_paths.data)}
    return lambda folder: run_training(context, model, cwd=registry_dir, folder=folder, extras=extras)


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
