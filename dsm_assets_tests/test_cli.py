from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dsm_assets.cli import main

from .conftest import csv_entry, shipped_entries, write_registry


def test_registry_table(capsys):
    assert main(["registry"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Dataset", "Repo", "Latest", "Cache", "Dir", "Use"]
    assert lines[2].split()[:4] == ["text_reviews", "dsm/text_reviews", "(local)", "-"]
    assert "cache/text_reviews" in lines[2] and "Product-review sentiment" in lines[2]
    assert lines[3].startswith("chords")


def test_registry_json(capsys):
    assert main(["registry", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["dataset"] for r in rows] == ["text_reviews", "chords", "shapes", "chord_tones"]
    assert set(rows[0]) == {"dataset", "repo", "remote", "latest", "cache_dir", "use", "source", "format"}


def test_dsm_registry_env_with_a_dataset_outside_the_samples(tmp_path, monkeypatch, capsys):
    entry = csv_entry(name="street_signs", use="Sign detector eval set", remote={"repo": "vision/street_signs"})
    monkeypatch.setenv("DSM_REGISTRY", str(write_registry(tmp_path / "team.yaml", [entry])))
    assert main(["registry", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["dataset"], row["repo"]) == ("street_signs", "vision/street_signs")
    assert row["use"] == "Sign detector eval set"


def test_invalid_registry_exits_2_with_one_line_per_problem(tmp_path, monkeypatch, capsys):
    entries = shipped_entries()
    entries[1]["schema"]["title"] = "strng"
    entries[0]["name"] = "Text"
    monkeypatch.setenv("DSM_REGISTRY", str(write_registry(tmp_path / "registry.yaml", entries)))
    assert main(["registry"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].endswith("registry.yaml: datasets[0].name: invalid name 'Text'; use lowercase letters, digits and "
                           "'_' only")
    assert "registry.yaml: datasets[1].schema.title: unknown type 'strng'" in err[1]


def test_samples_copies_once_and_keeps_edits(tmp_path, capsys):
    assert main(["samples"]) == 0
    raw = tmp_path / "data" / "raw" / "text_reviews" / "reviews.csv"
    raw.write_text("edited\n")
    assert main(["samples"]) == 0
    assert raw.read_text() == "edited\n" and "(all present)" in capsys.readouterr().out
    assert main(["samples", "--force"]) == 0
    assert raw.read_bytes() != b"edited\n"


def test_installed_entry_point_runs_without_importing_dagster(tmp_path):
    dsm = Path(sys.executable).parent / "dsm"
    done = subprocess.run([str(dsm), "registry"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "text_reviews" in done.stdout
    probe = "import sys, dsm_assets.cli; sys.exit('dagster' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], env={**os.environ}, timeout=60).returncode == 0
