"""Resources: where data lives, and how to reach the remotes. Built from the environment when definitions load."""

import os
from pathlib import Path

import dagster as dg

from dsm_assets.registry import DatasetSpec
from dsm_assets.remotes import Remote, RemoteSettings, open_remote


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


class DsmRemotes(dg.ConfigurableResource):
    """Remote endpoints and credentials. Built from HF_ENDPOINT, HF_TOKEN (as an EnvVar, so Dagster masks it)
    and AWS_ENDPOINT_URL when definitions load; AWS credentials come from boto3's standard chain. Each field
    is the RemoteSettings field of the same name (the ones a run may set), handed over by `settings()`."""

    hf_endpoint: str | None = None
    hf_token: str | None = None
    aws_endpoint_url: str | None = None
    max_tries: int = 5
    backoff_seconds: float = 1.0

    @classmethod
    def from_env(cls) -> "DsmRemotes":
        return cls(hf_endpoint=os.environ.get("HF_ENDPOINT"),
                   hf_token=dg.EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None,
                   aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))

    def settings(self) -> RemoteSettings:
        return RemoteSettings(**self.model_dump())

    def open(self, spec: DatasetSpec, data_dir: Path) -> Remote:
        return open_remote(spec, data_dir=data_dir, settings=self.settings())
