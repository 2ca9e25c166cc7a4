"""How the assets read in the UI: owners and tags, links that open, sizes with units, tables that fit."""

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg

from dsm_assets.registry import DatasetSpec


def owners_and_tags(spec: DatasetSpec) -> dict[str, Any]:
    """Keyword arguments for an asset or AssetSpec: the registry owner, and tags to filter the catalog by."""
    return {
        "owners": [spec.owner] if spec.owner else None,
        "tags": {"dsm/dataset": spec.name, "dsm/remote": spec.remote.kind},
    }


def location(address: str) -> dg.MetadataValue:
    """A link the browser opens (http/https) or, for anything on local disk, a path value (never file://)."""
    if address.startswith(("http://", "https://")):
        return dg.MetadataValue.url(address)
    return dg.MetadataValue.path(address.removeprefix("file://"))


def size(n: int) -> dg.MetadataValue:
    """Bytes with a unit: '33.7 MiB (35,373,019 bytes)'."""
    if n < 1024:
        return dg.MetadataValue.text(f"{n:,} bytes")
    value, unit = float(n), "bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):  # noqa: B007 (the last unit reached is the one shown)
        value /= 1024
        if value < 1024:
            break
    return dg.MetadataValue.text(f"{value:.1f} {unit} ({n:,} bytes)")


def markdown_table(rows: list[dict[str, Any]], columns: list[str], max_cell: int | None = 60) -> str:
    """A markdown table; cells are cut at `max_cell` characters (None: never) so the UI's table stays readable."""
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if max_cell is None or len(text) <= max_cell else text[: max_cell - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def asset_step(step: str, **spec: Any):
    """@asset, with its op (the step in run views, "Computed by" on the asset page) named for what it does,
    e.g. publish_text_reviews, instead of Dagster's default text_reviews__published."""
    return dg.multi_asset(name=step, specs=[dg.AssetSpec(**spec)])


def check_step(step: str, *specs: dg.AssetCheckSpec):
    """@asset_check / @multi_asset_check with its op named for what it does, e.g. check_text_reviews_cleaned."""
    return dg.multi_asset_check(name=step, specs=list(specs), can_subset=len(specs) > 1)


@contextlib.contextmanager
def beta_quietly(feature: str) -> Iterator[None]:
    """Hide Dagster's beta notice for `feature` while one definition is built (never process-wide)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f".*{feature}.*", category=dg.BetaWarning)
        yield
