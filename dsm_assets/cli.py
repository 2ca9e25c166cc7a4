"""`dsm`: the command line for job scripts and humans. Uses the core only (no dagster import), so it
starts fast and works on a node without network.

Exit codes: 0 ok, 1 a data or disk problem (missing or bad source, disk full, read-only), 2 usage or
registry errors (including a configured path that leads outside the data dir)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from dsm_assets import paths
from dsm_assets.errors import DsmError, PathEscapeError, RegistryError, disk_error
from dsm_assets.layout import cache_root
from dsm_assets.lineage import LineageError, chain, read_lineage
from dsm_assets.preflight import preflight
from dsm_assets.registry import Registry, display_path, load_registry
from dsm_assets.samples import install_samples
from dsm_assets.state import read_latest


def registry_rows(registry: Registry) -> list[dict[str, str | None]]:
    data = paths.data_dir()
    return [
        {
            "dataset": spec.name,
            "repo": spec.remote.display(spec.name) if spec.remote.kind == "s3" else spec.remote.repo,
            "remote": spec.remote.kind,
            "latest": (read_latest(data, spec.name) or {}).get("tag"),
            "cache_dir": display_path(data / spec.cache_dir),
            "use": spec.use,
            "source": spec.source.path,
            "format": spec.source.format,
        }
        for spec in registry.datasets
    ]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def cmd_registry(args: argparse.Namespace) -> int:
    rows = registry_rows(load_registry())
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        table = [[r["dataset"], f"{r['repo']} ({r['remote']})", r["latest"] or "-", r["cache_dir"], r["use"]]
                 for r in rows]
        print(format_table(["Dataset", "Repo", "Latest", "Cache Dir", "Use"], table))
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    """0: every named dataset's cache is ready; 1: any is missing, stale or corrupt; 2: usage/registry error."""
    registry = load_registry()
    specs = [registry.get(name) for name in dict.fromkeys(args.names)] if args.names else list(registry.datasets)
    data = paths.data_dir()
    results = [preflight(spec, data, deep=args.deep) for spec in specs]
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    else:
        rows = [[r.dataset, r.version or "-", r.cache, r.status.upper() if not r.ready else r.status] for r in results]
        print(format_table(["Dataset", "Version", "Cache", "Status"], rows))
        for r in results:
            if not r.ready:
                print(f"{r.dataset}: {r.status}: {r.reason}", file=sys.stderr)
    return 0 if all(r.ready for r in results) else 1


def cmd_lineage(args: argparse.Namespace) -> int:
    """Which data trained MODEL (its latest version, or --version)."""
    registry = load_registry()
    model = registry.model(args.model)
    lineage = read_lineage(paths.outputs_dir(), model.name, args.version)
    rows = chain(lineage, cache_root(registry.get(model.dataset), paths.data_dir()))
    if args.json:
        print(json.dumps({"lineage": lineage, "chain": rows}, indent=2))
    else:
        print(format_table(["Step", "What", "Detail"], [[r["step"], r["what"], r["detail"]] for r in rows]))
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    data = paths.data_dir()
    written = install_samples(data, overwrite=args.force)
    print(f"{len(written)} sample file(s) written under {data / 'raw'}" + ("" if written else " (all present)"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsm", description="Dataset management for ML teams.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("registry", help="list the registered datasets (DSM_REGISTRY or the shipped registry)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_registry)
    p = sub.add_parser("preflight", help="check that offline caches are complete, current and loadable (for job "
                       "scripts): exit 0 ready, 1 missing/stale/corrupt, 2 usage or registry error (a cache_dir "
                       "leading outside the data dir included)")
    p.add_argument("names", nargs="*", metavar="NAME", help="datasets to check (default: all registered)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--deep", action="store_true", help="also re-hash every file (sha256) against the manifest")
    p.set_defaults(func=cmd_preflight)
    p = sub.add_parser("lineage", help="which data trained a model: model → shards → cache → published → cleaned "
                       "→ raw")
    p.add_argument("model", metavar="MODEL", help="a model name from the registry's models section")
    p.add_argument("--version", help="a model version (default: the latest); see outputs/models/<MODEL>/")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_lineage)
    p = sub.add_parser("samples", help="copy the shipped sample raw data into the data dir")
    p.add_argument("--force", action="store_true", help="overwrite files that are already there")
    p.set_defaults(func=cmd_samples)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (RegistryError, LineageError, PathEscapeError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except DsmError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:  # a disk problem no command expected: still one line naming the path
        translated = disk_error(exc, paths.data_dir(), f"dsm {args.command}")
        if translated is None:
            raise
        print(str(translated), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
