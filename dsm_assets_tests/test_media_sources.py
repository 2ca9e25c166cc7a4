"""Source formats imagefolder and audiofolder (Hugging Face's ImageFolder/AudioFolder layouts), media columns
from parquet, and nested (struct) JSONL columns: real files on disk, read through resolve_files and read_source."""

from __future__ import annotations

import io
import json
import logging
import os
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from PIL import Image

from dsm_assets.errors import PathEscapeError, RegistryError, SourceError
from dsm_assets.fingerprint import fingerprint_files
from dsm_assets.sources import RawBatch, read_source, resolve_files

from .conftest import spec_from


def png(color: tuple[int, int, int] = (255, 0, 0), size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, format="PNG")
    return out.getvalue()


def wav(frames: int = 800, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * frames)
    return out.getvalue()


def flac(frames: int = 800, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.zeros(frames, dtype="int16"), rate, format="FLAC")
    return out.getvalue()


def put(root: Path, rel: str, content: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def folder_entry(schema: dict[str, str], fmt: str = "imagefolder", **extra: Any) -> dict[str, Any]:
    return {"name": "m", "use": "tests", "source": {"path": "raw/m", "format": fmt}, "schema": schema, **extra}


IMAGE_LABEL = {"image": "image", "label": "string"}


def read(spec, data: Path, block_size: int = 1 << 20) -> tuple[list[dict[str, Any]], list[RawBatch]]:
    raws = list(read_source(spec, resolve_files(spec, data), block_size))
    rows = [row for raw in raws for row in raw.batch.to_pylist()]
    return rows, raws


def skipped(raws: list[RawBatch]) -> dict[str, int]:
    total: dict[str, int] = {}
    for raw in raws:
        for reason, n in raw.skipped.items():
            total[reason] = total.get(reason, 0) + n
    return total


def fails(spec, data: Path, *needles: str, error: type[Exception] = SourceError) -> str:
    with pytest.raises(error) as info:
        read(spec, data)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


# ---- image folders ---------------------------------------------------------------------------------------

def test_class_subfolders_label_the_images(tmp_path):
    data = tmp_path / "data"
    root = data / "raw" / "m"
    put(root, "cat/b.png", png((1, 2, 3)))
    put(root, "cat/a.PNG", png((4, 5, 6)))
    put(root, "dog/x.jpg", b"")  # empty: yielded, cleaning drops it
    put(root, "loose.png", b"not really a png")  # a text file named .png: yielded, cleaning probes content
    put(root, "README.txt", "hello")
    put(root, "dog/.DS_Store", b"\0")
    rows, raws = read(spec_from(tmp_path, folder_entry(IMAGE_LABEL)), data)
    assert [(r["image"]["path"], r["label"]) for r in rows] == [
        ("cat/a.PNG", "cat"), ("cat/b.png", "cat"), ("dog/x.jpg", "dog"), ("loose.png", None)]
    assert rows[0]["image"]["bytes"] == png((4, 5, 6))
    assert rows[2]["image"]["bytes"] == b""
    assert skipped(raws) == {"other_file": 2}
    assert [int(r) for raw in raws for r in raw.rows] == [1, 2, 3, 4]
    assert raws[0].batch.schema == spec_from(tmp_path, folder_entry(IMAGE_LABEL)).arrow_schema()


def test_batches_hold_about_block_size_bytes_of_media(tmp_path):
    data = tmp_path / "data"
    for i in range(6):
        put(data / "raw" / "m", f"c/{i}.png", bytes(100))
    put(data / "raw" / "m", "c/big.png", bytes(1000))
    _, raws = read(spec_from(tmp_path, folder_entry(IMAGE_LABEL)), data, block_size=250)
    assert [raw.batch.num_rows for raw in raws] == [2, 2, 2, 1]  # the big file goes alone
    assert [int(r) for raw in raws for r in raw.rows] == list(range(1, 8))


def test_label_column_from_the_cleaning_labels(tmp_path):
    data = tmp_path / "data"
    put(data / "raw" / "m", "train/cat/a.png", png())
    put(data / "raw" / "m", "test/dog/b.png", png())
    entry = folder_entry({"picture": "image", "kind": "string"},
                         cleaning={"labels": {"column": "kind", "allowed": ["cat", "dog"]}})
    rows, _ = read(spec_from(tmp_path, entry), data)
    assert [(r["picture"]["path"], r["kind"]) for r in rows] == [("test/dog/b.png", "dog"), ("train/cat/a.png", "cat")]


def test_split_folders_fill_a_split_column(tmp_path):
    data = tmp_path / "data"
    root = data / "raw" / "m"
    put(root, "train/cat/a.png", png())
    put(root, "validation/dog/b.png", png())
    put(root, "train/c.png", png())
    rows, _ = read(spec_from(tmp_path, folder_entry({**IMAGE_LABEL, "split": "string"})), data)
    assert [(r["image"]["path"], r["label"], r["split"]) for r in rows] == [
        ("train/c.png", None, "train"), ("train/cat/a.png", "cat", "train"),
        ("validation/dog/b.png", "dog", "validation")]


def test_metadata_csv_names_the_files(tmp_path):
    data = tmp_path / "data"
    root = data / "raw" / "m"
    put(root, "imgs/a.png", png((1, 1, 1)))
    put(root, "imgs/b.png", png((2, 2, 2)))
    put(root, "c.png", png())  # named by no row: skipped and counted
    put(root, "metadata.csv", "file_name,caption,score\nimgs/b.png, two ,2\n./imgs/a.png,one,1\n")
    spec = spec_from(tmp_path, folder_entry({"image": "image", "caption": "string", "score": "int64"}))
    rows, raws = read(spec, data)
    assert [(r["image"]["path"], r["caption"], r["score"]) for r in rows] == [("imgs/b.png", "two", 2),
                                                                             ("imgs/a.png", "one", 1)]
    assert rows[1]["image"]["bytes"] == png((1, 1, 1))
    assert skipped(raws) == {"not_in_metadata": 1}
    assert raws[0].file.name == "metadata.csv" and list(raws[0].rows) == [1, 2]
    assert list(raws[0].batch.schema.names) == ["image", "caption", "score"]


def test_metadata_value_of_the_wrong_type_names_file_row_and_column(tmp_path):
    data = tmp_path / "data"
    put(data / "raw" / "m", "a.png", png())
    put(data / "raw" / "m", "b.png", png())
    put(data / "raw" / "m", "metadata.csv", "file_name,score\na.png,1\nb.png,many\n")
    fails(spec_from(tmp_path, folder_entry({"image": "image", "score": "int64"})), data,
          "raw/m/metadata.csv: row 2, column 'score': cannot read 'many' as int64")


def test_metadata_jsonl_with_a_nested_struct_and_split_folders(tmp_path):
    data = tmp_path / "data"
    root = data / "raw" / "m"
    put(root, "train/a.png", png())
    put(root, "train/b.png", png())
    put(root, "test/c.png", png())
    put(root, "train/metadata.jsonl", "\n".join(json.dumps(r) for r in [
        {"file_name": "a.png", "meta": {"w": 8, "tags": ["x", "y"]}, "boxes": [{"x": 1.5}]},
        {"file_name": "b.png", "meta": {"w": 9}, "boxes": []},
    ]) + "\n")
    put(root, "test/metadata.jsonl", json.dumps({"file_name": "c.png", "meta": None, "boxes": None}) + "\n")
    schema = {"image": "image", "meta": "struct<w: int64, tags: list<string>>", "boxes": "list<struct<x: float64>>",
              "split": "string"}
    rows, raws = read(spec_from(tmp_path, folder_entry(schema)), data)
    got = [(r["image"]["path"], r["meta"], r["boxes"], r["split"]) for r in rows]
    assert got == [("test/c.png", None, None, "test"),
                   ("train/a.png", {"w": 8, "tags": ["x", "y"]}, [{"x": 1.5}], "train"),
                   ("train/b.png", {"w": 9, "tags": None}, [], "train")]
    assert skipped(raws) == {}


def meta_jsonl_case(tmp_path: Path, second: dict[str, Any]):
    data = tmp_path / "data"
    put(data / "raw" / "m", "a.png", png())
    put(data / "raw" / "m", "b.png", png())
    put(data / "raw" / "m", "metadata.jsonl", json.dumps({"file_name": "a.png", "meta": {"w": 1}}) + "\n"
        + json.dumps({"file_name": "b.png", **second}) + "\n")
    return spec_from(tmp_path, folder_entry({"image": "image", "meta": "struct<w: int64>"})), data


def test_metadata_jsonl_nested_key_not_in_the_struct_names_line_column_and_key(tmp_path):
    spec, data = meta_jsonl_case(tmp_path, {"meta": {"w": 2, "h": 3}})
    fails(spec, data, "raw/m/metadata.jsonl: line 2, column 'meta' at meta.h: key 'h' is not in struct<w: int64>")


def test_metadata_jsonl_nested_value_of_the_wrong_type_names_line_column_and_key(tmp_path):
    spec, data = meta_jsonl_case(tmp_path, {"meta": {"w": "wide"}})
    fails(spec, data, "raw/m/metadata.jsonl: line 2, column 'meta' at meta.w: cannot read 'wide' as int64")


def test_metadata_csv_cannot_hold_a_struct(tmp_path):
    data = tmp_path / "data"
    put(data / "raw" / "m", "a.png", png())
    put(data / "raw" / "m", "metadata.csv", "file_name,meta\na.png,x\n")
    fails(spec_from(tmp_path, folder_entry({"image": "image", "meta": "struct<w: int64>"})), data,
          "raw/m/metadata.csv: column 'meta' is struct<w: int64>; nested values need metadata.jsonl")


# ---- audio folders ---------------------------------------------------------------------------------------

def test_audiofolder_with_wav_and_flac_through_metadata_csv(tmp_path):
    data = tmp_path / "data"
    root = data / "raw" / "m"
    put(root, "clips/one.wav", wav())
    put(root, "clips/two.FLAC", flac())
    put(root, "clips/cover.png", png())  # not audio: another file
    put(root, "metadata.csv", "file_name,text\nclips/one.wav,hello\nclips/two.FLAC,world\n")
    spec = spec_from(tmp_path, folder_entry({"audio": "audio", "text": "string"}, fmt="audiofolder"))
    rows, raws = read(spec, data)
    assert [(r["audio"]["path"], r["text"]) for r in rows] == [("clips/one.wav", "hello"), ("clips/two.FLAC", "world")]
    assert soundfile.info(io.BytesIO(rows[1]["audio"]["bytes"])).format == "FLAC"
    assert rows[0]["audio"]["bytes"] == wav()
    assert skipped(raws) == {"other_file": 1}


# ---- one line for each bad folder ------------------------------------------------------------------------

def test_metadata_naming_a_missing_file(tmp_path):
    data = tmp_path / "data"
    put(data / "raw" / "m", "a.png", png())
    put(data / "raw" / "m", "metadata.csv", "file_name,label\na.png,x\ngone.png,y\n")
    fails(spec_from(tmp_path, folder_entry(IMAGE_LABEL)), data,
          "raw/m/metadata.csv: row 2: file_name 'gone.png': no such file in ", "add the file or fix the row")


@pytest.mark.parametrize("name", ["../a.png", "/etc/passwd.png", "sub/../../x.png"])
def test_metadata_file_name_leading_out_of_the_folder(tmp_path, name):
    data = tmp_path / "data"
    put(data / "raw" / "m", "a.png", png())
    put(data / "raw" / "m", "metadata.csv", f"file_name,label\na.png,x\n{name},y\n")
    fails(spec_from(tmp_path, folder_entry(IMAGE_LABEL)), data,
          f"raw/m/metadata.csv: row 2: file_name '{name}' leads out of ")


def test_duplicate_file_name_in_metadata_names_both_rows(tmp_path):
    data = tmp_path / "data"
    put(data / "raw" / "m", "a.png", png())
    put(data / "raw" / "m", "metadata.csv", "file_name,label\na.png,x\nb.png,y\n./a.png,z\n")
    put(data / "raw" / "m", "b.png", png())
    fails(spec_from(tmp_path, folder_entry(IMAGE_LABEL)), data,
          "raw/m/metadata.csv: row 3: file_name './a.png' names a.png, already named by row 1")


def test_metadata_without_a_file_name_column(tmp_path):
    data = tmp_path / "data"
    put(data / "raw" / "m", "a.png", png())
    put(data / "raw" / "m", "metadata.csv", "name,label\na.png,x\n")
    fails(spec_from(tmp_path, folder_entry(IMAGE_LABEL)), data, "raw/m/metadata.csv: no file_name column")


def test_a_folder_without_media_files(tmp_path):
    data = tmp_path / "data"
    put(data / "raw" / "m", "notes.txt", "no images here")
    fails(spec_from(tmp_path, folder_entry(IMAGE_LABEL)), data, "raw/m: no image files (.png, ")


def test_an_empty_folder_and_no_folder(tmp_path):
    data = tmp_path / "data"
    spec = spec_from(tmp_path, folder_entry(IMAGE_LABEL))
    fails(spec, data, "datasets[0].source.path: 'raw/m' matched no folders")
    (data / "raw" / "m").mkdir(parents=True)
    fails(spec, data, "datasets[0].source.path: 'raw/m' matched only empty folders")


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    data = tmp_path / "data"
    root = data / "raw" / "m"
    put(root, "a.png", png())
    outside = put(data / "raw" / "elsewhere", "secret.png", png())
    (root / "cat").mkdir()
    (root / "cat" / "link.png").symlink_to(outside)
    fails(spec_from(tmp_path, folder_entry(IMAGE_LABEL)), data,
          "raw/m/cat/link.png: a symlink to ", "raw/elsewhere/secret.png, outside the source folder ", "raw/m; ")


def test_symlink_inside_the_folder_is_read_under_its_own_name(tmp_path):
    data = tmp_path / "data"
    root = data / "raw" / "m"
    put(root, "cat/a.png", png((9, 9, 9)))
    (root / "dog").mkdir()
    (root / "dog" / "a.png").symlink_to(root / "cat" / "a.png")
    rows, _ = read(spec_from(tmp_path, folder_entry(IMAGE_LABEL)), data)
    assert [(r["image"]["path"], r["label"], r["image"]["bytes"]) for r in rows] == [
        ("cat/a.png", "cat", png((9, 9, 9))), ("dog/a.png", "dog", png((9, 9, 9)))]


def test_non_utf8_file_name_is_skipped_counted_and_fingerprinted(tmp_path, caplog):
    data = tmp_path / "data"
    root = data / "raw" / "m"
    put(root, "cat/a.png", png())
    fd = os.open(os.fsencode(root / "cat") + b"/caf\xe9.png", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, png())
    os.close(fd)
    spec = spec_from(tmp_path, folder_entry(IMAGE_LABEL))
    files = resolve_files(spec, data)
    assert len(files) == 2
    for path in files:  # old enough for the stat cache to keep them: its JSON holds the name too
        os.utime(path, (1e9, 1e9))
    first = fingerprint_files(files, data, data / "statcache.json")
    assert first.files == 2
    again = fingerprint_files(files, data, data / "statcache.json")
    assert (again.digest, again.rehashed) == (first.digest, 0)
    with caplog.at_level(logging.WARNING):
        rows, raws = read(spec, data)
    assert [r["image"]["path"] for r in rows] == ["cat/a.png"]
    assert skipped(raws) == {"non_utf8_file_name": 1}
    assert "b'cat/caf\\xe9.png'" in caplog.text


def test_fingerprint_changes_when_one_image_changes(tmp_path):
    data = tmp_path / "data"
    root = data / "raw" / "m"
    put(root, "cat/a.png", png((1, 1, 1)))
    put(root, "dog/b.png", png((2, 2, 2)))
    put(root, "metadata.csv", "file_name,label\ncat/a.png,x\ndog/b.png,y\n")
    spec = spec_from(tmp_path, folder_entry(IMAGE_LABEL))
    files = resolve_files(spec, data)
    assert sorted(f.relative_to(data).as_posix() for f in files) == [
        "raw/m/cat/a.png", "raw/m/dog/b.png", "raw/m/metadata.csv"]
    before = fingerprint_files(files, data).digest
    put(root, "dog/b.png", png((3, 3, 3)))
    assert fingerprint_files(resolve_files(spec, data), data).digest != before
    put(root, "extra.txt", "x")  # every file counts, skipped ones too
    assert len(resolve_files(spec, data)) == 4


def test_a_folder_schema_may_not_name_file_name(tmp_path):
    with pytest.raises(RegistryError, match=r"datasets\[0\]\.schema\.file_name: format imagefolder reads file_name"):
        spec_from(tmp_path, folder_entry({**IMAGE_LABEL, "file_name": "string"}))


def test_source_path_leading_out_of_the_data_dir(tmp_path):
    entry = folder_entry(IMAGE_LABEL)
    entry["source"]["path"] = "raw/../../m"
    with pytest.raises((PathEscapeError, RegistryError)):
        read(spec_from(tmp_path, entry), tmp_path / "data")


# ---- parquet with media columns --------------------------------------------------------------------------

def test_parquet_binary_column_becomes_a_media_struct(tmp_path):
    data = tmp_path / "data"
    (data / "raw" / "p").mkdir(parents=True)
    pq.write_table(pa.table({"image": pa.array([png(), None], pa.binary()), "label": ["a", "b"]}),
                   data / "raw" / "p" / "a.parquet")
    struct = pa.array([{"bytes": png((5, 5, 5)), "path": "x.png"}],
                      pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"image": struct, "label": ["c"]}), data / "raw" / "p" / "b.parquet")
    entry = {"name": "p", "use": "tests", "source": {"path": "raw/p/*.parquet", "format": "parquet"},
             "schema": IMAGE_LABEL}
    rows, _ = read(spec_from(tmp_path, entry), data)
    assert rows == [{"image": {"bytes": png(), "path": None}, "label": "a"}, {"image": None, "label": "b"},
                    {"image": {"bytes": png((5, 5, 5)), "path": "x.png"}, "label": "c"}]


def test_parquet_string_column_for_an_image_names_row_and_column(tmp_path):
    data = tmp_path / "data"
    (data / "raw" / "p").mkdir(parents=True)
    pq.write_table(pa.table({"image": ["a.png"], "label": ["a"]}), data / "raw" / "p" / "a.parquet")
    entry = {"name": "p", "use": "tests", "source": {"path": "raw/p/*.parquet", "format": "parquet"},
             "schema": IMAGE_LABEL}
    fails(spec_from(tmp_path, entry), data,
          "raw/p/a.parquet: row 1, column 'image': cannot read 'a.png' as struct<bytes: binary, path: string>")
