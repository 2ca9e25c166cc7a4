from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from dsm_assets.errors import RegistryError
from dsm_assets.registry import load_registry

from .conftest import csv_entry, shipped_entries, write_registry


def problems(tmp_path: Path, datasets) -> list[str]:
    path = write_registry(tmp_path / "registry.yaml", datasets)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    return info.value.problems


def test_shipped_registry_loads(shipped):
    assert [s.name for s in shipped.datasets] == ["text_reviews", "chords", "shapes"]
    chords = shipped.get("chords")
    assert chords.arrow_schema().field("chord_layer_extended").type == pa.list_(pa.string())
    assert chords.cleaning.layers.canonical == "chord_layer_extended"
    assert chords.remote.kind == "local" and chords.cache_dir == "cache/chords"


def test_defaults_fill_remote_cache_dir_and_shards(tmp_path):
    spec = load_registry(write_registry(tmp_path / "r.yaml", [csv_entry()])).datasets[0]
    assert (spec.remote.kind, spec.remote.repo) == ("local", "dsm/t")
    assert spec.cache_dir == "cache/t"
    assert (spec.shards.count, spec.shards.estimated_size) == (1, None)


def test_dsm_registry_env_overrides_the_shipped_one(tmp_path, monkeypatch):
    path = write_registry(tmp_path / "mine.yaml", [csv_entry(name="my_set")])
    monkeypatch.setenv("DSM_REGISTRY", str(path))
    assert [s.name for s in load_registry().datasets] == ["my_set"]


def test_unknown_type_names_file_and_key_path(tmp_path):
    entries = shipped_entries()
    entries[1]["schema"]["title"] = "strng"
    msgs = problems(tmp_path, entries)
    assert msgs == [f"{tmp_path / 'registry.yaml'}: datasets[1].schema.title: unknown type 'strng'; use one of: "
                    "string, int32, int64, float32, float64, bool, date32, timestamp, binary, list<T>"]


def test_every_problem_is_reported_at_once(tmp_path):
    bad = csv_entry(name="Bad-Name", schema={"id": "int64", "text": "strng", "label": "string"})
    bad["source"] = {"path": "raw/t.csv", "format": "xlsx"}
    bad["cleaning"]["dedupe_key"] = ["nope"]
    bad["shards"] = {"count": 0}
    bad["colour"] = "blue"
    msgs = problems(tmp_path, [bad])
    joined = "\n".join(msgs)
    for fragment in ["datasets[0].name: invalid name 'Bad-Name'", "datasets[0].source.format: unknown format 'xlsx'",
                     "datasets[0].schema.text: unknown type 'strng'",
                     "datasets[0].cleaning.dedupe_key[0]: column 'nope' is not in the schema",
                     "datasets[0].shards.count: expected an integer >= 1", "datasets[0].colour: unknown key"]:
        assert fragment in joined
    assert len(msgs) == 6


def test_duplicate_dataset_names(tmp_path):
    msgs = problems(tmp_path, [csv_entry(), csv_entry()])
    where = tmp_path / "registry.yaml"
    assert msgs == [f"{where}: datasets[1].name: duplicate dataset name 't' (first at datasets[0]); rename one"]


@pytest.mark.parametrize("field,value", [
    ("source", {"path": "../outside/*.csv", "format": "csv"}),
    ("source", {"path": "/etc/passwd", "format": "csv"}),
    ("cache_dir", "../../elsewhere"),
])
def test_paths_that_escape_the_data_dir_are_rejected(tmp_path, field, value):
    msgs = problems(tmp_path, [csv_entry(**{field: value})])
    assert len(msgs) == 1 and "would escape the data dir" in msgs[0]


def test_missing_required_keys(tmp_path):
    msgs = problems(tmp_path, [{"name": "x"}])
    assert sorted(m.split(": ")[1] for m in msgs) == ["datasets[0].schema", "datasets[0].source", "datasets[0].use"]
    assert all(m.endswith("missing required key") for m in msgs)


def test_malformed_yaml_names_line_and_column(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("datasets:\n  - name: a\n    use: [unclosed\n")
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    [msg] = info.value.problems
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+:\d+: malformed YAML: .+", msg)


def test_registry_file_not_found(tmp_path):
    with pytest.raises(RegistryError, match="registry file not found; set DSM_REGISTRY"):
        load_registry(tmp_path / "missing.yaml")


def test_top_level_must_be_a_mapping_with_datasets(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(RegistryError, match="expected a mapping"):
        load_registry(path)


def test_label_column_must_be_text_and_layers_consistent(tmp_path):
    entry = csv_entry()
    entry["cleaning"]["labels"] = {"column": "id", "allowed": ["x"]}
    entry["cleaning"]["layers"] = {"prefix": "layer_", "canonical": "other"}
    msgs = "\n".join(problems(tmp_path, [entry]))
    assert "cleaning.labels.column: 'id' must be a string column" in msgs
    assert "cleaning.layers: prefix and canonical must be strings and canonical must start with prefix" in msgs


def test_only_the_canonical_layer_may_be_in_the_schema(tmp_path):
    entries = shipped_entries()
    entries[1]["schema"]["chord_layer_basic"] = "list<string>"
    msgs = problems(tmp_path, entries)
    assert msgs == [f"{tmp_path / 'registry.yaml'}: datasets[1].schema.chord_layer_basic: only the canonical layer "
                    "'chord_layer_extended' may be in the schema"]


def test_unknown_remote_kind_and_bad_repo(tmp_path):
    msgs = "\n".join(problems(tmp_path, [csv_entry(remote={"kind": "ftp", "repo": "no slash"})]))
    assert "remote.kind: unknown remote kind 'ftp'" in msgs and "remote.repo: invalid repo 'no slash'" in msgs
