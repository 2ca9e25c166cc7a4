"""`models/<name>`: a model trained on a dataset's shards, with its lineage recorded and shown, retrained
when the dataset publishes a newly verified version (the same automation condition as cache and shards)."""

import json
from pathlib import Path
from typing import Any

import dagster as dg

from dsm_assets import training
from dsm_assets.cache import cache_root
from dsm_assets.defs.automation import DATA_VERSION_TAG, refresh_condition
from dsm_assets.defs.cleaned import cleaned_key
from dsm_assets.defs.failures import as_failure
from dsm_assets.defs.presentation import asset_step, check_step, labels, location, markdown_table
from dsm_assets.defs.published import published_key
from dsm_assets.defs.resources import DsmPaths
from dsm_assets.defs.shards import shards_key
from dsm_assets.lineage import chain
from dsm_assets.preflight import preflight
from dsm_assets.registry import DatasetSpec, ModelSpec
from dsm_assets.shards import MANIFEST

# One word for the group and the key prefix: models/<name> in the `models` group.
GROUP = "models"
# Hops from a model back to its raw files: raw, cleaned, published, cache, shards.
LINEAGE_DEPTH = 5


def model_key(model: ModelSpec) -> dg.AssetKey:
    return model_key_of(model.name)


def model_key_of(name: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, name])


def build_model_asset(*, model: ModelSpec, dataset: DatasetSpec) -> dg.AssetsDefinition:
    @asset_step(
        f"train_{model.name}",
        key=model_key(model), deps=[shards_key(dataset)], group_name=GROUP, code_version=training.CODE_VERSION,
        **labels(dataset),
        kinds={"scikitlearn"}, automation_condition=refresh_condition(consumed="shards_manifest_hash"),
        description=f"{model.use}. Trained on the shards of the cached, verified {dataset.name} version; each "
                    f"version in outputs/models/{model.name}/, with lineage.json. Check: accuracy at least "
                    f"{model.threshold}.",
    )
    def _model(context: dg.AssetExecutionContext, dsm_paths: DsmPaths) -> dg.MaterializeResult:
        state = preflight(dataset, dsm_paths.data)
        if not state.ready:
            raise dg.Failure(f"{model_key(model).to_user_string()} was not trained: the {dataset.name} cache is "
                             f"{state.status}: {state.reason}")
        folder = _shards_folder(context.instance, dataset)
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest["commit"] != state.commit:
            raise dg.Failure(f"{model_key(model).to_user_string()} was not trained: the {dataset.name} shards are "
                             f"of {manifest['version']} but the cache holds {state.version}; materialise "
                             f"{dataset.name}/shards")
        with as_failure():
            result = training.train_model(model, dataset, shards_folder=folder, outputs_dir=dsm_paths.outputs,
                                          upstream=upstream(context.instance, dataset, manifest),
                                          run_id=context.run.run_id)
        context.log.info(f"{model_key(model).to_user_string()}: {'trained' if result.trained else 'reused'} "
                         f"{result.version}, accuracy {result.metrics['accuracy']:.3f}, on {dataset.name} "
                         f"{manifest['version']}")
        return dg.MaterializeResult(data_version=dg.DataVersion(result.version),
                                    metadata=lineage_metadata(result, cache_root(dataset, dsm_paths.data)))

    return _model


