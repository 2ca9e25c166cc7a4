from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from dsm_assets.errors import RegistryError
from dsm_assets.registry import load_registry

from .conftest import csv_entry, shipped_entries, write_registry


def problems(tmp_path: Path, datasets) -> list[str]:
    path = write_registry(tmp_path / "registry.yaml", datasets)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    return info.value.problems


def test_shipped_registry_loads(shipped):
    assert [s.name for s in shipped.datasets] == ["text_reviews", "chords", "shapes", "chord_tones"]
    chords = shipped.get("chords")
    assert chords.arrow_schema().field("chord_layer_basic").type == pa.list_(pa.string())
    assert chords.cleaning.layers.canonical == "chord_layer_basic"
    assert chords.remote.kind == "local" and chords.cache_dir == "cache/chords"


def test_defaults_fill_remote_cache_dir_and_shards(tmp_path):
    spec = load_registry(write_registry(tmp_path / "r.yaml", [csv_entry()])).datasets[0]
    assert (spec.remote.kind, spec.remote.repo) == ("local", "dsm/t")
    assert spec.cache_dir == "cache/t"
    assert (spec.shards.count, spec.shards.estimated_size, spec.shards.compression) == ("auto", None, "auto")


def test_dsm_registry_env_overrides_the_shipped_one(tmp_path, monkeypatch):
    path = write_registry(tmp_path / "mine.yaml", [csv_entry(name="my_set")])
    monkeypatch.setenv("DSM_REGISTRY", str(path))
    assert [s.name for s in load_registry().datasets] == ["my_set"]


def test_unknown_type_names_file_and_key_path(tmp_path):
    entries = shipped_entries()
    entries[1]["schema"]["title"] = "strng"
    msgs = problems(tmp_path, entries)
    assert msgs == [f"{tmp_path / 'registry.yaml'}: datasets[1].schema.title: unknown type 'strng'; use one of: "
                    "string, int32, int64, float32, float64, bool, date32, timestamp, binary, image, audio, list<T>, "
                    "struct<name: T, ...>"]


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
    entries[1]["schema"]["chord_layer_extended"] = "list<string>"
    msgs = problems(tmp_path, entries)
    assert msgs == [f"{tmp_path / 'registry.yaml'}: datasets[1].schema.chord_layer_extended: only the canonical layer "
                    "'chord_layer_basic' may be in the schema"]


def test_unknown_remote_kind_and_bad_repo(tmp_path):
    msgs = "\n".join(problems(tmp_path, [csv_entry(remote={"kind": "ftp", "repo": "no slash"})]))
    assert "remote.kind: unknown remote kind 'ftp'" in msgs and "remote.repo: invalid repo 'no slash'" in msgs


# regressions found by test_fuzz.py: each input crashed the loader, was accepted, or gave a message without
# one line naming the file and a place


def test_odd_keys_and_values_are_named_on_one_line(tmp_path):
    entry = csv_entry(schema={"id": "int64", "text": "str\ning", "a\nb": "strng"}, cleaning={})
    path = write_registry(tmp_path / "registry.yaml", [entry])
    path.write_text(path.read_text() + "'': 1\n")
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    types = ("use one of: string, int32, int64, float32, float64, bool, date32, timestamp, binary, image, audio, "
             "list<T>, struct<name: T, ...>")
    assert info.value.problems == [f"{path}: '': unknown key; expected one of: version, cache, datasets, models",
                                   f"{path}: datasets[0].schema.text: unknown type 'str\\ning'; {types}",
                                   f"{path}: datasets[0].schema.'a\\nb': unknown type 'strng'; {types}"]


@pytest.mark.parametrize("field,value,key", [
    ("name", "t\n", "datasets[0].name"),
    ("pin", "v1.0\n", "datasets[0].pin"),
    ("owner", "a@b.c\n", "datasets[0].owner"),
    ("remote", {"kind": "local", "repo": "dsm/t\n"}, "datasets[0].remote.repo"),
    ("remote", {"kind": "s3", "repo": "dsm/t", "bucket": "my-bucket\n"}, "datasets[0].remote.bucket"),
])
def test_a_trailing_newline_does_not_pass_a_pattern(tmp_path, field, value, key):
    msgs = problems(tmp_path, [csv_entry(**{field: value})])
    assert any(m.startswith(f"{tmp_path / 'registry.yaml'}: {key}: ") for m in msgs), msgs


