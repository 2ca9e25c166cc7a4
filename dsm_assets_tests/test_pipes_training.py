"""A model trained by the user's own script through Dagster Pipes: versioned by its code, reused when
nothing changed, and its failures (exit code, missing metric, timeout) one line with the script's output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import joblib
import pytest
import yaml

from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, build_definitions
from dsm_assets.lineage import read_lineage
from dsm_assets.registry import load_registry

from .conftest import shipped_entries

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_text.py"
MODEL = dg.AssetKey(["models", "clf"])


def registry_with(tmp_path: Path, script: str, **train) -> Path:
    """text_reviews and one model trained by `script` (in the registry's folder)."""
    entry = next(e for e in shipped_entries() if e["name"] == "text_reviews")
    model = {"name": "clf", "dataset": "text_reviews", "use": "tests", "threshold": 0.8,
             "train": {"command": ["python", script], "code": [script], **train}}
    path = tmp_path / "project" / "registry.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"version": 1, "datasets": [entry], "models": [model]}, sort_keys=False))
    return path


def materialize(registry: Path, data_dir: Path, instance: dg.DagsterInstance):
    defs = build_definitions(registry=load_registry(registry), data_dir=data_dir,
                             outputs_dir=data_dir.parent / "outputs")
    defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance)
    return defs.resolve_job_def(MATERIALIZE_JOB).execute_in_process(instance=instance, raise_on_error=False)


def model_meta(instance: dg.DagsterInstance) -> dict:
    return dict(instance.get_latest_materialization_event(MODEL).asset_materialization.metadata)


def failure(result) -> str:
    """The one line the model step failed with (Dagster prefixes it with the Failure's class)."""
    [event] = [e for e in result.all_events if e.is_step_failure and e.step_key == "train_clf"]
    return event.event_specific_data.error.message.split("Failure: ", 1)[1].rstrip("\n")


def test_the_script_trains_through_pipes_is_reused_then_retrained_when_edited(tmp_path, data_dir):
    registry = registry_with(tmp_path, "train.py")
    script = registry.parent / "train.py"
    shutil.copy(EXAMPLE, script)
    outputs = data_dir.parent / "outputs"
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize(registry, data_dir, instance).success
        first = model_meta(instance)
        lineage = read_lineage(outputs, "clf")
        assert first["trained"].value and float(first["accuracy"].value) >= 0.8
        assert lineage["code_version"].startswith("code-") and lineage["dataset"]["commit"]
        folder = outputs / "models" / "clf" / lineage["model_version"]
        assert joblib.load(folder / "model.joblib").predict(["a wonderful, truly great film"]) is not None
        assert json.loads((folder / "metrics.json").read_text()) == lineage["metrics"]
        assert set(lineage["files"]) == {"model.joblib", "metrics.json"}  # the asset wrote and sealed them

        assert materialize(registry, data_dir, instance).success  # nothing changed: reused
        again = model_meta(instance)
        assert not again["trained"].value and again["model_version"].value == first["model_version"].value

        script.write_text(script.read_text() + "\n# an edit\n")
        assert materialize(registry, data_dir, instance).success
        edited = model_meta(instance)
        assert edited["trained"].value and edited["model_version"].value != first["model_version"].value


@pytest.mark.parametrize(("body", "train", "expected"), [
    ("import os, sys\nprint('loading', os.environ['HF_TOKEN'])\nsys.exit('boom: no GPU here')\n", {},
     "exited with code 1; last output: loading *** | boom: no GPU here"),
    ("from dagster_pipes import open_dagster_pipes\nwith open_dagster_pipes() as p:\n"
     "    p.report_custom_message({'metrics': {'f1': 0.9}})\n", {},
     "reported no numeric 'accuracy' metric (reported: f1)"),
    ("import time\nprint('started', flush=True)\ntime.sleep(60)\n", {"timeout_seconds": 1},
     "ran past train.timeout_seconds (1 s) and was stopped; last output: started"),
    ("import os\nfrom dagster_pipes import open_dagster_pipes\nwith open_dagster_pipes() as p:\n"
     "    os.symlink('/etc', os.path.join(p.extras['output_folder'], 'weights'))\n"
     "    p.report_custom_message({'metrics': {'accuracy': 1.0}})\n", {},
     "the training code left weights linking outside its output folder (to /etc)"),
])
def test_a_failing_script_fails_the_asset_in_one_line(tmp_path, data_dir, monkeypatch, body, train, expected):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_1234")
    registry = registry_with(tmp_path, "bad.py", **train)
    (registry.parent / "bad.py").write_text(body)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(registry, data_dir, instance)
    message = failure(result)
    assert message.startswith("models/clf: ") and expected in message
    assert "hf_secret_value_1234" not in message and "\n" not in message
    assert not [p for p in (data_dir.parent / "outputs" / "models" / "clf").iterdir() if p.name != ".lock"]
