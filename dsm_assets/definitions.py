"""The project's Definitions, loaded by `dagster dev` and `dagster asset materialize` (see pyproject's
[tool.dagster] and workspace.yaml). The registry and the environment are read when Dagster loads them."""

import dagster as dg

from dsm_assets import paths
from dsm_assets.defs.factory import build_definitions
from dsm_assets.registry import load_registry


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(registry=load_registry(), data_dir=paths.data_dir(), outputs_dir=paths.outputs_dir())