TRAIN = {"command": ["python", "train.py"], "code": ["train.py"]}


def test_unhashable_values_are_problems_not_tracebacks(tmp_path):
    entry = csv_entry()
    entry["cleaning"]["labels"]["column"] = ["label"]
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"datasets": [entry], "models": [{"name": "m", "dataset": ["t"], "use": "x",
                                                                       "train": TRAIN}]}))
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert [m.split(": ")[1] for m in info.value.problems] == ["datasets[0].cleaning.labels.column",
                                                               "models[0].dataset"]


def test_a_nul_character_in_a_path_is_rejected(tmp_path):
    msgs = problems(tmp_path, [csv_entry(source={"path": "raw/t/\x00.csv", "format": "csv"})])
    assert msgs == [f"{tmp_path / 'registry.yaml'}: datasets[0].source.path: 'raw/t/\\x00.csv' contains a NUL "
                    "character; remove it"]


def test_dedupe_on_a_list_column_is_rejected(tmp_path):
    entry = csv_entry(schema={"id": "int64", "words": "list<string>"}, cleaning={"dedupe_key": ["words"]})
    msgs = problems(tmp_path, [entry])
    assert msgs == [f"{tmp_path / 'registry.yaml'}: datasets[0].cleaning.dedupe_key[0]: column 'words' is nested; "
                    "dedupe on scalar or media columns (an image or audio column dedupes on the file's bytes)"]


def test_too_deep_nesting_is_a_problem_not_a_recursion_error(tmp_path):
    msgs = problems(tmp_path, [csv_entry(schema={"id": "list<" * 2000 + "int64" + ">" * 2000})])
    assert any("datasets[0].schema.id: types nested 2000 deep; at most 8 levels" in m for m in msgs), msgs
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 5000)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert info.value.problems == [f"{path}:1:101: malformed YAML: nested more than 100 levels deep; flatten the file"]


@pytest.mark.parametrize("content,problem", [
    (b"datasets:\n  - name: \xff\n", ":2:11: not valid UTF-8 (byte 0xff); save the file as UTF-8"),
    (b"datasets:\n  - name: a\x00\n", ":2:12: malformed YAML: unacceptable character #x0000: special characters "
                                     "are not allowed"),
])
def test_undecodable_registry_names_line_and_column(tmp_path, content, problem):
    path = tmp_path / "registry.yaml"
    path.write_bytes(content)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert info.value.problems == [f"{path}{problem}"]


def test_a_schema_column_may_carry_a_description_for_the_ui(tmp_path):
    schema = {"id": "int64", "text": {"type": "string", "description": "The review text"}, "label": "string"}
    spec = load_registry(write_registry(tmp_path / "r.yaml", [csv_entry(schema=schema)])).datasets[0]
    assert spec.schema == {"id": "int64", "text": "string", "label": "string"}
    assert spec.column_docs == {"text": "The review text"}


def test_a_bad_column_description_names_the_key(tmp_path):
    bad = {"id": {"type": "int64", "descr": "x"}, "text": {"type": "string", "description": ["a"]},
           "label": {"description": "no type"}}
    found = [p.split("registry.yaml: ", 1)[1] for p in problems(tmp_path, [csv_entry(schema=bad)])]
    assert "datasets[0].schema.id.descr: unknown key; expected one of: type, description" in found
    assert "datasets[0].schema.text.description: expected one line of text" in found
    assert "datasets[0].schema.label.type: missing required key" in found


