"""Reading and validating the registry file: the YAML read safely (UTF-8, nesting depth, alias expansion
bounded), then every entry checked, all problems reported at once as `<file>: <key path>: <problem>`."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from dsm_assets.arrow_types import check_type
from dsm_assets.errors import RegistryError
from dsm_assets.registry import (
    BUCKET_RE,
    CRON_RE,
    FOLDER_FORMATS,
    FORMATS,
    MAX_DEPTH,
    MAX_VALUES,
    NAME_RE,
    OWNER_RE,
    PIN_RE,
    REMOTE_KINDS,
    REPO_RE,
    TRANSFERS,
    UTF8_POLICIES,
    CacheSettings,
    Cleaning,
    DatasetSpec,
    Labels,
    Layers,
    MediaLimits,
    ModelSpec,
    Registry,
    RemoteConfig,
    Shards,
    Source,
    TrainSpec,
    display_path,
)


def read_registry(path: Path) -> Registry:
    """Read, parse and validate the registry file at `path`. Raises RegistryError naming every problem."""
    shown = display_path(path)
    text = _read_text(path, shown)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else _line_col(text, getattr(exc, "position", 0))
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RegistryError([f"{shown}:{line}:{col}: malformed YAML: {problem}"]) from None
    except RecursionError:
        line, col = _too_deep(text)
        raise RegistryError([f"{shown}:{line}:{col}: malformed YAML: nested more than {MAX_DEPTH} levels deep; "
                             "flatten the file"]) from None
    if _expanded_size(doc, {}) > MAX_VALUES:  # aliases share one object when loaded; walking them does not
        line, col = _first_alias(text)
        raise RegistryError([f"{shown}:{line}:{col}: malformed YAML: aliases (*name) expand to more than "
                             f"{MAX_VALUES:,} values; write the values out instead of nesting aliases"])
    return parse_registry(doc, path)


def _expanded_size(node: Any, seen: dict[int, int]) -> int:
    """How many values `node` holds once every alias is expanded; stops counting past MAX_VALUES. Counted
    once per distinct object (memoised), so a billion-laughs document costs a few thousand steps; a cycle
    counts as too many."""
    if id(node) in seen:
        return seen[id(node)]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    seen[id(node)] = MAX_VALUES + 1  # while its children are counted: an alias to itself (`&a [*a]`) is endless
    total = 1
    for child in children:
        total += _expanded_size(child, seen)
        if total > MAX_VALUES:
            break
    seen[id(node)] = total
    return total


def _read_text(path: Path, shown: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RegistryError([f"{shown}: registry file not found; set DSM_REGISTRY to an existing file"]) from None
    except OSError as exc:
        raise RegistryError([f"{shown}: cannot read registry: {exc}"]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(data, exc.start)
        raise RegistryError([f"{shown}:{line}:{col}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                             "save the file as UTF-8"]) from None


def _line_col(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` in `text`."""
    newline = b"\n" if isinstance(text, bytes) else "\n"
    return text.count(newline, 0, offset) + 1, offset - (text.rfind(newline, 0, offset) + 1) + 1


def _first_alias(text: str) -> tuple[int, int]:
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            return event.start_mark.line + 1, event.start_mark.column + 1
    return 1, 1


