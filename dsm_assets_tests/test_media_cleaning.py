"""Image and audio columns through cleaning (probe, drop and count, dedupe on bytes, previews, contact sheet,
datasets features), publishing (the card's features) and loading (PIL images, decoded audio)."""

from __future__ import annotations

import io
import json
import logging
import resource
import struct
import time
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from PIL import Image

import dsm_assets
from dsm_assets.arrow_types import media_struct
from dsm_assets.cleaning import clean_dataset
from dsm_assets.contenthash import hash_table
from dsm_assets.features import hf_features, schema_metadata, yaml_features
from dsm_assets.layout import contact_sheet
from dsm_assets.quality import check_cleaned

from .caching import cache_latest, publish_and_verify
from .conftest import spec_from


def png(size: tuple[int, int] = (24, 24), colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def jpeg(size: tuple[int, int] = (32, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "blue").save(out, format="JPEG")
    return out.getvalue()


def png_bomb(side: int = 30000) -> bytes:
    """A few hundred bytes declaring a side×side greyscale PNG: IHDR, one tiny IDAT, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def wav(seconds: float = 0.5, rate: int = 16000, fmt: str = "WAV", channels: int = 1) -> bytes:
    out = io.BytesIO()
    frames = int(seconds * rate)
    tone = np.sin(np.arange(frames) / rate * 2 * np.pi * 440).astype(np.float32) * 0.5
    soundfile.write(out, np.stack([tone] * channels, axis=1) if channels > 1 else tone, rate, format=fmt,
                    subtype="PCM_16")
    return out.getvalue()


def media_entry(column: str = "image", typ: str = "image", **cleaning) -> dict:
    return {
        "name": "m", "use": "tests",
        "source": {"path": "raw/m/*.parquet", "format": "parquet"},
        "schema": {"id": "int64", "label": "string", column: typ},
        "cleaning": {"dedupe_key": [column], "required": [column],
                     "labels": {"column": "label", "allowed": ["a", "b"]}, **cleaning},
    }


def write_media(data_dir, rows: list[tuple[int, str, bytes | None, str]], column: str = "image") -> None:
    folder = data_dir / "raw" / "m"
    folder.mkdir(parents=True, exist_ok=True)
    values = [None if payload is None else {"bytes": payload, "path": path} for _, _, payload, path in rows]
    pq.write_table(pa.table({"id": pa.array([r[0] for r in rows], pa.int64()), "label": [r[1] for r in rows],
                             column: pa.array(values, media_struct())}), folder / "part.parquet")


GOOD_PNG, OTHER_PNG, GOOD_JPEG = png(), png((40, 30), "green"), jpeg()
IMAGE_ROWS = [
    (1, "a", GOOD_PNG, "a/0001.png"),
    (2, "b", GOOD_JPEG, "b/0002.jpg"),
    (3, "a", GOOD_PNG, "copies/same.png"),  # the same file under another path
    (4, "a", GOOD_PNG[:60], "a/truncated.png"),
    (5, "b", b"just some text, not an image\n", "b/notes.txt"),
    (6, "a", b"", "a/empty.png"),
    (7, "b", png_bomb(), "b/bomb.png"),
    (8, "a", None, "-"),  # a null value: the required rule
    (9, "c", OTHER_PNG, "c/0009.png"),  # a label outside the allowed set: dropped before it is probed
    (10, "b", OTHER_PNG, "b/0010.png"),
]


def test_bad_images_are_dropped_and_counted_by_reason_and_named_in_the_log(tmp_path, caplog):
    data = tmp_path / "data"
    write_media(data, IMAGE_ROWS)
    spec = spec_from(tmp_path, media_entry())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="dsm_assets.cleaning"):
        result = clean_dataset(spec, data)
    assert time.monotonic() - started < 10  # the bomb is refused from its header, never decoded
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: 30000² would be 900 MB
    assert result.dropped == {"corrupt_image": 1, "not_image": 1, "empty_image": 1, "image_too_large": 1,
                              "duplicate": 1, "null:image": 1, "label_not_allowed": 1}
    assert (result.rows_in, result.rows_out) == (10, 3)
    table = pq.read_table(result.path)
    assert table["id"].to_pylist() == [1, 2, 10]
    assert table["image"].to_pylist()[0] == {"bytes": GOOD_PNG, "path": "a/0001.png"}
    assert result.version == hash_table(table)
    logged = caplog.text
    for path, reason in [("a/truncated.png", "corrupt_image"), ("b/notes.txt", "not_image"),
                         ("a/empty.png", "empty_image"), ("b/bomb.png", "image_too_large")]:
        assert f"'{path}' as {reason}" in logged
    assert "900000000 pixels" in logged
    assert all(o.passed for o in check_cleaned(spec, result.path)), check_cleaned(spec, result.path)


def test_size_limits_and_a_composite_key_with_media(tmp_path):
    data = tmp_path / "data"
    write_media(data, [(1, "a", png((10, 10)), "small.png"), (2, "a", png((24, 24)), "ok.png"),
                       (3, "b", png((24, 24)), "ok-b.png"), (4, "a", png((24, 24)), "ok-again.png"),
                       (5, "a", png((90, 24)), "wide.png")])
    entry = media_entry(media={"min_width": 16, "max_width": 64})
    entry["cleaning"]["dedupe_key"] = ["label", "image"]
    result = clean_dataset(spec_from(tmp_path, entry), data)
    assert result.dropped == {"image_too_small": 1, "image_too_large": 1, "duplicate": 1}
    assert pq.read_table(result.path)["id"].to_pylist() == [2, 3]


def test_preview_media_stats_schema_names_and_contact_sheet(tmp_path):
    data = tmp_path / "data"
    write_media(data, IMAGE_ROWS)
    spec = spec_from(tmp_path, media_entry())
    result = clean_dataset(spec, data)
    assert result.schema == {"id": "int64", "label": "string", "image": "image"}
    assert result.preview[0]["image"] == f"PNG 24×24, {len(GOOD_PNG)} B, a/0001.png"
    assert result.preview[1]["image"].startswith("JPG 32×20, ") and result.preview[1]["image"].endswith("b/0002.jpg")
    assert "\\x" not in json.dumps(result.preview)  # never bytes
    assert result.media == {"image": {"kinds": {"jpg": 1, "png": 2}, "width": [24, 40], "height": [20, 30]}}
    sheet = contact_sheet(data, "m", result.version)
    assert result.contact_sheet == sheet and sheet.read_bytes().startswith(b"\x89PNG")
    with Image.open(sheet) as image:
        assert image.width == 8 * 48 and image.height >= 48
    sheet.unlink()  # derived from the parquet: a reuse writes it again
    again = clean_dataset(spec, data)
    assert again.reused and again.media == result.media and again.contact_sheet == sheet and sheet.exists()


def test_the_cleaned_parquet_carries_the_datasets_features(tmp_path):
    import datasets

    data = tmp_path / "data"
    write_media(data, IMAGE_ROWS)
    result = clean_dataset(spec_from(tmp_path, media_entry()), data)
    schema = pq.read_schema(result.files[0])
    assert schema.metadata[b"huggingface"] == schema_metadata(result.schema)["huggingface"].encode()
    expected = datasets.Features.from_dict(hf_features(result.schema))
    assert schema.metadata == expected.arrow_schema.metadata  # byte for byte what datasets writes
    features = datasets.Features.from_arrow_schema(schema)
    assert isinstance(features["image"], datasets.Image) and features["id"] == datasets.Value("int64")
    ds = datasets.Dataset.from_parquet([str(f) for f in result.files], cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds[0]["image"], Image.Image) and ds[0]["image"].size == (24, 24)


def test_yaml_features_are_what_datasets_writes():
    import datasets

    schema = {"id": "int64", "image": "image", "clip": "audio", "when": "timestamp", "day": "date32",
              "meta": "struct<w: int64, tags: list<string>>", "boxes": "list<struct<x: float32, y: float32>>",
              "grid": "list<list<int32>>", "raw": "binary", "ok": "bool"}
    features = datasets.Features.from_dict(hf_features(schema))
    assert yaml_features(schema) == features._to_yaml_list()
    assert datasets.Features._from_yaml_list(yaml_features(schema)) == features


NESTED = {"id": "int64", "label": "string", "meta": "struct<w: int64, tags: list<string>>",
          "boxes": "list<struct<x: float32, y: float32>>"}


def test_nested_struct_columns_round_trip_through_cleaning(tmp_path):
    data = tmp_path / "data"
    folder = data / "raw" / "m"
    folder.mkdir(parents=True)
    rows = [{"id": 1, "label": "a", "meta": {"w": 3, "tags": ["x", "y"]}, "boxes": [{"x": 1.5, "y": 2.0}]},
            {"id": 2, "label": "b", "meta": None, "boxes": []},
            {"id": 3, "label": "b", "meta": {"w": None, "tags": None}, "boxes": None},
            {"id": 3, "label": "a", "meta": {"w": 1, "tags": []}, "boxes": [None, {"x": 0.0, "y": -1.0}]}]
    from dsm_assets.arrow_types import parse_type

    schema = pa.schema([(c, parse_type(t)) for c, t in NESTED.items()])
    pq.write_table(pa.Table.from_pylist(rows, schema), folder / "part.parquet")
    entry = {"name": "m", "use": "tests", "source": {"path": "raw/m/*.parquet", "format": "parquet"},
             "schema": NESTED, "cleaning": {"dedupe_key": ["id"], "required": ["label"]}}
    spec = spec_from(tmp_path, entry)
    result = clean_dataset(spec, data)
    assert pq.read_table(result.path).to_pylist() == rows[:3]
    assert result.schema == NESTED and result.dropped == {"duplicate": 1}
    assert result.preview[0]["meta"] == {"w": 3, "tags": ["x", "y"]}
    assert all(o.passed for o in check_cleaned(spec, result.path))
    assert result.contact_sheet is None and result.media == {}


AUDIO_GOOD = wav(0.5, 16000)


def broken_header(payload: bytes) -> bytes:
    """A WAV whose fmt chunk says 0 channels: no decoder can read it."""
    return payload[:22] + b"\x00\x00" + payload[24:]


AUDIO_ROWS = [
    (1, "a", AUDIO_GOOD, "a/tone.wav"),
    (2, "b", wav(0.5, 16000, "FLAC"), "b/tone.flac"),
    (3, "a", broken_header(wav(0.3, 16000)), "a/broken.wav"),
    (4, "a", AUDIO_GOOD[: len(AUDIO_GOOD) // 2], "a/truncated.wav"),
    (5, "b", wav(0.5, 8000), "b/slow.wav"),
    (6, "b", wav(3.0, 16000), "b/long.wav"),
    (7, "a", png(), "a/picture.wav"),
]


def test_bad_audio_is_dropped_and_counted_by_reason(tmp_path):
    data = tmp_path / "data"
    write_media(data, AUDIO_ROWS, column="audio")
    spec = spec_from(tmp_path, media_entry("audio", "audio", media={"sample_rate": 16000, "max_duration": 2}))
    result = clean_dataset(spec, data)
    assert result.dropped == {"corrupt_audio": 2, "audio_sample_rate": 1, "audio_too_long": 1, "not_audio": 1}
    assert pq.read_table(result.path)["id"].to_pylist() == [1, 2]
    assert result.media == {"audio": {"kinds": {"flac": 1, "wav": 1}, "sample_rate": [16000, 16000],
                                      "duration": [0.5, 0.5]}}
    assert result.preview[0]["audio"] == "WAV 16000 Hz 0.50 s, 15.7 KiB, a/tone.wav"
    assert result.contact_sheet is None


def test_skipped_files_reported_by_the_reader_are_counted(tmp_path, monkeypatch):
    from dsm_assets import cleaning

    real = cleaning.read_source

    def with_skips(*args, **kwargs):
        for i, raw in enumerate(real(*args, **kwargs)):
            raw.skipped = {"other_file": 2, "not_in_metadata": 1} if i == 0 else {}
            yield raw

    monkeypatch.setattr(cleaning, "read_source", with_skips)
    data = tmp_path / "data"
    write_media(data, IMAGE_ROWS[:2])
    result = clean_dataset(spec_from(tmp_path, media_entry()), data)
    assert result.dropped == {"other_file": 2, "not_in_metadata": 1}
    assert (result.rows_in, result.rows_out) == (5, 2)


def publish_media(tmp_path, data, rows, column: str, typ: str):
    write_media(data, rows, column=column)
    spec = spec_from(tmp_path, media_entry(column, typ))
    published = publish_and_verify(spec, data)
    cached = cache_latest(published, data)
    return spec, published, cached


def test_load_dataset_on_a_published_folder_gives_pil_images(tmp_path):
    import datasets

    data = tmp_path / "data"
    _, published, cached = publish_media(tmp_path, data, IMAGE_ROWS, "image", "image")
    card = (cached.path / "README.md").read_text()
    assert "dataset_info:\n  features:\n  - name: id\n    dtype: int64\n" in card
    assert "  - name: image\n    dtype: image\n" in card
    ds = datasets.load_dataset(str(cached.path), split="train", cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["image"], datasets.Image)
    assert isinstance(ds[0]["image"], Image.Image) and ds[0]["image"].size == (24, 24)
    assert hash_table(ds.data.table) == published.outcome.content_hash


def test_load_gives_pil_images(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("DSM_DATA_DIR", str(data))
    publish_media(tmp_path, data, IMAGE_ROWS, "image", "image")
    monkeypatch.setenv("DSM_REGISTRY", str(tmp_path / "registry.yaml"))
    ds = dsm_assets.load("m")
    assert ds.num_rows == 3 and isinstance(ds[0]["image"], Image.Image) and ds[1]["image"].size == (32, 20)
    assert type(ds._data).__name__ == "MemoryMappedTable"  # the Arrow copy, not cast
    assert all(op != "cast" for op, *_ in ds._data.replays)
    assert ds[0]["label"] == "a"


def test_load_decodes_audio_to_arrays_without_torchcodec(tmp_path, monkeypatch):
    import datasets

    data = tmp_path / "data"
    monkeypatch.setenv("DSM_DATA_DIR", str(data))
    stereo = wav(0.25, 22050, "FLAC", channels=2)
    publish_media(tmp_path, data, [*AUDIO_ROWS[:2], (8, "a", stereo, "a/stereo.flac")], "audio", "audio")
    monkeypatch.setenv("DSM_REGISTRY", str(tmp_path / "registry.yaml"))
    monkeypatch.setattr("dsm_assets.loading.torchcodec_available", lambda: False)
    ds = dsm_assets.load("m")
    first = ds[0]["audio"]
    assert first["sampling_rate"] == 16000 and first["path"] == "a/tone.wav"
    assert isinstance(first["array"], np.ndarray) and first["array"].shape == (8000,)
    expected, _ = soundfile.read(io.BytesIO(AUDIO_GOOD), dtype="float32")
    assert np.array_equal(first["array"], expected)
    assert ds[1]["audio"]["sampling_rate"] == 16000 and ds[1]["audio"]["path"] == "b/tone.flac"
    assert ds[2]["audio"]["array"].shape == (2, int(0.25 * 22050)) and ds[2]["audio"]["sampling_rate"] == 22050
    assert ds[0]["label"] == "a" and ds["id"][:2] == [1, 2]
    assert isinstance(ds.features["audio"], datasets.Audio)
    assert type(ds._data).__name__ == "MemoryMappedTable"
    # users of plain load_dataset: the public helper decodes a raw {bytes, path} value
    assert dsm_assets.decode_audio({"bytes": AUDIO_GOOD, "path": "x.wav"})["array"].shape == (8000,)


@pytest.mark.parametrize("typ", ["image", "audio"])
def test_load_turns_media_storage_without_features_into_image_or_audio(tmp_path, typ):
    """A version written before the parquet carried features: the registry's type still applies."""
    import datasets

    from dsm_assets.loading import _features

    spec = spec_from(tmp_path, media_entry(typ, typ))
    table = pa.table({"id": pa.array([1], pa.int64()), "label": ["a"],
                      typ: pa.array([{"bytes": b"x", "path": "p"}], media_struct())})
    feature = _features(spec, table)[typ]
    assert isinstance(feature, datasets.Image if typ == "image" else datasets.Audio)


def test_the_cleaned_asset_records_media_stats_and_the_contact_sheet(tmp_path):
    import dagster as dg

    from dsm_assets.defs import handoff
    from dsm_assets.defs.keys import cleaned_key

    data = tmp_path / "data"
    write_media(data, IMAGE_ROWS)
    spec = spec_from(tmp_path, media_entry())
    result = clean_dataset(spec, data)
    meta = handoff.cleaned_metadata(spec, result)
    assert meta["contact_sheet"] == dg.MetadataValue.path(str(result.contact_sheet))
    assert meta["media_image"] == dg.MetadataValue.json(result.media["image"])
    assert meta["dropped_corrupt_image"] == 1 and "PNG 24×24" in meta["preview"].value
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=cleaned_key(spec), metadata=meta))
        back = handoff.read_cleaned(instance, spec)
    assert back.schema == result.schema == {"id": "int64", "label": "string", "image": "image"}
    assert (back.media, back.contact_sheet) == (result.media, result.contact_sheet)
    assert back.dropped == {k.replace(":", "_"): n for k, n in result.dropped.items()}  # as metadata keys spell them
