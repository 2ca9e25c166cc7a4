"""Tokens and keys never appear in logs, metadata, errors or written files."""

from __future__ import annotations

import dagster as dg

from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, build_definitions
from dsm_assets.defs.resources import DsmRemotes
from dsm_assets.registry import load_registry

from .conftest import shipped_entries, write_registry
from .servers import HUB_TOKEN

AWS_SECRET = "SECRETkeyNEVERtoAPPEAR0123456789abcdefgh"
WRONG_TOKEN = "hf_WRONGtokenNEVERtoAPPEAR987"


def test_no_secret_reaches_logs_metadata_errors_or_files(tmp_path, data_dir, hub_server, aws_env, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    home = tmp_path / "dagster_home"
    home.mkdir()
    entries = shipped_entries()
    entries[0]["remote"] = {"kind": "hub", "repo": "team/secret_reviews"}
    entries[1]["remote"] = {"kind": "s3", "bucket": "dsm-test", "prefix": f"secrets-{tmp_path.name}"}
    registry = load_registry(write_registry(tmp_path / "registry.yaml", entries))
    texts = []
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        for token in (HUB_TOKEN, WRONG_TOKEN):  # a good run, then one that fails on the token
            remotes = DsmRemotes(hf_endpoint=hub_server.url, hf_token=token, aws_endpoint_url=aws_env,
                                 backoff_seconds=0.01, max_tries=2)
            defs = build_definitions(registry=registry, data_dir=data_dir, outputs_dir=tmp_path / "outputs",
                                     remotes=remotes)
            for job in (OBSERVE_JOB, MATERIALIZE_JOB):
                result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)
                texts += [str(e) for e in instance.all_logs(result.run_id)]
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert failures and "401 unauthorized; set HF_TOKEN" in str(failures[0])  # the bad token did fail
        for key in instance.get_asset_keys():
            event = instance.get_latest_materialization_event(key)
            if event and event.asset_materialization:
                texts.append(repr(event.asset_materialization.metadata))
    secrets = [HUB_TOKEN, WRONG_TOKEN, AWS_SECRET]
    leaks = [s for s in secrets for text in texts if s in text]
    assert texts and not leaks
    error_seen_in_files = False  # control: the scan reaches where a leaked error would be written
    for path in [*tmp_path.rglob("*")]:
        if path.is_file():
            content = path.read_bytes()
            assert not any(s.encode() in content for s in secrets), f"a secret was written to {path}"
            error_seen_in_files |= b"401 unauthorized; set HF_TOKEN" in content
    assert error_seen_in_files


def test_a_password_in_an_endpoint_url_is_never_printed(tmp_path):
    import socket

    import pytest

    from dsm_assets.errors import RemoteError
    from dsm_assets.layout import DATA_PATH
    from dsm_assets.remotes.base import redact_url
    from dsm_assets.remotes.hub import HubRemote
    from dsm_assets.remotes.s3 import S3Remote

    assert redact_url("http://user:s3cret@host:9/x") == "http://***@host:9/x"
    assert redact_url("https://host/a@b") == "https://host/a@b"  # an @ in the path is not a password
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hub = HubRemote("me/d", endpoint=f"http://user:s3cret@127.0.0.1:{port}", token=None, max_tries=1,
                    backoff_seconds=0)
    data = tmp_path / "x.parquet"
    data.write_bytes(b"x")
    with pytest.raises(RemoteError) as info:
        hub.publish({DATA_PATH: data}, tag="v1.0", parent=None, message="m")
    shown = f"{info.value} {hub!r} {hub.url} {hub.version_url('v1.0')}"
    assert "s3cret" not in shown and "***@127.0.0.1" in shown
    s3 = S3Remote("b", "p/d", endpoint_url=f"http://key:s3cret@127.0.0.1:{port}", max_attempts=1)
    assert "s3cret" not in s3.version_url("v1.0")


def test_dsm_remotes_hands_its_fields_to_remote_settings_and_masks_hf_token(monkeypatch):
    from dsm_assets.remotes import RemoteSettings

    assert DsmRemotes().settings() == RemoteSettings()  # same fields, same defaults
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    remotes = DsmRemotes.from_env()
    assert isinstance(remotes.hf_token, dg.EnvVar) and remotes.settings().hf_token == remotes.hf_token
    assert HUB_TOKEN not in repr(remotes.settings())