def test_a_column_description_does_not_change_the_cleaned_version(tmp_path, data_dir):
    from dsm_assets.cleaning import clean_dataset

    from .conftest import write_raw

    write_raw(data_dir, "t", "a.csv", "id,text,label\n1,x,a\n2,y,b\n")
    plain = load_registry(write_registry(tmp_path / "a.yaml", [csv_entry()])).datasets[0]
    documented = csv_entry(schema={"id": "int64", "text": {"type": "string", "description": "doc"},
                                   "label": "string"})
    first = clean_dataset(plain, data_dir)
    again = clean_dataset(load_registry(write_registry(tmp_path / "b.yaml", [documented])).datasets[0], data_dir)
    assert again.reused and again.version == first.version


def bomb(levels: int) -> str:
    """A billion-laughs registry: each level an alias list of 9 of the previous one."""
    lines = ['x0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"x{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    lines.append(f"version: 1\ndatasets: [{{name: t, use: *l{levels}, source: {{path: raw/t/*.csv, format: csv}}, "
                 "schema: {id: int64}}]")
    return "\n".join(lines)


@pytest.mark.parametrize("levels", [8, 9, 12])
def test_a_yaml_alias_bomb_is_refused_fast_in_one_line(tmp_path, levels):
    import resource
    import time

    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(levels))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert time.perf_counter() - start < 2  # it ran 14 s at 8 levels, past 60 s at 9
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: not 936 MB
    [message] = info.value.problems
    assert message == f"{path}:2:10: malformed YAML: aliases (*name) expand to more than 100,000 values; write " \
                      "the values out instead of nesting aliases"


def test_a_few_aliases_sharing_rules_are_still_fine(tmp_path):
    shared = csv_entry()["cleaning"]  # one object twice: safe_dump writes an anchor and an alias
    datasets = [csv_entry(name="a", cleaning=shared), csv_entry(name="b", cleaning=shared)]
    text = yaml.safe_dump({"version": 1, "datasets": datasets}, sort_keys=False)
    assert "*id001" in text
    path = tmp_path / "r.yaml"
    path.write_text(text)
    assert [d.name for d in load_registry(path).datasets] == ["a", "b"]


def test_datasets_sharing_a_repo_or_a_cache_folder_are_refused(tmp_path):
    a = csv_entry(name="a", remote={"kind": "local", "repo": "team/shared"}, cache_dir="cache/a")
    b = csv_entry(name="b", remote={"kind": "local", "repo": "team/shared"}, cache_dir="cache/a")
    c = csv_entry(name="c", cache_dir="cache/a/inner")
    d = csv_entry(name="d", remote={"kind": "hub", "repo": "team/shared"})  # another kind: another place
    found = [p.split("registry.yaml: ", 1)[1] for p in problems(tmp_path, [a, b, c, d])]
    assert found == [
        "datasets[1].remote.repo: 'team/shared' is also the repo of datasets[0]; give each dataset its own repo",
        "datasets[1].cache_dir: 'cache/a' overlaps the cache_dir of datasets[0]; give each dataset its own folder",
        "datasets[2].cache_dir: 'cache/a/inner' overlaps the cache_dir of datasets[0]; give each dataset its own "
        "folder",
    ]


def test_an_alias_to_itself_is_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\ndatasets: &a [*a]\n")  # found by the fuzz test
    with pytest.raises(RegistryError, match=r"r\.yaml:2:15: malformed YAML: aliases \(\*name\) expand"):
        load_registry(path)


@pytest.mark.parametrize(("train", "problem"), [
    (None, "models[0].train: missing required key"),
    ({"command": "python train.py", "code": ["train.py"]}, "models[0].train.command: expected a non-empty list of "
                                                          "strings, got 'python train.py'"),
    ({"command": ["python", "train.py"], "code": []}, "models[0].train.code: expected a non-empty list of strings"),
    ({**TRAIN, "timeout_seconds": 0}, "models[0].train.timeout_seconds: expected a number of seconds above 0, got 0"),
    ({**TRAIN, "gpu": 1}, "models[0].train.gpu: unknown key; expected one of: command, code, timeout_seconds"),
])
def test_a_model_names_its_training_code_or_says_what_is_wrong(tmp_path, train, problem):
    model = {"name": "m", "dataset": "t", "use": "x", **({"train": train} if train is not None else {})}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"datasets": [csv_entry()], "models": [model]}))
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert any(problem in p for p in info.value.problems), info.value.problems
