"""Property-based tests (hypothesis) of bad input: a registry file or a raw file never crashes us, never
leaves partial output, is rejected with a precise one-line message, or is really accepted.

Fuzzed
- the registry (`load_registry`): structured mutations of a valid registry (a key dropped or renamed, an
  unknown or non-string key, a value replaced by None, a huge int, a nested list or dict, a bad name, type,
  format or remote kind) dumped with yaml.safe_dump; raw text and bytes (YAML punctuation, tabs, random
  unicode, invalid UTF-8, the empty file), alone or spliced into a valid registry.
- raw CSV and JSONL content (`clean_dataset`): random bytes and text; generated well-formed files, as they
  are or with one cell, line or field count corrupted, a BOM, CRLF line ends, an invalid UTF-8 byte (under
  both `invalid_utf8` policies), a truncation; header-only and empty files; JSON values of the wrong type.
  Files are read in the production block size and in small blocks, so that they span many batches.
- image folders (`read_source`, format imagefolder): random trees of class and split folders holding media,
  other and metadata files, the metadata noise or small CSV/JSONL files (good, or naming missing, escaping or
  duplicate files). Accepted: each media file at most once with its bytes, and every file a row, a counted
  skip or a metadata file read.

Properties
1. the only exception that escapes is a DsmError;
2. every rejection is one line per problem naming the file and a place: `<file>:<line>:<col>:`, a registry
   key path, or a row, line or column of the raw file;
3. a rejected clean leaves no parquet, JSON sidecar or temp file; an accepted one leaves exactly one
   readable parquet file holding the result's rows;
4. a generated well-formed file round-trips: the cleaned rows are exactly the rows a plain Python model of
   the cleaning rules (trim, empty → null, required, labels, dedupe) keeps.

By default each test runs a fixed, derandomized set of examples (reproducible in CI; the file takes well
under a minute). A soak run sets DSM_FUZZ_EXAMPLES:

    DSM_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest dsm_assets_tests/test_fuzz.py -q

runs that many examples per test from a random seed; a failure prints `@reproduce_failure(...)` to replay it,
and the failing example is kept in .hypothesis/ and tried first by the next soak run."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dsm_assets.atomic import TEMP_PREFIX
from dsm_assets.cleaning import CleanResult, clean_dataset
from dsm_assets.errors import DsmError, RegistryError
from dsm_assets.layout import clean_dir
from dsm_assets.registry import NAME_RE, REPO_RE, DatasetSpec, Registry, display_path, load_registry
from dsm_assets.sources import UTF8_BOM

from .conftest import write_raw

# ---- settings --------------------------------------------------------------------------------------------

settings.register_profile("dsm-ci", deadline=None, derandomize=True, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dsm-soak", deadline=None, derandomize=False, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
SOAK_EXAMPLES = int(os.environ.get("DSM_FUZZ_EXAMPLES") or 0)
PROFILE = settings.get_profile("dsm-soak" if SOAK_EXAMPLES else "dsm-ci")


def fuzz(examples: int) -> settings:
    """A test's settings: `examples` examples, or DSM_FUZZ_EXAMPLES of them in a soak run."""
    return settings(PROFILE, max_examples=SOAK_EXAMPLES or examples)


# ---- shared strategies -----------------------------------------------------------------------------------

# characters that break parsers and quoting, mixed with any unicode: small pools make collisions likely
NASTY_CHARS = list(' \t\r\n,;:"\'\\{}[]<>-#&*!|?%@`\x00\x1f\x7f\u00a0\u2028\ufeffaé🙂')
nasty_text = st.text(st.sampled_from(NASTY_CHARS) | st.characters(codec="utf-8"), max_size=12)
huge_ints = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, -(10**40)])
junk_scalars = st.one_of(st.none(), st.booleans(), st.integers(), huge_ints, st.floats(), nasty_text)
junk_keys = st.one_of(nasty_text, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
junk_values = st.recursive(junk_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(junk_keys, inner, max_size=3), max_leaves=6)
json_floats = st.floats(allow_nan=False, allow_infinity=False)
json_junk = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), huge_ints, json_floats, nasty_text),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(nasty_text, inner, max_size=3),
                         max_leaves=6)
