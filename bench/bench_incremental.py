"""Incremental versions: the bytes a new version re-uploads, on the local remote and S3, next to DVC.

    .venv/bin/python -m bench.bench_incremental [--quick] [--mb 150]

bench_cleaning's generator writes a review-like CSV (--mb MB, default 150; --quick 40), registered as
`bench_reviews` under the shipped `text_reviews` rules with `cleaning.file_size` set to 1/64 of the expected
cleaned size (when the registry accepts that key; the value used is printed). Two changes of it:

    append   v1 + 1 % new rows at the end (the generator's next rows)
    edit     v1 with 1 % of its rows changed in one contiguous region in the middle: "edited " put before the
             text of each row there (rows whose text is empty, or whose position in a generator block is one
             that later blocks repeat as far duplicates, are left alone, so the change stays in that region:
             an edited original would let its far duplicate, 262,144 rows later, be kept instead)

Each version is cleaned (`clean_dataset`), then for each remote (local; S3 on a moto server on 127.0.0.1),
on a fresh remote: publish v1 (`publish_cleaned`), then publish the changed version; the line reports the
bytes the second publish uploaded (the card and dsm.json included) over the new version's dataset bytes
(its cleaned parquet files). Goals: append <= 5 %, edit <= 10 %.

Baseline, DVC on the same cleaned files: `dvc init --no-scm` in a temp dir with a local DVC remote, the
v1 files copied into a folder `cleaned/`, `dvc add cleaned` + `dvc push`; then the folder's contents
replaced by the changed version's files (same folder name), `dvc add cleaned` + `dvc push`; the bytes that
landed in the DVC remote (the sum of its file sizes before and after the second push; DVC's `.dir` listing
included). DVC runs from its own venv, outputs/bench/dvc-venv (created with `pip install dvc` when missing,
never in the project's venv, to keep its dependencies apart); if that fails the baseline says "dvc not
installed" and the bench goes on.

A last line publishes the same data in the old one-file layout (`file_size` far above the data size) on the
local remote, append only, for contrast: the whole file is re-sent (its baseline: the same append in files).
Before cleaning writes several files (a registry without `file_size`), every line is that one-file layout,
~100 %."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import yaml

from bench.bench_cleaning import BLOCK_ROWS, write_csv
from bench.common import Line, markdown_table, progress
from dsm_assets.errors import RegistryError

NAME = "bench_reviews"
ROW_BYTES = 275  # the generator's average row
CLEANED_PER_CSV_BYTE = 0.55  # zstd parquet of the generated rows, after cleaning: 40 MB CSV → 22.6 MB, 1 GB → 533 MB
FILES_WANTED = 64  # file_size = 1/64 of the expected cleaned size
CHANGE = 0.01  # 1 % of the rows
GOALS = {"append": 0.05, "edit": 0.10}
ROOT = Path(__file__).resolve().parent.parent
DVC_TIMEOUT = 900


def cleaned_files(result) -> tuple[Path, ...]:
    """The cleaned parquet files of a CleanResult, in order."""
    return tuple(result.files)


def dataset_bytes(result) -> int:
    return sum(f.stat().st_size for f in cleaned_files(result))


# ------------------------------------------------------------------ the versions


def write_versions(root: Path, rows: int) -> dict[str, Path]:
    """v1, append and edit as CSV files under `root`: (name → path)."""
    extra = max(1, int(rows * CHANGE))
    full = root / "append.csv"
    write_csv(full, rows=rows + extra)
    v1, edit = root / "v1.csv", root / "edit.csv"
    start = rows // 2 - extra // 2
    edited = 0
    with open(full, "rb") as src, open(v1, "wb") as out_v1, open(edit, "wb") as out_edit:
        out_v1.write(header := src.readline())
        out_edit.write(header)
        for i, line in enumerate(src):
            if i >= rows:
                break
            out_v1.write(line)
            if start <= i < start + extra and (new := _edited(line)) is not None:
                line, edited = new, edited + 1
            out_edit.write(line)
    progress(f"incremental: v1 {rows} rows; append +{extra} rows; edit {edited} rows changed in rows "
             f"{start}-{start + extra - 1}")
    return {"v1": v1, "append": full, "edit": edit}


def _edited(line: bytes) -> bytes | None:
    """The row with "edited " before its text; None for a row left alone (see the module docstring)."""
    row_id, _, rest = line.partition(b",")
    if int(row_id) % BLOCK_ROWS % 20 == 7 or rest.startswith(b'""'):
        return None
    return row_id + b',"edited ' + rest[1:]


def registry_for(folder: Path, csv_bytes: int, file_size: int | None) -> tuple[Path, object]:
    """A registry with bench_reviews (the shipped text_reviews rules) and, when the registry accepts the key,
    `cleaning.file_size`: the value given, else the nearest value it accepts. (registry, file_size used)."""
    from dsm_assets.registry import DEFAULT_REGISTRY, load_registry

    entry = yaml.safe_load(DEFAULT_REGISTRY.read_text())["datasets"][0]
    entry.update(name=NAME, source={"path": f"raw/{NAME}/*.csv", "format": "csv"}, cache_dir=f"cache/{NAME}",
                 remote={"kind": "local", "repo": f"bench/{NAME}"})
    folder.mkdir(parents=True, exist_ok=True)
    registry = folder / "registry.yaml"
    wanted = file_size or int(csv_bytes * CLEANED_PER_CSV_BYTE / FILES_WANTED)
    for value in (wanted, max(wanted, 10**6), max(wanted, 2**20), f"{max(1, round(wanted / 1e6))}MB"):
        entry["cleaning"] = {**entry.get("cleaning", {}), "file_size": value}
        registry.write_text(yaml.safe_dump({"version": 1, "datasets": [entry]}, sort_keys=False))
        try:
            load_registry(registry)
            return registry, value
        except RegistryError as exc:
            reason = str(exc)
    progress(f"incremental: the registry does not take cleaning.file_size ({reason.splitlines()[0]}); "
             "cleaning writes one file")
    entry["cleaning"].pop("file_size")
    registry.write_text(yaml.safe_dump({"version": 1, "datasets": [entry]}, sort_keys=False))
    return registry, None


def clean_all(root: Path, csvs: dict[str, Path], registry: Path, label: str) -> dict[str, object]:
    """Each version cleaned in its own data dir: name → CleanResult."""
    from dsm_assets.cleaning import clean_dataset
    from dsm_assets.registry import load_registry

    spec = load_registry(registry).get(NAME)
    out = {}
    for name, csv in csvs.items():
        data = root / f"data-{label}-{name}"
        (data / "raw" / NAME).mkdir(parents=True)
        os.link(csv, data / "raw" / NAME / "reviews.csv")
        out[name] = clean_dataset(spec, data)
        files = cleaned_files(out[name])
        progress(f"incremental: cleaned {label} {name}: {out[name].rows_out} rows, {len(files)} file(s), "
                 f"{dataset_bytes(out[name]) / 1e6:.1f} MB")
    return out


# ------------------------------------------------------------------ ours


def publish_change(spec, remote, v1, changed, data_dir: Path) -> tuple[int, int]:
    """v1 then the changed version on a fresh remote: (bytes the second publish uploaded, bytes it reused)."""
    from dsm_assets.layout import data_parquet
    from dsm_assets.publishing import publish_cleaned

    first = publish_cleaned(spec, remote, v1, data_dir=data_dir)
    second = publish_cleaned(spec, remote, changed, data_dir=data_dir)
    assert first.new and second.new and second.tag != first.tag, (first, second)
    held = remote.list_files(second.commit)
    assert sum(held[p] for p in data_parquet(held)) == dataset_bytes(changed), "the new version's files differ"
    return second.bytes_uploaded, second.bytes_reused


# ------------------------------------------------------------------ DVC


def dvc_venv() -> Path:
    outputs = Path(os.environ.get("DSM_OUTPUTS_DIR") or ROOT / "outputs")
    return (outputs if outputs.is_absolute() else ROOT / outputs) / "bench" / "dvc-venv"


def ensure_dvc() -> Path | None:
    """The `dvc` executable of outputs/bench/dvc-venv, installed there first when missing; None if that fails."""
    venv = dvc_venv()
    dvc = venv / "bin" / "dvc"
    if dvc.exists():
        return dvc
    progress(f"incremental: installing DVC into {venv} (once)")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True,
                       timeout=300)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "dvc"], check=True,
                       capture_output=True, timeout=DVC_TIMEOUT)
        subprocess.run([str(dvc), "version"], check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        progress(f"incremental: DVC install failed ({type(exc).__name__}: "
                 f"{detail.decode(errors='replace').strip().splitlines()[-1:] or exc}); DVC lines skipped")
        shutil.rmtree(venv, ignore_errors=True)
        return None
    return dvc


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def dvc_change(dvc: Path, root: Path, v1, changed) -> tuple[int, int]:
    """(bytes landed in the DVC remote by the first push, by the second): see the module docstring."""
    project, store = root / "project", root / "store"
    project.mkdir(parents=True)
    store.mkdir()

    def run(*args: str) -> None:
        done = subprocess.run([str(dvc), *args], cwd=project, capture_output=True, text=True, timeout=DVC_TIMEOUT,
                              env={**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(root / "site")})
        if done.returncode != 0:
            raise RuntimeError(f"dvc {' '.join(args)} failed: {done.stderr.strip()[-300:]}")

    run("init", "--no-scm", "-q")
    run("config", "core.analytics", "false")
    run("remote", "add", "-d", "store", str(store))
    landed = []
    for version in (v1, changed):
        folder = project / "cleaned"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for f in cleaned_files(version):
            shutil.copyfile(f, folder / f.name)
        before = tree_bytes(store)
        run("add", "-q", "cleaned")
        run("push", "-q")
        landed.append(tree_bytes(store) - before)
    return landed[0], landed[1]


# ------------------------------------------------------------------ the bench


def measure(quick: bool = False, mb: int | None = None, file_size: int | None = None) -> list[Line]:
    import boto3
    from moto.server import ThreadedMotoServer

    from dsm_assets.registry import load_registry
    from dsm_assets.remotes.local import LocalRemote
    from dsm_assets.remotes.s3 import S3Remote

    mb = mb or (40 if quick else 150)
    rows = int(mb * 1e6 / ROW_BYTES)
    lines: list[Line] = []
    with ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="dsm-bench-incremental-"))
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        progress(f"incremental: generating a {mb} MB CSV ({rows} rows) and its two changes")
        csvs = write_versions(tmp / "csv", rows)
        csv_bytes = csvs["v1"].stat().st_size
        registry, used = registry_for(tmp / "registry", csv_bytes, file_size)
        progress(f"incremental: cleaning.file_size = {used!r}" if used is not None else
                 "incremental: cleaning.file_size not set (not accepted by this registry): one-file layout")
        spec = load_registry(registry).get(NAME)
        cleaned = clean_all(tmp, csvs, registry, "files")

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        cleanup.callback(moto.stop)
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="bench")
        s3.put_bucket_versioning(Bucket="bench", VersioningConfiguration={"Status": "Enabled"})

        dvc = ensure_dvc()
        baselines = {}
        for change in GOALS:
            if dvc is None:
                baselines[change] = "dvc not installed"
                continue
            try:
                first, landed = dvc_change(dvc, tmp / f"dvc-{change}", cleaned["v1"], cleaned[change])
            except (RuntimeError, subprocess.SubprocessError) as exc:
                progress(f"incremental: DVC {change}: {exc}")
                baselines[change] = f"DVC failed ({type(exc).__name__})"
                continue
            share = landed / dataset_bytes(cleaned[change])
            progress(f"incremental: DVC {change}: first push {first} B, second push {landed} B ({share:.1%})")
            baselines[change] = f"DVC push {landed / 1e6:.2f} MB ({share:.1%})"

        layout = (f"{len(cleaned_files(cleaned['v1']))} files" if used is not None else "one file")
        remotes = {"local": lambda c: LocalRemote(tmp / f"remote-{c}"),
                   "s3": lambda c: S3Remote("bench", f"datasets/{c}", endpoint_url=endpoint)}
        for kind, make in remotes.items():
            for change, goal in GOALS.items():
                up, reused = publish_change(spec, make(change), cleaned["v1"], cleaned[change],
                                            tmp / f"pub-{kind}-{change}")
                total = dataset_bytes(cleaned[change])
                progress(f"incremental: {kind} {change}: {up} B up, {reused} B reused, of {total} B")
                if (kind, change) == ("local", "append"):
                    appended = (up, total)
                lines.append(Line(
                    f"new version, {change} 1 % of rows, {kind} remote ({mb} MB CSV, {total / 1e6:.0f} MB "
                    f"parquet in {layout})", baselines[change],
                    f"{up / 1e6:.2f} MB re-uploaded, {reused / 1e6:.2f} MB reused", f"{up / total:.1%}",
                    f"≤ {goal:.0%}", up <= goal * total))

        if used is not None:  # the old one-file layout, for contrast: the whole file goes again
            one_registry, one_size = registry_for(tmp / "registry-one", csv_bytes, 10**12)
            one = clean_all(tmp, {k: csvs[k] for k in ("v1", "append")}, one_registry, "one")
            one_spec = load_registry(one_registry).get(NAME)
            up, _ = publish_change(one_spec, LocalRemote(tmp / "remote-one"), one["v1"], one["append"],
                                   tmp / "pub-one")
            total = dataset_bytes(one["append"])
            size = "the default file_size" if one_size is None else f"file_size {one_size:,} B"
            lines.append(Line(f"new version, append 1 % of rows, local remote, one-file layout ({size}; "
                              f"{mb} MB CSV, {len(cleaned_files(one['append']))} file)",
                              f"{layout}: {appended[0] / 1e6:.2f} MB ({appended[0] / appended[1]:.1%})",
                              f"{up / 1e6:.2f} MB re-uploaded",
                              f"{up / total:.1%}", "report (before: the whole file)", True))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--mb", type=int, help="CSV size in MB (default 150, --quick 40)")
    parser.add_argument("--file-size", type=int, help="cleaning.file_size in bytes (default 1/64 of the cleaned size)")
    args = parser.parse_args()
    print(markdown_table(measure(args.quick, args.mb, args.file_size)))


if __name__ == "__main__":
    main()
