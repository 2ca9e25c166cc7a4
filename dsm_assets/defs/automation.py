"""Automation that refreshes cache, shards and models, on by default and level-triggered on the truth.

Dagster's `eager()` is edge-triggered: it reacts to "a parent updated since the last tick", so a version
published while the sensor was off is never noticed. Our condition instead compares what an asset holds
with what its parent offers now: each hop records, in its own metadata, the data version of the parent
it was built from (`handoff.CACHE_HOLDS`, `SHARDS_HOLD`, `MODEL_HOLDS`). When that differs
from the parent's current data version, or the asset was never built, the asset is behind. It is
requested once per parent version: a run planned for the asset after that version landed (and after its
blocking checks last ran) counts as handled, whether it succeeded or not, so a failing step is not
retried every tick (the cache_refresh schedule repairs caches).

The sensor runs in the code server (`use_user_code_server`), which custom conditions need, and is RUNNING
by default, so `dagster dev` and `dagster-daemon` evaluate it without anyone switching it on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

from dsm_assets.defs.handoff import held
from dsm_assets.defs.presentation import beta_quietly

# The tag Dagster stores a materialization's data version under.
DATA_VERSION_TAG = "dagster/data_version"
SENSOR = "dsm_automation"
# The daemon evaluates the sensor at most this often; a refresh starts within about this many seconds.
INTERVAL_SECONDS = 15


@dataclass(frozen=True)
class BehindParent(dg.AutomationCondition):
    """True when the asset does not hold its parent's current data version and was not yet tried for it."""

    holds: str  # this asset's metadata key holding the parent data version it was built from

    @property
    def name(self) -> str:
        return "behind_parent"

    @property
    def description(self) -> str:
        return (f"metadata '{self.holds}' differs from the parent's data version (or never materialised), "
                "and no run for this asset was planned since that version landed")

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        instance = context.asset_graph_view.instance
        graph = context.asset_graph
        reasons = [behind_reason(instance, context.key, parent, self.holds, graph.get(parent).check_keys)
                   for parent in graph.get(context.key).parent_keys]
        for reason in filter(None, reasons):
            context.log.info(f"behind: {reason}")
        subset = context.candidate_subset if any(reasons) else context.get_empty_subset()
        return dg.AutomationResult(context=context, true_subset=subset)


def behind_reason(instance: dg.DagsterInstance, key: dg.AssetKey, parent: dg.AssetKey, holds: str,
                  parent_checks: Iterable[dg.AssetCheckKey] = ()) -> str | None:
    """Why `key` should be rebuilt from `parent`'s current version, or None when it holds it or was tried."""
    record = instance.get_latest_data_version_record(parent)
    if record is None or record.asset_materialization is None:
        return None  # nothing to build from yet
    offered = record.asset_materialization.tags.get(DATA_VERSION_TAG)
    version = held(instance, key, holds)
    if version is not None and version == offered:
        return None
    if _tried_since(instance, key, landed=max(record.timestamp, _latest_check_time(instance, parent_checks))):
        return None
    held_text = "nothing" if version is None else version[:12]
    return f"{key.to_user_string()} holds {held_text}, {parent.to_user_string()} offers {(offered or '?')[:12]}"


def _latest_check_time(instance: dg.DagsterInstance, checks: Iterable[dg.AssetCheckKey]) -> float:
    """When a check of the parent last ran (a round_trip that passes on a retry makes a version usable)."""
    keys = list(checks)
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys) if keys else {}
    return max((r.event.timestamp for r in records.values() if r.event is not None), default=0.0)


def _tried_since(instance: dg.DagsterInstance, key: dg.AssetKey, *, landed: float) -> bool:
    planned = instance.get_latest_planned_materialization_info(key)
    if planned is None:
        return False
    run = instance.get_run_record_by_id(planned.run_id)
    return run is not None and run.create_timestamp.timestamp() >= landed


def refresh_condition(holds: str) -> dg.AutomationCondition:
    """Request the asset when it is behind its parent (or the parent is requested on the same tick), once
    nothing upstream is running or missing and every blocking check of the parent passed."""
    return (
        (BehindParent(holds=holds) | dg.AutomationCondition.any_deps_match(
            dg.AutomationCondition.will_be_requested()).with_label("parent requested on this tick"))
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.any_deps_missing()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("behind its verified parent")


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    # custom conditions need the sensor evaluated in the code server, a parameter Dagster marks beta
    with beta_quietly("use_user_code_server"):
        return _automation_sensor()


def _automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        SENSOR, target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
        use_user_code_server=True, minimum_interval_seconds=INTERVAL_SECONDS,
        run_tags={"dsm/trigger": "automation"},
        description="Refreshes caches, shards and models that are behind a newly verified version (on by default).",
    )