MARK = "<<MARK>>"  # stands in for invalid UTF-8 until a generated file is bytes: no writer escapes it
invalid_utf8 = st.sampled_from([b"\xff", b"\xc3", b"\xe9", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"])
byte_snippets = st.one_of(invalid_utf8, st.binary(max_size=4), st.sampled_from(
    [b'"', b",", b"\n", b"\r", b"\r\n", b"\x00", b"{", b"}", b"[", b"]", b": ", b"- ", b"\t", b"\xef\xbb\xbf"]))


# read block sizes: the production default (None), or small ones, so files span many blocks and batches
block_sizes = st.sampled_from([None, 64, 256, 1024])


@st.composite
def spliced(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with one to three byte-level edits: a snippet inserted, a range deleted or replaced, a truncation."""
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(data)))
        end = draw(st.integers(start, min(len(data), start + 8)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        snippet = draw(byte_snippets) if op in ("insert", "replace") else b""
        data = data[:start] if op == "truncate" else data[:start] + snippet + data[end if op != "insert" else start:]
    return data


# ---- the registry ----------------------------------------------------------------------------------------

def valid_registry() -> dict[str, Any]:
    """A registry that uses every section and option, so mutations reach every check."""
    reviews = {
        "name": "t", "use": "tests", "owner": "team:ml-data",
        "source": {"path": "raw/t/*.jsonl", "format": "jsonl"},
        "schema": {"id": "int64", "text": "string", "label": "string", "layer_main": "list<string>"},
        "cleaning": {"dedupe_key": ["id"], "required": ["text", "label"], "invalid_utf8": "drop",
                     "labels": {"column": "label", "allowed": ["a", "b"]},
                     "layers": {"prefix": "layer_", "canonical": "layer_main"}},
        "remote": {"kind": "hub", "repo": "dsm/t", "private": True, "create": False},
        "cache_dir": "cache/t", "shards": {"count": 2, "estimated_size": 10, "publish": True}, "pin": "v1.0",
    }
    scores = {
        "name": "u", "use": "more tests", "owner": "someone@example.com",
        "source": {"path": "raw/u/*.csv", "format": "csv"},
        "schema": {"id": "int64", "score": "float64", "flag": "bool"},
        "remote": {"kind": "s3", "repo": "dsm/u", "bucket": "my-bucket", "prefix": "datasets"},
    }
    return {"version": 1, "cache": {"refresh_cron": "0 4 * * *", "keep": 2}, "datasets": [reviews, scores],
            "models": [{"name": "m", "dataset": "t", "use": "x", "metric": "accuracy", "threshold": 0.8,
                        "train": {"command": ["python", "train.py"], "code": ["train.py"]}}]}


@st.composite
def location(draw: st.DrawFn, doc: Any) -> tuple[Any, Any]:
    """A (container, key) somewhere in `doc`; key None means "the empty container itself"."""
    node = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return node, None
        key = draw(st.sampled_from(keys))
        child = node[key]
        if not (isinstance(child, dict | list) and child and draw(st.booleans())):
            return node, key
        node = child


@st.composite
def mutated_registry(draw: st.DrawFn) -> dict[str, Any]:
    """The valid registry after one to three structural mutations."""
    doc = valid_registry()
    for _ in range(draw(st.integers(1, 3))):
        parent, key = draw(location(doc))
        op = draw(st.sampled_from(["drop", "replace", "add", "rename"]) if key is not None else st.just("add"))
        if op == "add" and isinstance(parent, list):
            parent.append(draw(junk_values))
        elif op == "add":
            parent[draw(junk_keys)] = draw(junk_values)
        elif op == "drop":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(junk_keys.filter(lambda k, p=parent: k not in p))] = parent.pop(key)
        else:
            parent[key] = draw(junk_values)
    return doc


def dumped(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()


registry_bytes = st.one_of(
    st.binary(max_size=200),
    st.text(st.sampled_from(NASTY_CHARS) | st.characters(codec="utf-8"), max_size=200).map(str.encode),
    st.builds(dumped, mutated_registry()).flatmap(spliced),
    spliced(dumped(valid_registry())),
    st.sampled_from([b"", b"\xef\xbb\xbf", b"[" * 5000, b"a: " + b"{a: " * 3000, b"datasets: &a [*a]\n",
                     b"datasets:\n- &e {name: t, use: *e}\n", b"? [a, b]\n: c\n", b"datasets: !!python/tuple [1]\n"]),
)

# the place a registry problem names: line:column, a key path, or the document itself
PLACED_PROBLEM = (
    r":\d+:\d+: (?:malformed YAML|not valid UTF-8)\b.+"
    r"|: (?:(?:datasets|models)(?:\[\d+\].*?)?|cache(?:\..*?)?): .+"
    r"|: .*: unknown key; expected one of: version, cache, datasets, models"
    r"|: expected a mapping with keys version, cache, datasets, models"
)


def load_or_problems(path: Path) -> Registry | list[str]:
    """The registry, or its problems after checking each is one line naming the file and a place."""
    try:
        return load_registry(path)
    except RegistryError as err:
        shown = display_path(path)
        assert err.problems and str(err) == "\n".join(err.problems)
        for problem in err.problems:
            assert len(problem.splitlines()) == 1, f"multi-line problem: {problem!r}"
            assert re.fullmatch(re.escape(shown) + f"(?:{PLACED_PROBLEM})", problem), f"no place: {problem!r}"
        return err.problems


def assert_really_valid(registry: Registry) -> None:
    """What an accepted registry promises the rest of the code."""
    for spec in registry.datasets:
        assert NAME_RE.fullmatch(spec.name) and REPO_RE.fullmatch(spec.remote.repo), spec
        for path in (spec.source.path, spec.cache_dir):
            assert "\x00" not in path and ".." not in path.split("/") and not path.startswith("/"), spec
        spec.arrow_schema()
        json.loads(registry.fingerprint(spec.name))


def registry_outcome(text: bytes) -> Registry | list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "registry.yaml"
        path.write_bytes(text)
        outcome = load_or_problems(path)
    if isinstance(outcome, Registry):
        assert_really_valid(outcome)
    return outcome


def test_the_unmutated_registry_is_valid():
    registry = registry_outcome(dumped(valid_registry()))
    assert isinstance(registry, Registry) and [d.name for d in registry.datasets] == ["t", "u"]


@fuzz(150)
@given(mutated_registry())
def test_mutated_registry_loads_or_names_every_problem(doc):
    registry_outcome(dumped(doc))


@fuzz(150)
@given(registry_bytes)
def test_registry_bytes_load_or_name_every_problem(text):
    registry_outcome(text)


def not_a(*good: str) -> Callable[[Any], bool]:
    return lambda value: value not in good


def not_matching(pattern: str) -> Callable[[Any], bool]:
    return lambda value: not (isinstance(value, str) and re.fullmatch(pattern, value))


def names_scalar_columns(value: Any) -> bool:
    """Whether `value` is a valid dedupe key for dataset 0: one or more of its scalar columns."""
    names = [value] if isinstance(value, str) else value
    return isinstance(names, list) and all(isinstance(n, str) and n in ("id", "text", "label") for n in names)


bad_names = st.sampled_from(["Bad-Name", "t\n", "", " t", "t.t", "ünï"]) | junk_values.filter(
    lambda v: not (isinstance(v, str) and re.fullmatch(r"[a-z0-9_]+", v)))
too_deep_lists = st.sampled_from(["list<" * 9 + "string" + ">" * 9, "list<" * 2000 + "int64" + ">" * 2000])
misspelt_types = st.sampled_from(["strng", "int", "list<>", "list<strng>", "List<string>", "list<string", "str\ning",
                                  "map<string,string>"])
bad_types = misspelt_types | too_deep_lists | junk_values.filter(lambda v: not isinstance(v, str))
bad_paths = st.sampled_from(["../x/*.csv", "/etc/passwd", "raw/../../x", "", "   ", "raw/\x00.csv", "raw/a\x00"])
BAD_VALUES: dict[tuple[Any, ...], st.SearchStrategy[Any]] = {
    ("datasets", 0, "name"): bad_names,
    ("datasets", 1, "name"): bad_names,
    ("datasets", 0, "schema", "text"): bad_types,
    ("datasets", 0, "source", "format"): junk_values.filter(not_a("csv", "jsonl", "parquet")),
    ("datasets", 0, "source", "path"): bad_paths | junk_values.filter(lambda v: not isinstance(v, str)),
    ("datasets", 0, "cache_dir"): bad_paths,
    ("datasets", 0, "remote", "kind"): junk_values.filter(not_a("local", "hub", "s3")),
    ("datasets", 0, "remote", "repo"): st.sampled_from(["dsm", "dsm/t\n", "a/b/c", "/t", ""])
    | junk_values.filter(not_matching(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")),
    ("datasets", 1, "remote", "bucket"): st.sampled_from(["Bucket", "my-bucket\n", "a", "-bucket"])
    | junk_values.filter(not_matching(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")),
    ("datasets", 0, "cleaning", "labels", "column"): junk_values.filter(not_a("label", "text")),
    ("datasets", 0, "cleaning", "dedupe_key"): st.sampled_from([["layer_main"], ["id", "layer_main"], ["nope"]])
    | junk_values.filter(lambda v: not names_scalar_columns(v)),
    ("datasets", 0, "cleaning", "invalid_utf8"): junk_values.filter(not_a("fail", "drop")),
    ("datasets", 0, "shards", "count"): st.integers(max_value=0) | st.floats() | nasty_text | st.booleans(),
    ("datasets", 0, "pin"): st.sampled_from(["1.0", "v1", "v1.0\n", "v1.0.0", ""]) | st.integers(),
    ("datasets", 0, "owner"): st.sampled_from(["nobody", "team:", "a@b.c\n", "@b.c"]) | st.integers(),
    ("cache", "keep"): st.integers(max_value=0) | st.floats() | nasty_text | st.booleans(),
    ("models", 0, "dataset"): junk_values.filter(not_a("t")),
    ("models", 0, "threshold"): st.floats().filter(lambda x: not 0 <= x <= 1) | nasty_text | st.booleans(),
}


def key_path(keys: tuple[Any, ...]) -> str:
    """("datasets", 0, "name") → "datasets[0].name", as the registry's messages spell it."""
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else f".{key}" if out else key
    return out


@st.composite
def registry_with_one_bad_value(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    keys = draw(st.sampled_from(sorted(BAD_VALUES, key=str)))
    doc = valid_registry()
    parent = doc
    for key in keys[:-1]:
        parent = parent[key]
    parent[keys[-1]] = draw(BAD_VALUES[keys])
    return doc, key_path(keys)


@fuzz(150)
@given(registry_with_one_bad_value())
def test_a_bad_value_is_reported_under_its_key(case):
    doc, key = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "registry.yaml"
        path.write_bytes(dumped(doc))
        problems = load_or_problems(path)
        assert not isinstance(problems, Registry), f"{key} = {doc!r} was accepted"
        assert any(re.match(re.escape(f"{display_path(path)}: {key}") + r"[.\[:]", p) for p in problems), problems


# ---- raw files: one dataset, one raw file, cleaned in a fresh temp dir per example --------------------------

COLUMNS = {"id": "int64", "text": "string", "label": "string", "score": "float64", "flag": "bool"}
JSONL_COLUMNS = {**COLUMNS, "words": "list<string>"}
ALLOWED_LABELS = ("a", "b")


@st.composite
def cleaning_rules(draw: st.DrawFn) -> dict[str, Any]:
    """A registry `cleaning` section: any required columns, labels or not, one of several dedupe keys."""
    rules: dict[str, Any] = {
        "required": draw(st.lists(st.sampled_from(["id", "text", "label"]), unique=True, max_size=2)),
        "dedupe_key": draw(st.sampled_from([[], ["text"], ["id"], ["text", "label"], ["label", "text", "id"]])),
        "invalid_utf8": draw(st.sampled_from(["fail", "drop"])),
    }
    if draw(st.booleans()):
        rules["labels"] = {"column": "label", "allowed": list(ALLOWED_LABELS)}
    return rules


def dataset_entry(fmt: str, cleaning: dict[str, Any]) -> dict[str, Any]:
    return {"name": "t", "use": "fuzz", "source": {"path": f"raw/t/*.{fmt}", "format": fmt},
            "schema": dict(JSONL_COLUMNS if fmt == "jsonl" else COLUMNS), "cleaning": cleaning}


REJECTION_KINDS = ("a row or line", "the columns", "an empty file", "no data rows")


def raw_place_patterns(raw: str, where: str) -> list[str]:
    """How a rejection of raw file `raw` (as display_path shows it) may name its place."""
    file = re.escape(raw)
    return [
        rf"{file}: (?:row|line) (?P<n>\d+)(?:, column '\w+')?: .+",
        rf"{file}: (?:(?:missing|extra|duplicate) column\(s\) ['\"].+|column '\w+': .+)",
        rf"{file}: file is empty(?: \(blank lines only\))?; expected .+",
        rf"{re.escape(where)}\.source\.path: '.+' has no data rows; add rows to raw/t/\S+",
    ]


def assert_rejected_cleanly(err: DsmError, spec: DatasetSpec, raw: Path, content: bytes, data: Path) -> None:
    message = str(err)
    assert len(message.splitlines()) == 1, f"multi-line message: {message!r}"
    placed = [re.fullmatch(p, message) for p in raw_place_patterns(display_path(raw), spec.where)]
    match = next((m for m in placed if m), None)
    assert match, f"message names no file and place: {message!r}"
    event(f"rejected: {REJECTION_KINDS[placed.index(match)]}")
    if "n" in match.groupdict():
        lines = len(content.splitlines()) + 1  # like the parsers, splitlines() ends a line at \n, \r\n or \r
        assert 1 <= int(match["n"]) <= lines, f"row/line out of range: {message!r}"
    out = clean_dir(data, spec.name)
    left = [p.name for p in out.rglob("*") if p.name != ".lock"] if out.exists() else []
    assert left == [], f"partial output after a rejection: {left}"


def assert_accepted_fully(result: CleanResult, spec: DatasetSpec, data: Path) -> None:
    out = clean_dir(data, spec.name)
    assert [p.name for p in out.iterdir() if p.is_dir() and p.name != "inputs"] == [result.path.name]
    assert sorted(result.path.iterdir()) == list(result.files) and result.files
    assert not [p for p in out.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert (out / f"{result.version}.json").is_file()
    table = pa.concat_tables([pq.read_table(f) for f in result.files])
    assert table.num_rows == result.rows_out and table.schema == spec.arrow_schema()


def clean_content(fmt: str, cleaning: dict[str, Any], content: bytes,
                  block_size: int | None = None) -> list[dict[str, Any]] | DsmError:
    """Clean one raw file holding `content` (read in blocks of `block_size`, default: the production one):
    its rows when accepted, the error when rejected (both checked)."""
    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "registry.yaml"
        registry.write_text(yaml.safe_dump({"datasets": [dataset_entry(fmt, cleaning)]}, sort_keys=False))
        spec = load_registry(registry).datasets[0]
        data = Path(tmp) / "data"
        raw = write_raw(data, "t", f"a.{fmt}", content)
        try:
            result = clean_dataset(spec, data, **({} if block_size is None else {"block_size": block_size}))
        except DsmError as err:
            assert_rejected_cleanly(err, spec, raw, content, data)
            return err
        assert_accepted_fully(result, spec, data)
        event("accepted")
        return pa.concat_tables([pq.read_table(f) for f in result.files]).to_pylist()


# ---- generated well-formed rows and the model of cleaning them ------------------------------------------

# tiny alphabets make equal and nearly-equal keys (and separator look-alikes) likely
tiny_text = st.text(st.sampled_from(["a", "b", " ", "\x1f", "\x00"]), max_size=4)
texts = st.one_of(st.none(), tiny_text, nasty_text)
labels = st.one_of(st.none(), st.sampled_from(["a", "b", "c", " a", "b\t"]), tiny_text, nasty_text)
int64s = st.integers(-(2**63), 2**63 - 1)
records = st.fixed_dictionaries({
    "id": st.none() | int64s | st.sampled_from([0, 1, 2]),
    "text": texts,
    "label": labels,
    "score": st.none() | st.floats(allow_nan=False, allow_infinity=False),
    "flag": st.none() | st.booleans(),
})
jsonl_records = records.flatmap(lambda r: st.fixed_dictionaries(
    {**{k: st.just(v) for k, v in r.items()}, "words": st.none() | st.lists(texts, max_size=3)}))


def trimmed(value: Any) -> Any:
    """Text as the cleaned data holds it: whitespace trimmed, empty → null."""
    return (value.strip() or None) if isinstance(value, str) else value


def model_clean(rows: list[dict[str, Any]], cleaning: dict[str, Any]) -> list[dict[str, Any]]:
    """What the cleaning rules keep, in plain Python: required, then labels, then dedupe (first wins)."""
    kept, seen = [], set()
    for row in rows:
        row = {k: trimmed(v) for k, v in row.items()}
        if any(row[c] is None for c in cleaning["required"]):
            continue
        if "labels" in cleaning and row["label"] is not None and row["label"] not in ALLOWED_LABELS:
            continue
        key = tuple(row[c] for c in cleaning["dedupe_key"])
        if cleaning["dedupe_key"] and key in seen:
            continue
        seen.add(key)
        kept.append(row)
    return kept


def same_rows(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    def canon(v: Any) -> Any:
        return "NaN" if isinstance(v, float) and math.isnan(v) else v
    return [{k: canon(v) for k, v in r.items()} for r in got] == [{k: canon(v) for k, v in r.items()} for r in want]


# ---- CSV -------------------------------------------------------------------------------------------------

def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


@st.composite
def csv_layout(draw: st.DrawFn) -> dict[str, Any]:
    """How a well-formed CSV may be written: column order, quoting, line ends, a BOM."""
    return {"columns": draw(st.permutations(list(COLUMNS))), "bom": draw(st.booleans()),
            "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])),
            "lineterminator": draw(st.sampled_from(["\n", "\r\n"]))}


def render_csv(cells: list[list[str]], layout: dict[str, Any]) -> bytes:
    lines = [csv_line(row, layout["quoting"]) + layout["lineterminator"] for row in [layout["columns"], *cells]]
    return (UTF8_BOM if layout["bom"] else b"") + "".join(lines).encode()


def csv_line(row: list[str], quoting: int) -> str:
    """One CSV record without its line end. csv.writer quotes only the line-end characters of its own
    lineterminator: with "\r\n" it quotes a field holding either, so a bare "\r" cannot end a record early."""
    buf = io.StringIO()
    csv.writer(buf, quoting=quoting, lineterminator="\r\n").writerow(row)
    return buf.getvalue().removesuffix("\r\n")


def csv_cells(rows: list[dict[str, Any]], columns: list[str]) -> list[list[str]]:
    return [[csv_cell(row[c]) for c in columns] for row in rows]


@st.composite
def corrupted_csv(draw: st.DrawFn) -> bytes:
    """A generated CSV with one cell replaced by junk, a field added or removed, and/or bytes spliced in."""
    layout = draw(csv_layout())
    cells = csv_cells(draw(st.lists(records, min_size=1, max_size=6)), layout["columns"])
    row = cells[draw(st.integers(0, len(cells) - 1))]
    edit = draw(st.sampled_from(["cell", "add_field", "drop_field", "none"]))
    if edit == "cell":
        row[draw(st.integers(0, len(row) - 1))] = draw(nasty_text | st.sampled_from(["three", "1.5", "yes", "1e400"]))
    elif edit == "add_field":
        row.append(draw(nasty_text))
    elif edit == "drop_field":
        row.pop()
    content = render_csv(cells, layout)
    return draw(spliced(content)) if edit == "none" or draw(st.booleans()) else content


CSV_HEADER = ",".join(COLUMNS).encode() + b"\n"
csv_noise = st.one_of(
    st.binary(max_size=120),
    nasty_text.map(str.encode),
    st.binary(max_size=60).map(lambda b: CSV_HEADER + b),
    nasty_text.map(lambda t: CSV_HEADER + t.encode()),
    st.sampled_from([b"", CSV_HEADER, b"\xef\xbb\xbf" + CSV_HEADER, CSV_HEADER.replace(b"\n", b"\r\n"),
                     b"\n\n", b"id,id,text,label,score,flag\n1,1,x,a,1,true\n",
                     # fields beyond Python's csv limit (128 KiB), which pyarrow reads
                     CSV_HEADER + b'1,"' + b"x" * 200_000 + b'",a,1.0,true\n2,y\n',
                     b'"' + CSV_HEADER + b"x" * 200_000]),
)


def small_csv_block(cells: list[list[str]], layout: dict[str, Any]) -> int:
    """A read block of twice the longest record (the header too), which pyarrow can read: a batch or two
    per record. (Just the longest record is not always enough: pyarrow's chunker wants some room.)"""
    header = len(render_csv([], layout))
    return 2 * max([header, *(len(render_csv([row], layout)) - header for row in cells)])


@fuzz(80)
@given(st.lists(records, max_size=8), csv_layout(), cleaning_rules(), st.booleans())
def test_well_formed_csv_round_trips(rows, layout, cleaning, small_blocks):
    cells = csv_cells(rows, layout["columns"])
    block_size = small_csv_block(cells, layout) if small_blocks else None
    got = clean_content("csv", cleaning, render_csv(cells, layout), block_size)
    if not rows:
        assert isinstance(got, DsmError)  # no data rows is a rejection
    else:
        assert isinstance(got, list) and same_rows(got, model_clean(rows, cleaning))


key_part = st.none() | st.text(st.sampled_from(["a", "\x1f", "\x00"]), max_size=3)


@fuzz(50)
@given(st.lists(st.tuples(key_part, key_part), min_size=2, max_size=6))
def test_a_composite_dedupe_key_merges_only_equal_keys(keys):
    rows = [{"id": i, "text": t, "label": label, "score": None, "flag": None} for i, (t, label) in enumerate(keys)]
    cleaning = {"required": [], "dedupe_key": ["text", "label"], "invalid_utf8": "fail"}
    layout = {"columns": list(COLUMNS), "bom": False, "quoting": csv.QUOTE_MINIMAL, "lineterminator": "\n"}
    got = clean_content("csv", cleaning, render_csv(csv_cells(rows, layout["columns"]), layout))
    assert isinstance(got, list) and same_rows(got, model_clean(rows, cleaning))


@fuzz(60)
@given(csv_noise, cleaning_rules())
def test_csv_noise_is_rejected_cleanly_or_accepted_fully(content, cleaning):
    clean_content("csv", cleaning, content)


@fuzz(100)
@given(corrupted_csv(), cleaning_rules(), block_sizes)
def test_corrupted_csv_is_rejected_cleanly_or_accepted_fully(content, cleaning, block_size):
    clean_content("csv", cleaning, content, block_size)


# a cell no int64, float64 or bool parser reads: it holds a letter none of their spellings has
unreadable_cell = st.text(st.sampled_from(list("xzqé0123 .-+e")), min_size=1, max_size=6).filter(
    lambda s: any(c in s for c in "xzqé"))


@fuzz(60)
@given(st.lists(records, min_size=1, max_size=5), csv_layout(), st.sampled_from(["id", "score", "flag"]),
       unreadable_cell, st.data())
def test_an_unreadable_csv_cell_is_named_by_row_and_column(rows, layout, column, cell, data):
    victim = data.draw(st.integers(0, len(rows) - 1))
    cells = csv_cells(rows, layout["columns"])
    cells[victim][layout["columns"].index(column)] = cell
    block_size = small_csv_block(cells, layout) if data.draw(st.booleans()) else None
    got = clean_content("csv", {"required": [], "dedupe_key": []}, render_csv(cells, layout), block_size)
    place = f": row {victim + 1}, column '{column}': cannot read {cell.strip()!r} as {COLUMNS[column]}; fix the value"
    assert isinstance(got, DsmError) and place in str(got)


@fuzz(50)
@given(st.lists(records, min_size=1, max_size=6), csv_layout(), invalid_utf8, st.data())
def test_invalid_utf8_in_csv_fails_or_drops_that_row(rows, layout, bad, data):
    cells = csv_cells(rows, layout["columns"])
    victim = data.draw(st.integers(0, len(rows) - 1))
    column = layout["columns"].index("text")
    cells[victim][column] = MARK  # stands in for the invalid bytes, which csv.writer cannot write
    content = render_csv(cells, layout).replace(MARK.encode(), b"x" + bad + b"x")
    cleaning = {"required": [], "dedupe_key": [], "invalid_utf8": data.draw(st.sampled_from(["fail", "drop"]))}
    block_size = small_csv_block(cells, layout) if data.draw(st.booleans()) else None
    got = clean_content("csv", cleaning, content, block_size)
    if cleaning["invalid_utf8"] == "fail":
        assert isinstance(got, DsmError) and f": row {victim + 1}, column 'text': text is not valid UTF-8" in str(got)
    else:
        others = rows[:victim] + rows[victim + 1:]
        if others:
            assert isinstance(got, list) and same_rows(got, model_clean(others, cleaning))


# ---- JSONL -----------------------------------------------------------------------------------------------

@st.composite
def jsonl_lines(draw: st.DrawFn, rows: list[dict[str, Any]]) -> list[bytes]:
    """Each record as one JSON object, keys in any order, escaped or raw unicode."""
    lines = []
    for row in rows:
        keys = draw(st.permutations(list(row)))
        lines.append(json.dumps({k: row[k] for k in keys}, ensure_ascii=draw(st.booleans()),
                                allow_nan=False).encode())
    return lines


@st.composite
def jsonl_layout(draw: st.DrawFn) -> dict[str, Any]:
    return {"bom": draw(st.booleans()), "newline": draw(st.sampled_from([b"\n", b"\r\n"])),
            "final_newline": draw(st.booleans())}


def small_jsonl_block(lines: list[bytes], layout: dict[str, Any]) -> int:
    """A read block of twice the longest line, which pyarrow can read: a batch or two per record."""
    return 2 * (max(map(len, lines), default=0) + len(layout["newline"]) + len(UTF8_BOM))


def render_jsonl(lines: list[bytes], layout: dict[str, Any]) -> bytes:
    body = layout["newline"].join(lines) + (layout["newline"] if layout["final_newline"] else b"")
    return (UTF8_BOM if layout["bom"] else b"") + body


# values of the wrong JSON type for at least one schema column (and some right ones: not every edit is bad)
wrong_json_values = st.one_of(
    st.sampled_from([[], {}, [1, 2], ["a", 1], [["a"]], {"a": 1}, 1.5, 1.0, 0.0, -0.0, 1e300, 2**63, -(2**63) - 1,
                     10**30, "1", "true", " ", True, False, 0, 1, ""]),
    json_junk,
)
bad_json_lines = st.one_of(
    st.sampled_from([b"[1, 2]", b'"text"', b"5", b"null", b"{", b'{"id": NaN}', b'{"id": Infinity}', b"{}",
                     b'{"id": 1, "id": 2}', b"\x00", b'{"id": 1,}']),
    nasty_text.map(str.encode),
    st.binary(max_size=20),
)


@st.composite
def corrupted_jsonl(draw: st.DrawFn) -> bytes:
    """Generated JSONL with one value of the wrong type, an extra or missing key, a junk line, or spliced bytes."""
    rows = draw(st.lists(jsonl_records, min_size=1, max_size=5))
    victim = rows[draw(st.integers(0, len(rows) - 1))]
    edit = draw(st.sampled_from(["value", "extra_key", "drop_key", "line", "splice"]))
    if edit == "value":
        victim[draw(st.sampled_from(list(JSONL_COLUMNS)))] = draw(wrong_json_values)
    elif edit == "extra_key":
        victim[draw(nasty_text)] = draw(wrong_json_values)
    elif edit == "drop_key":
        del victim[draw(st.sampled_from(list(victim)))]
    lines = draw(jsonl_lines(rows))
    if edit == "line":
        lines[draw(st.integers(0, len(lines) - 1))] = draw(bad_json_lines)
    content = render_jsonl(lines, draw(jsonl_layout()))
    return draw(spliced(content)) if edit == "splice" else content


jsonl_noise = st.one_of(
    st.binary(max_size=120),
    nasty_text.map(str.encode),
    st.lists(bad_json_lines, min_size=1, max_size=4).map(b"\n".join),
    st.sampled_from([b"", b"\n", b"\n\n", b"{}\n", b"\xef\xbb\xbf", b"[]\n", b"null\n", b'{"id": 1}\nnull\n']),
)


@fuzz(80)
@given(st.lists(jsonl_records, max_size=8), jsonl_layout(), cleaning_rules(), st.booleans(), st.data())
def test_well_formed_jsonl_round_trips(rows, layout, cleaning, small_blocks, data):
    lines = data.draw(jsonl_lines(rows))
    block_size = small_jsonl_block(lines, layout) if small_blocks else None
    got = clean_content("jsonl", cleaning, render_jsonl(lines, layout), block_size)
    if not rows:
        assert isinstance(got, DsmError)
    else:
        want = [{**r, "score": None if r["score"] is None else float(r["score"])} for r in rows]
        assert isinstance(got, list) and same_rows(got, model_clean(want, cleaning))


@fuzz(60)
@given(jsonl_noise, cleaning_rules())
def test_jsonl_noise_is_rejected_cleanly_or_accepted_fully(content, cleaning):
    clean_content("jsonl", cleaning, content)


@fuzz(100)
@given(corrupted_jsonl(), cleaning_rules(), block_sizes)
def test_corrupted_jsonl_is_rejected_cleanly_or_accepted_fully(content, cleaning, block_size):
    clean_content("jsonl", cleaning, content, block_size)


@fuzz(50)
@given(st.lists(jsonl_records, min_size=1, max_size=5), jsonl_layout(), invalid_utf8, st.data())
def test_invalid_utf8_in_jsonl_fails_or_drops_that_record(rows, layout, bad, data):
    victim = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.sampled_from(["text", "words"]))
    rows[victim][column] = MARK if column == "text" else [MARK]
    lines = data.draw(jsonl_lines(rows))
    content = render_jsonl(lines, layout).replace(MARK.encode(), b"x" + bad + b"x")
    cleaning = {"required": [], "dedupe_key": [], "invalid_utf8": data.draw(st.sampled_from(["fail", "drop"]))}
    block_size = small_jsonl_block(lines, layout) if data.draw(st.booleans()) else None
    got = clean_content("jsonl", cleaning, content, block_size)
    if cleaning["invalid_utf8"] == "fail":
        assert isinstance(got, DsmError) and f": line {victim + 1}: text is not valid UTF-8" in str(got)
    else:
        others = [{**r, "score": None if r["score"] is None else float(r["score"])}
                  for r in rows[:victim] + rows[victim + 1:]]
        assert isinstance(got, list) and same_rows(got, model_clean(others, cleaning))


json_objects = st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
not_strings = st.one_of(st.integers(), json_floats, st.booleans(), json_objects, st.lists(st.integers(), max_size=2))
# for each column, JSON values pyarrow must refuse to read as its type
WRONG_JSON: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(json_floats, huge_ints, nasty_text, st.booleans(), json_objects, st.lists(st.integers())),
    "text": not_strings,
    "label": not_strings,
    "score": st.one_of(nasty_text, st.booleans(), json_objects, st.lists(json_floats, max_size=2)),
    "flag": st.one_of(st.integers(), json_floats, nasty_text, json_objects, st.lists(st.booleans(), max_size=2)),
    "words": st.one_of(nasty_text, st.integers(), json_floats, st.booleans(), json_objects,
                       st.lists(not_strings | st.lists(nasty_text, max_size=1), min_size=1, max_size=3)),
}


@fuzz(80)
@given(st.lists(jsonl_records, min_size=1, max_size=5), st.sampled_from(list(JSONL_COLUMNS)), st.data())
def test_a_json_value_of_the_wrong_type_is_named_by_line_and_column(rows, column, data):
    victim = data.draw(st.integers(0, len(rows) - 1))
    rows[victim][column] = data.draw(WRONG_JSON[column])
    lines, layout = data.draw(jsonl_lines(rows)), data.draw(jsonl_layout())
    block_size = small_jsonl_block(lines, layout) if data.draw(st.booleans()) else None
    got = clean_content("jsonl", {"required": [], "dedupe_key": []}, render_jsonl(lines, layout), block_size)
    place = f": line {victim + 1}, column '{column}': cannot read "
    assert isinstance(got, DsmError) and place in str(got) and f" as {JSONL_COLUMNS[column]}; fix the value" in str(got)



# ---- image folders (imagefolder: read through the source reader; media cleaning is cleaning's) -----------

FOLDER_PARTS = st.sampled_from(["cat", "dog", "train", "test", "val", "a b", "é", ".hidden"])
FOLDER_FILES = st.sampled_from(["a.png", "B.PNG", "c.jpg", "e.gif", "d.txt", ".DS_Store", "metadata.csv",
                                "metadata.jsonl"])
METADATA_CONTENT = st.one_of(st.binary(max_size=12), st.sampled_from([
    b"file_name,label\na.png,x\n", b"file_name,label\ncat/a.png,y\nB.PNG,\n", b"label\nx\n",
    b"file_name,label\n../a.png,x\n", b"file_name,label\na.png,x\n./a.png,y\n", b"file_name,label\n",
    b'{"file_name": "a.png", "label": "x"}\n', b'{"file_name": "c.jpg", "label": {"k": 1}}\n',
    b'{"file_name": "/a.png"}\n', b'{"label": "x"}\n',
]))
folder_trees = st.dictionaries(
    st.tuples(st.lists(FOLDER_PARTS, max_size=2).map(tuple), FOLDER_FILES), st.binary(max_size=8), max_size=8)


@fuzz(100)
@given(folder_trees, st.data(), st.booleans(), st.sampled_from([None, 4, 64]))
def test_an_image_folder_is_read_fully_or_rejected_in_one_line(tree, data, with_split, block_size):
    from dsm_assets.sources import read_source, resolve_files
    from dsm_assets.sources.mediafolder import METADATA, SPLITS

    schema = {"image": "image", "label": "string", **({"split": "string"} if with_split else {})}
    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "registry.yaml"
        registry.write_text(yaml.safe_dump({"datasets": [{"name": "t", "use": "fuzz", "schema": schema,
                                                          "source": {"path": "raw/t", "format": "imagefolder"}}]}))
        spec = load_registry(registry).datasets[0]
        root = Path(tmp) / "data" / "raw" / "t"
        files = {}  # folder parts and file names differ: no path is both a file and a folder
        for (parts, name), content in tree.items():
            if name in METADATA:
                content = data.draw(METADATA_CONTENT)
            path = root.joinpath(*parts, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            files[Path(*parts, name).as_posix()] = content
        try:
            found = resolve_files(spec, root.parent.parent)
            raws = list(read_source(spec, found, **({} if block_size is None else {"block_size": block_size})))
        except DsmError as err:
            message = str(err)
            assert len(message.splitlines()) == 1, f"multi-line message: {message!r}"
            shown_root = re.escape(display_path(root))
            assert re.match(rf"({shown_root}\S*|{re.escape(spec.where)}\.source\.path): .+", message), message
            event("rejected")
            return
        event("accepted")
        rows = [row for raw in raws for row in raw.batch.to_pylist()]
        paths = [row["image"]["path"] for row in rows]
        assert len(set(paths)) == len(paths)
        assert all(row["image"]["bytes"] == files[row["image"]["path"]] for row in rows)
        used = [rel for rel in files if Path(rel).name in METADATA
                and (Path(rel).parent == Path(".") or str(Path(rel).parent).lower() in SPLITS)]
        assert len(rows) + sum(n for raw in raws for n in raw.skipped.values()) + len(used) == len(files)