def lineage_metadata(result: training.ModelResult, cache_dir: Path) -> dict[str, Any]:
    """The model page answers "which data trained this" on its own: every link of the chain, and the chain
    as one table (the same rows `dsm lineage` prints)."""
    lineage, d = result.lineage, result.lineage["dataset"]
    run_id = lineage.get("dagster_run_id")
    rows = [{"step": r["step"], "what": f"{r['what']} ({r['detail']})" if r["detail"] else r["what"]}
            for r in chain(lineage, cache_dir)]
    key = model_key_of(lineage["model"])
    return {
        "accuracy": dg.MetadataValue.text(f"{result.metrics['accuracy']:.3f}"),
        "model_version": result.version,
        "dataset": d["name"],
        "dataset_version": d["version"],
        "published_at": location(d.get("remote_url") or "-"),
        "dataset_commit": d["commit"],
        "content_hash": d["content_hash"],
        "shards_manifest_hash": d["shards"]["manifest_hash"],
        "shards": d["shards"]["count"],
        "shards_manifest": dg.MetadataValue.path(str(Path(d["shards"]["folder"]) / MANIFEST)),
        "cleaned_content_hash": d.get("cleaned_version") or d["content_hash"],
        "raw_fingerprint": d.get("raw_fingerprint") or "unknown",
        "training_run": dg.MetadataValue.dagster_run(run_id) if run_id else "-",
        "code_version": lineage["code_version"],
        "lineage": dg.MetadataValue.md(markdown_table(rows, ["step", "what"], max_cell=None)),  # every hash whole
        # the Lineage tab opens on the nearest neighbours; this opens the whole chain back to raw
        "lineage_graph": dg.MetadataValue.url(f"/assets/{key.to_user_string()}?view=lineage&lineageScope=upstream"
                                              f"&lineageDepth={LINEAGE_DEPTH}"),
        "lineage_file": dg.MetadataValue.path(str(result.folder / training.LINEAGE)),
        "model_path": dg.MetadataValue.path(str(result.folder / "model.joblib")),
        "train_samples": result.metrics["train_samples"],
        "test_samples": result.metrics["test_samples"],
        "trained": result.trained,
    }


def _shards_folder(instance: dg.DagsterInstance, dataset: DatasetSpec) -> Path:
    event = instance.get_latest_materialization_event(shards_key(dataset))
    if event is None:
        raise dg.Failure(f"{dataset.name}/shards was never materialised; materialise it first")
    return Path(event.asset_materialization.metadata["manifest"].value).parent


def upstream(instance: dg.DagsterInstance, dataset: DatasetSpec, manifest: dict[str, Any]) -> dict[str, Any]:
    """What the instance knows about this exact data: the remote URL of its commit, and the cleaned and raw
    versions it came from (found by data version, so an older model still gets its own history)."""
    published = _materialization(instance, published_key(dataset), manifest["commit"])
    cleaned = _materialization(instance, cleaned_key(dataset), manifest["content_hash"])
    return {"remote_url": published["url"].value if published and "url" in published else None,
            "cleaned_version": manifest["content_hash"],
            "raw_fingerprint": cleaned["raw_fingerprint"].value if cleaned and "raw_fingerprint" in cleaned else None}


def _materialization(instance: dg.DagsterInstance, key: dg.AssetKey, data_version: str) -> dict[str, Any] | None:
    """Metadata of the newest materialization of `key` with this data version, searching the whole history."""
    cursor = None
    while True:
        page = instance.fetch_materializations(key, limit=100, cursor=cursor)
        for record in page.records:
            if record.asset_materialization.tags.get(DATA_VERSION_TAG) == data_version:
                return dict(record.asset_materialization.metadata)
        if not page.has_more:
            return None
        cursor = page.cursor


def build_model_check(*, model: ModelSpec) -> dg.AssetChecksDefinition:
    @check_step(f"check_{model.name}_accuracy", dg.AssetCheckSpec(
        "accuracy", asset=model_key(model), blocking=True,
        description=f"Held-out accuracy is at least {model.threshold}."))
    def _accuracy(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(model_key(model))
        if event is None:
            return dg.AssetCheckResult(passed=False, description="no trained model yet")
        accuracy = float(event.asset_materialization.metadata["accuracy"].value)
        return dg.AssetCheckResult(passed=accuracy >= model.threshold,
                                   description=f"accuracy {accuracy:.3f} (threshold {model.threshold})",
                                   metadata={"accuracy": dg.MetadataValue.text(f"{accuracy:.3f}"),
                                             "threshold": model.threshold})

    return _accuracy
