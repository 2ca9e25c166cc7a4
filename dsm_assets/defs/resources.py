"""The resource that tells assets where data lives. Built from the environment when definitions load."""

from pathlib import Path

import dagster as dg


class DsmPaths(dg.ConfigurableResource):
    """Data and outputs directories (DSM_DATA_DIR / DSM_OUTPUTS_DIR at load time)."""

    data_dir: str
    outputs_dir: str

    @property
    def data(self) -> Path:
        return Path(self.data_dir)

    @property
    def outputs(self) -> Path:
        return Path(self.outputs_dir)
