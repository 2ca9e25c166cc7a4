"""What every asset of a dataset shows in the UI besides its metadata: owners and tags."""

from typing import Any

from dsm_assets.registry import DatasetSpec


def labels(spec: DatasetSpec) -> dict[str, Any]:
    """Keyword arguments for an asset or AssetSpec: the registry owner, and tags to filter the catalog by."""
    return {
        "owners": [spec.owner] if spec.owner else None,
        "tags": {"dsm/dataset": spec.name, "dsm/remote": spec.remote.kind},
    }
