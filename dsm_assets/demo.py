"""`make demo`: copy the sample data in, observe every raw source, materialize everything downstream
with its checks, in the Dagster instance that `make dev` opens, and say where to look.

    python -m dsm_assets.demo      (DAGSTER_HOME defaults to <outputs>/dagster_home)"""

import os
import sys
from pathlib import Path

import dagster as dg

from dsm_assets import layout, paths, state
from dsm_assets.cli import format_table
from dsm_assets.dagster_home import default_home, prepare
from dsm_assets.defs import handoff
from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, build_definitions
from dsm_assets.defs.keys import raw_key
from dsm_assets.lineage import LINEAGE, read_lineage
from dsm_assets.registry import display_path, load_registry
from dsm_assets.samples import install_samples

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def dagster_home() -> Path:
    """DAGSTER_HOME (seeded: telemetry and the welcome modal off) so the demo's runs show up in `make dev`."""
    home = prepare(default_home())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def main() -> int:
    data, outputs = paths.data_dir(), paths.outputs_dir()
    home = dagster_home()
    registry = load_registry()
    written = install_samples(data)
    print(f"sample data: {len(written)} file(s) copied into {display_path(data / 'raw')}")
    defs = build_definitions(registry=registry, data_dir=data, outputs_dir=outputs)
    with dg.DagsterInstance.get() as instance:
        checks: list = []
        for job_name in (OBSERVE_JOB, MATERIALIZE_JOB):
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance, run_config=QUIET_LOGS, raise_on_error=False)
            if not result.success:
                print(f"demo: job '{job_name}' failed (run {result.run_id}); open `make dev` → Runs for the "
                      "step logs", file=sys.stderr)
                return 1
            checks += result.get_asset_check_evaluations()
        print()
        print(summary(registry, instance, checks, data))
        for model in registry.models:
            trained = handoff.read_model(instance, model)
            lineage = read_lineage(outputs, model.name, trained.version)
            d = lineage["dataset"]
            print(f"\nmodels/{model.name}: {trained.version}, accuracy {trained.accuracy:.3f}, trained on "
                  f"{model.dataset} {d['version']} (commit {d['commit'][:12]}); lineage: "
                  f"{layout.models_dir(outputs, model.name) / trained.version / LINEAGE}")
            print(f"  which data trained it:  dsm lineage {model.name}")
    print(f"""
Where to look:
  raw files      {display_path(data / 'raw')}/<dataset>/
  cleaned data   {display_path(data / 'clean')}/<dataset>/<content-hash>/train-XXXXX-of-YYYYY.parquet
  local remote   {display_path(data / 'remote')}/<repo>/ (objects, commits, refs/tags/v1.0 …)
  offline caches {display_path(data / 'cache')}/<dataset>/current/   check them: dsm preflight [--deep]
  shards         {display_path(outputs / 'shards')}/<dataset>/<version>/  (WebDataset tars + manifest.json)
  Dagster home   {display_path(home)}
  UI             make dev   → open http://127.0.0.1:3000 (Catalog → a dataset group → Lineage)
  new raw data   edit data/raw/<dataset>/…, then Jobs → publish_new_data → Materialize all;
                 the automation (on by default) refreshes cache, shards and models/<m>
  registry       dsm registry   (.venv/bin/dsm, or activate the venv)""")
    return 0


def summary(registry, instance: dg.DagsterInstance, checks: list, data: Path) -> str:
    rows = []
    for spec in registry.datasets:
        raw = instance.get_latest_data_version_record(raw_key(spec), is_source=True)
        cleaned = handoff.read_cleaned(instance, spec)
        published = state.read_latest(data, spec.name) or {}
        cached, sharded = handoff.read_cache(instance, spec), handoff.read_shards(instance, spec)
        mine = [c for c in checks if c.asset_key.path[0] == spec.name]
        rows.append([
            spec.name,
            (raw.asset_observation.data_version or "?")[:12] if raw and raw.asset_observation else "?",
            cleaned.version[:12] + (" (reused)" if cleaned.reused else "") if cleaned else "?",
            f"{cleaned.rows_in} → {cleaned.rows_out}" if cleaned else "?",
            f"{published.get('tag', '?')} ({'new' if published.get('new') else 'unchanged'})",
            f"{published.get('bytes_uploaded', '?')}",
            cached.tag if cached else "?",
            f"{sharded.count} {_shard_kind(sharded.folder)}" if sharded else "?",
            f"{sum(c.passed for c in mine)}/{len(mine)} passed",
        ])
    headers = ["Dataset", "Raw fingerprint", "Cleaned version", "Rows", "Published", "Bytes up", "Cached", "Shards",
               "Checks"]
    return format_table(headers, rows)


def _shard_kind(folder: Path) -> str:
    """`tar` or `tar.gz`: what `shards.compression` (auto: gzip for text rows) wrote in `folder`."""
    return "tar.gz" if any(folder.glob("*.tar.gz")) else "tar"


if __name__ == "__main__":
    sys.exit(main())
