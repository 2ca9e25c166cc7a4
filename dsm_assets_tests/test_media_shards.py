"""Shards of media data: members named by their content, a manifest listing what was written, webdataset's
image decoders and our audio decoder on them, and the integrity check on the new shape."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
import webdataset as wds
from PIL import Image

from dsm_assets.fingerprint import hash_file
from dsm_assets.layout import cache_version_dir
from dsm_assets.shards import (
    FORMAT,
    SHARDS_MANIFEST,
    audio_decoder,
    sealed,
    shard_urls,
    webdataset_pipeline,
    write_shards,
)
from dsm_assets.shards.checks import check_shards

from .conftest import spec_from

COMMIT = "c" * 40
LABELS = ["cat", "dog"]


def picture(fmt: str, size: tuple[int, int] = (20, 10), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def sound(fmt: str, rate: int, frames: int = 400) -> bytes:
    out = io.BytesIO()
    wave = 0.5 * np.sin(np.arange(frames) * 2 * np.pi * 440 / rate)
    soundfile.write(out, wave, rate, format=fmt)
    return out.getvalue()


IMAGES = [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")]
SOUNDS = [("WAV", "wav", 8000), ("FLAC", "flac", 16000)]


def entry(schema: dict[str, str], count: int = 2, labels: list[str] = LABELS) -> dict:
    return {"name": "m", "use": "tests", "source": {"path": "raw/m/*.parquet", "format": "parquet"},
            "schema": schema, "cleaning": {"dedupe_key": ["id"], "labels": {"column": "label", "allowed": labels}},
            "shards": {"count": count}}


def shard(tmp_path, data_dir, schema: dict[str, str], columns: dict[str, list] | pa.Table, count: int = 2,
          labels: list[str] = LABELS):
    """`columns` cached as version v1.0 (the table in the registry schema) and sharded: (spec, result)."""
    spec = spec_from(tmp_path, entry(schema, count, labels))
    table = pa.table(columns, schema=spec.arrow_schema()) if isinstance(columns, dict) else columns
    cached = cache_version_dir(spec, data_dir, "v1.0", COMMIT)
    (cached / "data").mkdir(parents=True)
    pq.write_table(table, cached / "data" / "train-00000-of-00001.parquet")
    (cached / "cache_manifest.json").write_text(json.dumps({"version": "v1.0", "commit": COMMIT,
                                                            "content_hash": "x", "rows": table.num_rows,
                                                            "files": {}}))
    return spec, write_shards(spec, cached, tmp_path / "outputs")


def members(result) -> list[str]:
    names = []
    for url in shard_urls(result.folder, result.manifest):
        with tarfile.open(url) as tar:
            names += tar.getnames()
    return names


def all_pass(spec, result, data_dir) -> dict[str, tuple[bool, str]]:
    return {o.name: (o.passed, o.description) for o in check_shards(spec, result.folder, data_dir)}


@pytest.fixture
def images(tmp_path, data_dir):
    """One `image` column holding PNG, JPEG and WebP files, twice over, in two shards."""
    kinds = IMAGES * 2
    return shard(tmp_path, data_dir, {"id": "int64", "label": "string", "image": "image"}, {
        "id": list(range(len(kinds))), "label": [LABELS[i % 2] for i in range(len(kinds))],
        "image": [{"bytes": picture(fmt, (20 + i, 10)), "path": f"photos/{i}.{ext}"}
                  for i, (fmt, ext) in enumerate(kinds)]})


def test_one_media_column_gives_one_member_named_by_its_content(images, data_dir):
    spec, result = images
    assert members(result) == [f"sample{i:09d}.{ext}" for i, (_, ext) in enumerate(IMAGES * 2)
                                for ext in ("json", "cls", ext)]
    manifest = result.manifest
    assert manifest["format"] == FORMAT
    assert manifest["fields"] == ["json", "cls", "jpg", "png", "webp"]
    assert manifest["field_groups"] == [["json"], ["cls"], ["jpg", "png", "webp"]]
    samples = list(wds.WebDataset(shard_urls(result.folder, manifest), shardshuffle=False, empty_check=False))
    assert json.loads(samples[1]["json"]) == {"id": 1, "label": "dog", "image": {"path": "photos/1.jpg"}}
    assert samples[1]["jpg"].startswith(b"\xff\xd8\xff") and "png" not in samples[1]
    assert all(passed for passed, _ in all_pass(spec, result, data_dir).values())


def test_decode_pil_gives_pil_images_for_png_jpeg_and_webp(images):
    _, result = images
    samples = list(webdataset_pipeline(result.folder, shuffle=0, decode="pil"))
    assert len(samples) == 6
    for i, sample in enumerate(samples):
        ext = IMAGES[i % 3][1]
        assert isinstance(sample[ext], Image.Image) and sample[ext].size == (20 + i, 10)
        assert sample[ext].getpixel((3, 3))[0] > 150  # red, whatever the format's loss
        assert sample["cls"] == i % 2 and sample["json"]["image"] == {"path": f"photos/{i}.{ext}"}


def rewrite_shard(result, index: int, edit) -> None:
    """Rewrite shard `index` with the members `edit([(name, data), …])` returns, and re-seal the manifest around
    it, as a buggy writer would: the shard's size and hash match, only a sample's members are wrong."""
    path = result.folder / result.manifest["shards"][index]["name"]
    with tarfile.open(path) as tar:
        found = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in edit(found):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    manifest = json.loads((result.folder / SHARDS_MANIFEST).read_text())
    manifest["shards"][index].update(bytes=path.stat().st_size, xxh3_128=hash_file(path))
    (result.folder / SHARDS_MANIFEST).write_text(json.dumps(sealed({k: v for k, v in manifest.items()
                                                                     if k != "manifest_xxh3_128"})))


def test_a_sample_missing_its_media_member_fails_integrity(images, data_dir):
    spec, result = images
    rewrite_shard(result, 1, lambda found: [(n, d) for n, d in found if n != "sample000000004.jpg"])
    passed, text = all_pass(spec, result, data_dir)["integrity"]
    assert not passed and text == "m-000001.tar: sample sample000000004 has no jpg/png/webp member"


def test_a_sample_missing_its_label_or_json_fails_integrity(images, data_dir):
    spec, result = images
    rewrite_shard(result, 0, lambda found: [(n, d) for n, d in found if n != "sample000000002.cls"])
    passed, text = all_pass(spec, result, data_dir)["integrity"]
    assert not passed and text == "m-000000.tar: sample sample000000002 has no cls member"


def test_a_sample_with_two_media_members_fails_integrity(images, data_dir):
    spec, result = images
    rewrite_shard(result, 0, lambda found: [*found[:3], ("sample000000000.webp", picture("WEBP")), *found[3:]])
    passed, text = all_pass(spec, result, data_dir)["integrity"]
    assert not passed and text == "m-000000.tar: sample sample000000000 has png and webp, one of jpg/png/webp expected"


def test_a_member_the_manifest_does_not_list_fails_integrity(images, data_dir):
    spec, result = images
    rewrite_shard(result, 0, lambda found: [*found[:3], ("sample000000000.npy", b"\x93NUMPY"), *found[3:]])
    passed, text = all_pass(spec, result, data_dir)["integrity"]
    assert not passed and text == "m-000000.tar: sample sample000000000 has npy, which the manifest does not list"


def test_image_and_audio_columns_are_named_by_column_and_content(tmp_path, data_dir):
    rows = [(IMAGES[i % 3], SOUNDS[i % 2]) for i in range(4)]
    spec, result = shard(tmp_path, data_dir, {"id": "int64", "label": "string", "image": "image", "audio": "audio"}, {
        "id": [0, 1, 2, 3], "label": ["cat", "dog", "dog", "cat"],
        "image": [{"bytes": picture(fmt), "path": None} for (fmt, _), _ in rows],
        "audio": [{"bytes": sound(fmt, rate), "path": f"a{i}.{ext}"} for i, (_, (fmt, ext, rate)) in enumerate(rows)],
    }, count=1)
    assert members(result)[:8] == ["sample000000000.json", "sample000000000.cls", "sample000000000.image.png",
                                   "sample000000000.audio.wav", "sample000000001.json", "sample000000001.cls",
                                   "sample000000001.image.jpg", "sample000000001.audio.flac"]
    assert result.manifest["field_groups"] == [["json"], ["cls"], ["image.jpg", "image.png", "image.webp"],
                                               ["audio.flac", "audio.wav"]]
    assert all(passed for passed, _ in all_pass(spec, result, data_dir).values())
    samples = list(webdataset_pipeline(result.folder, shuffle=0, decode=("audio", "pil")))
    for i, sample in enumerate(samples):
        (_, image_ext), (_, audio_ext, rate) = rows[i]
        assert isinstance(sample[f"image.{image_ext}"], Image.Image)
        decoded = sample[f"audio.{audio_ext}"]
        assert decoded["sampling_rate"] == rate and decoded["array"].dtype == np.float32
        assert decoded["array"].shape == (400,) and abs(float(decoded["array"].max()) - 0.5) < 0.01
        assert sample["json"] == {"id": i, "label": ["cat", "dog", "dog", "cat"][i], "image": {"path": None},
                                  "audio": {"path": f"a{i}.{audio_ext}"}}


def test_audio_decoder_in_a_plain_webdataset_gives_arrays_and_rates(tmp_path, data_dir):
    _, result = shard(tmp_path, data_dir, {"id": "int64", "label": "string", "audio": "audio"}, {
        "id": [0, 1], "label": ["cat", "dog"],
        "audio": [{"bytes": sound(fmt, rate, 300 + i), "path": None} for i, (fmt, _, rate) in enumerate(SOUNDS)]})
    assert result.manifest["fields"] == ["json", "cls", "flac", "wav"]
    pipeline = wds.WebDataset(shard_urls(result.folder, result.manifest), shardshuffle=False, empty_check=False)
    first, second = pipeline.decode(audio_decoder)
    assert first["wav"]["sampling_rate"] == 8000 and first["wav"]["array"].shape == (300,)
    assert second["flac"]["sampling_rate"] == 16000 and second["flac"]["array"].shape == (301,)
    assert isinstance(first["wav"]["array"], np.ndarray)
    assert audio_decoder(".png", picture("PNG")) is None and audio_decoder(".json", b"{}") is None
    decoded = list(webdataset_pipeline(result.folder, shuffle=0, decode="audio"))
    assert decoded[1]["flac"]["sampling_rate"] == 16000


def test_plain_binary_columns_are_sniffed_too_and_null_text_is_an_empty_txt(tmp_path, data_dir):
    spec, result = shard(tmp_path, data_dir, {"id": "int64", "label": "string", "text": "string",
                                              "image": "binary"}, {
        "id": [0, 1, 2], "label": ["cat", "dog", "cat"], "text": ["a cat", None, "x"],
        "image": [picture("JPEG"), b"not an image", None]}, count=1)
    assert members(result) == ["sample000000000.json", "sample000000000.cls", "sample000000000.txt",
                               "sample000000000.jpg", "sample000000001.json", "sample000000001.cls",
                               "sample000000001.txt", "sample000000001.bin", "sample000000002.json",
                               "sample000000002.cls", "sample000000002.txt", "sample000000002.bin"]
    assert result.manifest["field_groups"] == [["json"], ["cls"], ["txt"], ["bin", "jpg"]]
    assert all(passed for passed, _ in all_pass(spec, result, data_dir).values())
    samples = list(webdataset_pipeline(result.folder, shuffle=0))
    assert json.loads(samples[1]["json"]) == {"id": 1, "label": "dog", "text": None}
    assert samples[1]["txt"] == b"" and samples[2]["bin"] == b""


def test_shards_of_an_older_format_are_rewritten(images, tmp_path, data_dir):
    spec, result = images
    old = {k: v for k, v in result.manifest.items() if k not in ("format", "field_groups", "manifest_xxh3_128")}
    (result.folder / SHARDS_MANIFEST).write_text(json.dumps(sealed(old)))
    again = write_shards(spec, cache_version_dir(spec, data_dir, "v1.0", COMMIT), tmp_path / "outputs")
    assert again.written and again.repaired == f"{result.folder / SHARDS_MANIFEST} is shard format 1, not {FORMAT}"
    assert again.manifest == result.manifest


def train_image():
    """examples/train_image.py as a module."""
    path = Path(__file__).resolve().parent.parent / "examples" / "train_image.py"
    spec = importlib.util.spec_from_file_location("train_image", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_image_example_trains_on_shapes_shards_with_a_binary_or_an_image_column(shapes, tmp_path, data_dir):
    spec, folder, manifest = shapes
    module = train_image()
    (tmp_path / "binary").mkdir()
    assert module.train(folder, tmp_path / "binary")["accuracy"] >= 0.9
    table = pq.read_table(cache_version_dir(spec, data_dir, manifest["version"], manifest["commit"]) / "data")
    binary = table.set_column(table.schema.get_field_index("image"), "image", table["image"].combine_chunks()
                              .field("bytes"))  # the shapes' image column as a plain binary column
    binary = binary.append_column("id", pa.array(range(binary.num_rows), pa.int64()))  # the test entry's key
    schema = {**spec.schema, "image": "binary", "id": "int64"}
    (tmp_path / "media").mkdir()
    _, result = shard(tmp_path / "media", tmp_path / "media" / "data", schema, binary, count=3,
                      labels=list(spec.cleaning.labels.allowed))
    assert result.manifest["field_groups"][:2] == [["json"], ["cls"]] and "png" in result.manifest["field_groups"][2]
    (tmp_path / "model").mkdir()
    assert module.train(result.folder, tmp_path / "model")["accuracy"] >= 0.9
