"""Core check outcomes as Dagster check results: the check builders stay thin adapters."""

from collections.abc import Iterable, Iterator

import dagster as dg

from dsm_assets.checks import CheckOutcome


def check_result(outcome: CheckOutcome, key: dg.AssetKey | None = None) -> dg.AssetCheckResult:
    """One outcome as a result (`key` is needed when one step runs several checks)."""
    return dg.AssetCheckResult(check_name=outcome.name, asset_key=key, passed=outcome.passed,
                               description=outcome.description, metadata=outcome.metadata or None)


def selected_results(context: dg.AssetCheckExecutionContext, key: dg.AssetKey,
                     outcomes: Iterable[CheckOutcome]) -> Iterator[dg.AssetCheckResult]:
    """Results of the checks this run selected, for a step that runs several checks."""
    selected = {k.name for k in context.selected_asset_check_keys}
    return (check_result(o, key) for o in outcomes if o.name in selected)


def all_failed(names: Iterable[str], why: str) -> list[CheckOutcome]:
    """Every check failing for one reason (nothing to check yet)."""
    return [CheckOutcome(name, False, why) for name in names]