def _too_deep(text: str) -> tuple[int, int]:
    """Where the YAML first nests deeper than MAX_DEPTH (the parser is not recursive; the composer is)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return event.start_mark.line + 1, event.start_mark.column + 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return 1, 1


def parse_registry(doc: Any, path: Path) -> Registry:
    checker = _Checker(display_path(path))
    datasets = checker.registry(doc)
    cache = checker.cache_settings(doc.get("cache", {}) if isinstance(doc, dict) else {})
    models = checker.models(doc.get("models", []) if isinstance(doc, dict) else [], datasets)
    if checker.problems:
        raise RegistryError(checker.problems)
    return Registry(path=path, datasets=tuple(datasets), cache=cache, models=tuple(models))


def _key(key: Any) -> str:
    """A mapping key as a key-path segment: plain text as it is; anything else (empty, padded, line breaks,
    not a string) as its repr, so each problem stays one line and names the key unambiguously."""
    return key if isinstance(key, str) and key and key.isprintable() and key.strip() == key else repr(key)


class _Checker:
    """Walks the parsed YAML, collecting every problem with its key path instead of stopping at the first."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.problems: list[str] = []
        self._repos: dict[tuple[str, str], int] = {}  # (remote kind, repo) → first dataset index
        self._caches: dict[tuple[str, ...], int] = {}  # cache_dir parts → first dataset index

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{self.shown}: {key}: {message}" if key else f"{self.shown}: {message}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping with keys {', '.join(allowed)}")
            return {}
        for k in value:
            if k not in allowed:
                self.fail(f"{key}.{_key(k)}" if key else _key(k), f"unknown key; expected one of: {', '.join(allowed)}")
        for k in required:
            if k not in value:
                self.fail(f"{key}.{k}" if key else k, "missing required key")
        return value

    def string(self, value: Any, key: str) -> str | None:
        if isinstance(value, str) and value.strip():
            return value
        self.fail(key, f"expected a non-empty string, got {value!r}")
        return None

    def columns(self, value: Any, key: str, schema: dict[str, str]) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, "expected a list of column names")
            return ()
        for i, col in enumerate(value):
            if schema and col not in schema:
                self.fail(f"{key}[{i}]", f"column {col!r} is not in the schema")
        return tuple(value)

    def rel_path(self, value: Any, key: str) -> str | None:
        text = self.string(value, key)
        if text is None:
            return None
        pure = PurePosixPath(text)
        if pure.is_absolute() or ".." in pure.parts:
            self.fail(key, f"{text!r} would escape the data dir; use a path relative to it without '..'")
            return None
        if "\x00" in text:
            self.fail(key, f"{text!r} contains a NUL character; remove it")
            return None
        return text

    def registry(self, doc: Any) -> list[DatasetSpec]:
        top = self.mapping(doc, "", ("version", "cache", "datasets", "models"), ("datasets",))
        raw = top.get("datasets")
        if "datasets" in top and not isinstance(raw, list):
            self.fail("datasets", "expected a list of datasets")
            return []
        specs: list[DatasetSpec] = []
        first_seen: dict[str, int] = {}
        for i, entry in enumerate(raw or []):
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name in first_seen:
                first = f"datasets[{first_seen[name]}]"
                self.fail(f"datasets[{i}].name", f"duplicate dataset name '{name}' (first at {first}); rename one")
            elif isinstance(name, str):
                first_seen[name] = i
            spec = self.dataset(entry, f"datasets[{i}]")
            if spec is not None:
                specs.append(spec)
                if first_seen.get(spec.name) == i:  # a duplicate name already has its one line
                    self.collisions(spec, i)
        return specs

    def collisions(self, spec: DatasetSpec, i: int) -> None:
        """Two datasets must not share a remote repo or a cache folder (nor nest one cache in another): each
        would publish over, or cache into, the other's."""
        if spec.remote.kind != "s3":  # s3 keys are <prefix>/<dataset name>: unique by name
            first = self._repos.setdefault((spec.remote.kind, spec.remote.repo), i)
            if first != i:
                self.fail(f"datasets[{i}].remote.repo", f"'{spec.remote.repo}' is also the repo of datasets[{first}]; "
                                                        "give each dataset its own repo")
        parts = PurePosixPath(spec.cache_dir).parts
        for other, j in self._caches.items():
            if parts[: len(other)] == other or other[: len(parts)] == parts:
                self.fail(f"datasets[{i}].cache_dir", f"'{spec.cache_dir}' overlaps the cache_dir of datasets[{j}]; "
                                                      "give each dataset its own folder")
                break
        self._caches.setdefault(parts, i)

    def models(self, value: Any, datasets: list[DatasetSpec]) -> list[ModelSpec]:
        if not isinstance(value, list):
            self.fail("models", "expected a list of models")
            return []
        by_name = {d.name: d for d in datasets}
        out: list[ModelSpec] = []
        for i, entry in enumerate(value):
            key = f"models[{i}]"
            d = self.mapping(entry, key, ("name", "dataset", "use", "metric", "threshold", "train"),
                             ("name", "dataset", "use", "train"))
            train = self.train(d["train"], f"{key}.train") if "train" in d else None
            name, dataset = d.get("name"), d.get("dataset")
            if "name" in d and not (isinstance(name, str) and NAME_RE.fullmatch(name)):
                self.fail(f"{key}.name", f"invalid name {name!r}; use lowercase letters, digits and '_' only")
            elif name in [m.name for m in out]:
                self.fail(f"{key}.name", f"duplicate model name '{name}'")
            target = by_name.get(dataset) if isinstance(dataset, str) else None
            if "dataset" in d and target is None:
                self.fail(f"{key}.dataset", f"no dataset named {dataset!r} in this registry")
            if d.get("metric", "accuracy") != "accuracy":
                self.fail(f"{key}.metric", "only 'accuracy' is supported")
            threshold = d.get("threshold", 0.8)
            if not (isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0 <= threshold <= 1):
                self.fail(f"{key}.threshold", f"expected a number between 0 and 1, got {threshold!r}")
            use = self.string(d["use"], f"{key}.use") if "use" in d else None
            if isinstance(name, str) and target is not None and use and train and not self.problems:
                out.append(ModelSpec(name=name, dataset=dataset, use=use, threshold=float(threshold),
                                     train=train))
        return out

    def train(self, value: Any, key: str) -> TrainSpec | None:
        d = self.mapping(value, key, ("command", "code", "timeout_seconds"), ("command", "code"))
        command = self.strings(d.get("command"), f"{key}.command") if "command" in d else ()
        code = self.strings(d.get("code"), f"{key}.code") if "code" in d else ()
        timeout = d.get("timeout_seconds", TrainSpec.timeout_seconds)
        if not (isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0):
            self.fail(f"{key}.timeout_seconds", f"expected a number of seconds above 0, got {timeout!r}")
        if not (command and code) or self.problems:
            return None
        return TrainSpec(command=command, code=code, timeout_seconds=float(timeout))

    def strings(self, value: Any, key: str) -> tuple[str, ...]:
        """A non-empty list of non-empty strings (a command, a list of files)."""
        if not (isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value)):
            self.fail(key, f"expected a non-empty list of strings, got {value!r}")
            return ()
        return tuple(value)

    def cache_settings(self, value: Any) -> CacheSettings:
        d = self.mapping(value, "cache", ("refresh_cron", "keep"))
        cron = d.get("refresh_cron", CacheSettings.refresh_cron)
        if not (isinstance(cron, str) and CRON_RE.fullmatch(cron)):
            self.fail("cache.refresh_cron", f"expected a 5-field cron string like '0 4 * * *', got {cron!r}")
        keep = d.get("keep", CacheSettings.keep)
        if not (isinstance(keep, int) and not isinstance(keep, bool) and keep >= 1):
            self.fail("cache.keep", f"expected an integer >= 1, got {keep!r}")
        return CacheSettings(refresh_cron=cron, keep=keep)

    def dataset(self, entry: Any, key: str) -> DatasetSpec | None:
        allowed = ("name", "use", "source", "schema", "cleaning", "remote", "cache_dir", "shards", "pin", "owner")
        before = len(self.problems)
        d = self.mapping(entry, key, allowed, ("name", "use", "source", "schema"))
        name = d.get("name")
        if "name" in d and not (isinstance(name, str) and NAME_RE.fullmatch(name)):
            self.fail(f"{key}.name", f"invalid name {name!r}; use lowercase letters, digits and '_' only")
        use = self.string(d["use"], f"{key}.use") if "use" in d else None
        source = self.source(d.get("source"), f"{key}.source") if "source" in d else None
        schema = self.schema(d.get("schema"), f"{key}.schema") if "schema" in d else {}
        column_docs = self.column_docs(d.get("schema"), f"{key}.schema")
        cleaning = self.cleaning(d.get("cleaning", {}), f"{key}.cleaning", schema)
        self.media_schema(source.format if source else None, schema, key)
        remote = self.remote(d.get("remote", {}), f"{key}.remote", name)
        cache_dir = self.rel_path(d.get("cache_dir", f"cache/{name}"), f"{key}.cache_dir")
        shards = self.shards(d.get("shards", {}), f"{key}.shards")
        pin = d.get("pin")
        if pin is not None and not (isinstance(pin, str) and PIN_RE.fullmatch(pin)):
            self.fail(f"{key}.pin", f"expected a version tag like v1.0, got {pin!r}")
        owner = d.get("owner")
        if owner is not None and not (isinstance(owner, str) and OWNER_RE.fullmatch(owner)):
            self.fail(f"{key}.owner", f"expected an email or 'team:<name>', got {owner!r}")
        if len(self.problems) > before or not d:
            return None
        return DatasetSpec(name=name, use=use, source=source, schema=schema, cleaning=cleaning, remote=remote,
                           cache_dir=cache_dir, shards=shards, pin=pin, owner=owner, column_docs=column_docs,
                           where=f"{self.shown}: {key}")

    def source(self, value: Any, key: str) -> Source | None:
        d = self.mapping(value, key, ("path", "format"), ("path", "format"))
        path = self.rel_path(d["path"], f"{key}.path") if "path" in d else None
        fmt = d.get("format")
        if "format" in d and fmt not in FORMATS:
            self.fail(f"{key}.format", f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
        return Source(path=path, format=fmt) if path and fmt in FORMATS else None

    def schema(self, value: Any, key: str) -> dict[str, str | None]:
        """Column → type; a column whose type is invalid maps to None so later keys can still name it."""
        if not isinstance(value, dict) or not value:
            self.fail(key, "expected a non-empty mapping of column name to type, e.g. {text: string}")
            return {}
        out: dict[str, str | None] = {}
        for col, typ in value.items():
            if not isinstance(col, str) or not col:
                self.fail(f"{key}.{_key(col)}", "column names must be non-empty strings")
                continue
            if isinstance(typ, dict):  # {type: string, description: "..."}
                self.mapping(typ, f"{key}.{_key(col)}", ("type", "description"), ("type",))
                typ = typ.get("type")
            try:
                typ = check_type(typ)
            except ValueError as exc:
                self.fail(f"{key}.{_key(col)}", str(exc))
                out[col] = None
                continue
            out[col] = str(typ)
        return out

    def column_docs(self, value: Any, key: str) -> dict[str, str]:
        """Column → description, from the `{type: …, description: …}` form of schema entries."""
        docs: dict[str, str] = {}
        for col, typ in (value.items() if isinstance(value, dict) else ()):
            text = typ.get("description") if isinstance(typ, dict) else None
            if text is not None and not (isinstance(text, str) and text.strip() and "\n" not in text):
                self.fail(f"{key}.{_key(col)}.description", "expected one line of text")
            elif text is not None:
                docs[str(col)] = text.strip()
        return docs

    def cleaning(self, value: Any, key: str, schema: dict[str, str]) -> Cleaning:
        allowed = ("dedupe_key", "required", "labels", "layers", "invalid_utf8", "media", "file_size")
        d = self.mapping(value, key, allowed)
        labels = layers = None
        if "labels" in d:
            ld = self.mapping(d["labels"], f"{key}.labels", ("column", "allowed"), ("column", "allowed"))
            col = ld.get("column")
            if "column" in ld and not (isinstance(col, str) and col):
                self.fail(f"{key}.labels.column", f"expected a column name, got {col!r}")
                col = None
            typ = schema.get(col) if col is not None else None
            if schema and col is not None and (col not in schema or (typ and typ != "string")):
                self.fail(f"{key}.labels.column", f"{col!r} must be a string column in the schema")
            vals = ld.get("allowed")
            if "allowed" in ld and not (isinstance(vals, list) and vals and all(isinstance(v, str) for v in vals)):
                self.fail(f"{key}.labels.allowed", "expected a non-empty list of label strings")
            elif col is not None and vals:
                labels = Labels(column=col, allowed=tuple(vals))
        if "layers" in d:
            ly = self.mapping(d["layers"], f"{key}.layers", ("prefix", "canonical"), ("prefix", "canonical"))
            prefix, canonical = ly.get("prefix"), ly.get("canonical")
            if isinstance(prefix, str) and isinstance(canonical, str) and canonical.startswith(prefix) and prefix:
                layers = Layers(prefix=prefix, canonical=canonical)
                if schema and canonical not in schema:
                    self.fail(f"{key}.layers.canonical", f"{canonical!r} must be in the schema")
                for col in schema:
                    if col.startswith(prefix) and col != canonical:
                        self.fail(f"{key.rsplit('.', 1)[0]}.schema.{_key(col)}",
                                  f"only the canonical layer {canonical!r} may be in the schema")
            elif ly:
                self.fail(f"{key}.layers", "prefix and canonical must be strings and canonical must start with prefix")
        policy = d.get("invalid_utf8", "fail")
        if policy not in UTF8_POLICIES:
            self.fail(f"{key}.invalid_utf8", f"expected one of: {', '.join(UTF8_POLICIES)}")
        dedupe_key = self.columns(d.get("dedupe_key", []), f"{key}.dedupe_key", schema)
        for i, col in enumerate(dedupe_key):
            if (schema.get(col) or "").startswith(("list<", "struct<")):
                self.fail(f"{key}.dedupe_key[{i}]", f"column {col!r} is nested; dedupe on scalar or media columns "
                                                    "(an image or audio column dedupes on the file's bytes)")
        file_size = None  # auto
        if d.get("file_size", "auto") != "auto":
            file_size = _size(d["file_size"], minimum=MIN_FILE_SIZE)
            if file_size is None:
                self.fail(f"{key}.file_size", f"expected auto or a size in bytes >= 64 KiB (an integer, or like "
                                              f"256MiB, 1GB), got {d['file_size']!r}")
        return Cleaning(
            dedupe_key=dedupe_key,
            required=self.columns(d.get("required", []), f"{key}.required", schema),
            labels=labels, layers=layers, invalid_utf8=policy, media=self.media(d.get("media", {}), f"{key}.media"),
            file_size=file_size,
        )

    def media(self, value: Any, key: str) -> MediaLimits:
        """`cleaning.media`: optional limits on image sizes and audio rates and durations."""
        ints = ("min_width", "max_width", "min_height", "max_height", "max_pixels", "sample_rate")
        d = self.mapping(value, key, (*ints, "min_duration", "max_duration"))
        for name in ints:
            v = d.get(name)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
                self.fail(f"{key}.{name}", f"expected a positive integer, got {v!r}")
                d.pop(name)
        for name in ("min_duration", "max_duration"):
            v = d.get(name)
            if v is not None and not (isinstance(v, int | float) and not isinstance(v, bool) and v > 0):
                self.fail(f"{key}.{name}", f"expected a positive number of seconds, got {v!r}")
                d.pop(name)
        for low, high in (("min_width", "max_width"), ("min_height", "max_height"), ("min_duration", "max_duration")):
            if d.get(low) and d.get(high) and d[low] > d[high]:
                self.fail(f"{key}.{low}", f"{low} {d[low]} is above {high} {d[high]}")
        return MediaLimits(**{k: v for k, v in d.items() if v is not None})

    def media_schema(self, fmt: str | None, schema: dict[str, str | None], key: str) -> None:
        """An image folder fills exactly one `image` column (an audio folder one `audio`); csv and jsonl
        cannot hold media (parquet can: a binary column or a {bytes, path} struct); a folder's schema has no
        `file_name` (its metadata's key to the files); csv cannot hold struct values."""
        media = [c for c, t in schema.items() if t in ("image", "audio")]
        if fmt in FOLDER_FORMATS:
            wanted = FOLDER_FORMATS[fmt]
            filled = [c for c in media if schema[c] == wanted]
            if len(filled) != 1 or len(media) != 1:
                self.fail(f"{key}.schema", f"format {fmt} fills exactly one column of type {wanted} with its files; "
                                           f"the schema has {len(filled)} ({', '.join(media) or 'none'})")
        elif fmt in ("csv", "jsonl") and media:
            self.fail(f"{key}.schema.{_key(media[0])}", f"format {fmt} cannot hold {schema[media[0]]} data; use "
                      "format imagefolder or audiofolder (files on disk) or parquet (the bytes in a column)")
        if fmt in FOLDER_FORMATS and "file_name" in schema:
            self.fail(f"{key}.schema.file_name", f"format {fmt} reads file_name from metadata.csv/.jsonl to find "
                      "each row's file; it is not a column: remove it (the media column's path holds the name)")
        if fmt == "csv":
            for col, typ in schema.items():
                if typ and typ.startswith("struct<"):
                    self.fail(f"{key}.schema.{_key(col)}", f"format csv cannot hold nested {typ} values; use "
                              "format jsonl or parquet, or flatten the struct into columns")

    def remote(self, value: Any, key: str, name: Any) -> RemoteConfig:
        only = {"private": "hub", "create": "hub", "transfer": "hub", "bucket": "s3", "prefix": "s3"}
        d = self.mapping(value, key, ("kind", "repo", *only))
        kind = d.get("kind", "local")
        if kind not in REMOTE_KINDS:
            self.fail(f"{key}.kind", f"unknown remote kind {kind!r}; use one of: {', '.join(REMOTE_KINDS)}")
        for field_name, owner in only.items():
            if field_name in d and kind != owner:
                self.fail(f"{key}.{field_name}", f"only applies to kind: {owner}")
        repo = d.get("repo", f"dsm/{name}")
        if not (isinstance(repo, str) and REPO_RE.fullmatch(repo)):
            self.fail(f"{key}.repo", f"invalid repo {repo!r}; expected 'namespace/name'")
        for flag in ("private", "create"):
            if not isinstance(d.get(flag, True), bool):
                self.fail(f"{key}.{flag}", "expected true or false")
        bucket = d.get("bucket")
        if kind == "s3" and not (isinstance(bucket, str) and BUCKET_RE.fullmatch(bucket)):
            self.fail(f"{key}.bucket", f"s3 remotes need a valid bucket name, got {bucket!r}")
        prefix = d.get("prefix", "datasets")
        if not (isinstance(prefix, str) and prefix.strip("/") and ".." not in prefix.split("/")):
            self.fail(f"{key}.prefix", f"expected a key prefix like 'datasets', got {prefix!r}")
            prefix = "datasets"
        transfer = d.get("transfer", "xet")
        if transfer not in TRANSFERS:
            self.fail(f"{key}.transfer", f"expected one of {', '.join(TRANSFERS)}, got {transfer!r}")
        return RemoteConfig(kind=kind, repo=repo, private=d.get("private", True), create=d.get("create", True),
                      bucket=bucket, prefix=str(prefix).strip("/"), transfer=str(transfer))

    def shards(self, value: Any, key: str) -> Shards:
        d = self.mapping(value, key, ("count", "estimated_size", "publish", "target_size", "compression", "fields"))
        count = d.get("count", "auto")
        if not (count == "auto" or (isinstance(count, int) and not isinstance(count, bool) and count >= 1)):
            self.fail(f"{key}.count", f"expected an integer >= 1 or auto, got {count!r}")
        target = d.get("target_size")
        if target is not None:
            target = _size(target)
            if target is None:
                self.fail(f"{key}.target_size", f"expected a size in bytes >= 1 MB (an integer, or like 256MB, "
                                                f"1GiB), got {d['target_size']!r}")
            elif count != "auto":
                self.fail(f"{key}.target_size", f"only applies with count: auto (count is {count!r}); drop one")
        est = d.get("estimated_size")
        if est is not None and not (isinstance(est, int) and not isinstance(est, bool) and est >= 0):
            self.fail(f"{key}.estimated_size", f"expected an integer >= 0 or null, got {est!r}")
        if not isinstance(d.get("publish", False), bool):
            self.fail(f"{key}.publish", "expected true or false")
        for name, allowed in (("compression", ("auto", "none", "gzip")), ("fields", ("split", "json"))):
            if d.get(name, allowed[0]) not in allowed:
                self.fail(f"{key}.{name}", f"expected one of {', '.join(allowed)}, got {d[name]!r}")
        return Shards(count=count, estimated_size=est, publish=d.get("publish", False), target_size=target,
                      compression=d.get("compression", "auto"), fields=d.get("fields", "split"))


_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}


MIN_FILE_SIZE = 64 << 10  # `cleaning.file_size` at least


def _size(value: Any, minimum: int = 10**6) -> int | None:
    """A byte size from an integer or a string like "256MB", "1.5 GiB" (None when it is neither, or < `minimum`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*", value.lower())):
        n = int(float(m.group(1)) * _UNITS[m.group(2) or "b"])
    else:
        return None
    return n if n >= minimum else None
