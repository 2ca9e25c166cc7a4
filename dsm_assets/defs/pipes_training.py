"""The user's training code as the model's producer, run through Dagster Pipes.

The script gets, as Pipes extras, the pinned dataset (name, version, commit, cache folder, shard folder and
manifest) and the empty folder to write its model into; it reports its metrics with
`pipes.report_custom_message({"metrics": {...}})`. Its stdout and stderr go to a log beside the folder; a
failure shows the last lines (secrets masked). A script that runs past `train.timeout_seconds` is stopped."""

import os
import secrets
import subprocess
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from dsm_assets import atomic
from dsm_assets.errors import TrainingError
from dsm_assets.registry import ModelSpec, TrainSpec

TAIL_LINES = 20
# Environment variables whose values never appear in a failure's log tail.
SECRET_ENV = ("HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


def command(train: TrainSpec) -> list[str]:
    """The registry command; `python` is the interpreter Dagster runs in (the one with dsm_assets)."""
    return [sys.executable if train.command[0] == "python" else train.command[0], *train.command[1:]]


def run_training(context: dg.AssetExecutionContext, model: ModelSpec, *, cwd: Path, folder: Path,
                 extras: Mapping[str, Any]) -> dict[str, Any]:
    """Run `model.train` through Pipes with `extras` (+ the output folder); the metrics it reported."""
    log = folder.parent / f"{atomic.TEMP_PREFIX}train-{secrets.token_hex(4)}.log"
    try:
        with warnings.catch_warnings():  # Dagster's session uses one of its own preview APIs: not ours to fix
            warnings.filterwarnings("ignore", message=".*expected_writer_count.*", category=dg.PreviewWarning)
            with dg.open_pipes_session(context=context, context_injector=dg.PipesTempFileContextInjector(),
                                       message_reader=dg.PipesTempFileMessageReader(),
                                       extras={**extras, "output_folder": str(folder)}) as session:
                _run(model, cwd, log, {**os.environ, **session.get_bootstrap_env_vars()})
        return _metrics(model, session.get_custom_messages())
    finally:
        log.unlink(missing_ok=True)


def _run(model: ModelSpec, cwd: Path, log: Path, env: dict[str, str]) -> None:
    train = model.train
    with log.open("wb") as out:
        try:
            process = subprocess.Popen(command(train), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise TrainingError(f"models/{model.name}: cannot start {train.command[0]!r} ({exc.strerror or exc}); "
                                "fix train.command in the registry") from None
        try:
            code = process.wait(timeout=train.timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise TrainingError(f"models/{model.name}: the training code ran past train.timeout_seconds "
                                f"({train.timeout_seconds:g} s) and was stopped; last output: {_tail(log)}") from None
    if code != 0:
        raise TrainingError(f"models/{model.name}: the training code exited with code {code}; last output: "
                            f"{_tail(log)}")


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()[-TAIL_LINES:]
    text = " | ".join(line.strip() for line in lines if line.strip()) or "(none)"
    for name in SECRET_ENV:
        if value := os.environ.get(name):
            text = text.replace(value, "***")
    return text


def _metrics(model: ModelSpec, messages: list[Any]) -> dict[str, Any]:
    """The last `{"metrics": {...}}` the script reported ({} when none: the caller names what is missing)."""
    reported = [m["metrics"] for m in messages if isinstance(m, dict) and isinstance(m.get("metrics"), dict)]
    return dict(reported[-1]) if reported else {}
