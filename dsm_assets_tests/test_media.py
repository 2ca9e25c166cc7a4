"""media: sniffing and probing payloads (no dagster, no files), and the media and struct schema types."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pyarrow as pa
import pytest
import soundfile
from PIL import Image

from dsm_assets.arrow_types import check_type, hf_feature, parse_type
from dsm_assets.media import MediaLimits, probe_audio, probe_image, sniff


def encoded(fmt: str, size: tuple[int, int] = (20, 10), **kw) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, fmt, **kw)
    return out.getvalue()


def sound(fmt: str, rate: int = 8000, seconds: float = 1.0) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.sin(np.arange(int(rate * seconds)) / 10).astype(np.float32), rate, format=fmt)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 999))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


@pytest.mark.parametrize("payload, kind", [
    (encoded("PNG"), "png"), (encoded("JPEG"), "jpg"), (encoded("WEBP"), "webp"), (encoded("GIF"), "gif"),
    (encoded("BMP"), "bmp"), (encoded("TIFF"), "tiff"), (sound("WAV"), "wav"), (sound("FLAC"), "flac"),
    (sound("OGG"), "ogg"), (b"hello", None), (b"", None),
])
def test_sniff_names_the_content_not_the_file(payload, kind):
    assert sniff(payload) == kind


def test_good_images_decode_with_their_size():
    for fmt in ("PNG", "JPEG", "WEBP"):
        got = probe_image(encoded(fmt))
        assert got.problem is None and (got.width, got.height) == (20, 10)
    assert probe_image(encoded("PNG")).describe() == "PNG 20×10"


@pytest.mark.parametrize("payload, problem", [
    (encoded("PNG")[:40], "corrupt_image"),                      # truncated PNG
    (encoded("JPEG")[: len(encoded("JPEG")) // 2], "corrupt_image"),  # truncated JPEG
    (b"\x00" + encoded("PNG")[1:], "not_image"),                 # flipped header
    (b"just some text\n", "not_image"),                          # a text file named .png
    (b"", "empty_image"),
    (png_declaring(30000, 30000), "image_too_large"),            # a bomb: refused before decoding
])
def test_bad_images_are_dropped_with_a_reason(payload, problem):
    assert probe_image(payload).problem == problem


def test_a_bomb_is_refused_without_allocating_its_pixels():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert probe_image(png_declaring(30000, 30000)).problem == "image_too_large"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB: far below 2.7 GB


def test_image_limits():
    image = encoded("PNG", (20, 10))
    assert probe_image(image, MediaLimits(min_width=32)).problem == "image_too_small"
    assert probe_image(image, MediaLimits(max_height=8)).problem == "image_too_large"
    assert probe_image(image, MediaLimits(max_pixels=100)).problem == "image_too_large"
    assert probe_image(image, MediaLimits(min_width=20, max_height=10)).problem is None


def test_audio_decodes_and_limits_apply():
    for fmt in ("WAV", "FLAC"):
        got = probe_audio(sound(fmt))
        assert got.problem is None and got.sample_rate == 8000 and got.duration == 1.0
    assert probe_audio(sound("WAV")).describe() == "WAV 8000 Hz 1.00 s"
    assert probe_audio(sound("WAV"), MediaLimits(sample_rate=16000)).problem == "audio_sample_rate"
    assert probe_audio(sound("WAV"), MediaLimits(max_duration=0.5)).problem == "audio_too_long"
    assert probe_audio(sound("WAV"), MediaLimits(min_duration=2)).problem == "audio_too_short"


@pytest.mark.parametrize("payload, problem", [
    (sound("WAV")[:20] + b"\xff" * 16 + sound("WAV")[36:], "corrupt_audio"),  # broken fmt header
    (sound("WAV")[:3000], "corrupt_audio"),                                     # truncated data chunk
    (sound("FLAC")[: len(sound("FLAC")) // 2], "corrupt_audio"),
    (b"", "empty_audio"),
    (encoded("PNG"), "not_audio"),
])
def test_bad_audio_is_dropped_with_a_reason(payload, problem):
    got = probe_audio(payload)
    assert got.problem == problem and "BytesIO" not in got.detail


def test_media_and_struct_types_match_datasets_features():
    import datasets

    for name in ("image", "audio", "struct<a: int64, b: list<struct<x: float64, y: string>>>",
                 "list<struct<bbox: list<float32>, category: int64>>"):
        features = datasets.Features.from_dict({"c": hf_feature(name)})
        assert features.arrow_schema.field("c").type == parse_type(name)
    assert parse_type("image") == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert check_type("struct< a :int64,b:list< string >>") == "struct<a: int64, b: list<string>>"


@pytest.mark.parametrize("name, message", [
    ("struct<a int64>", "struct field 'a int64' in 'struct<a int64>' is not 'name: type'"),
    ("struct<a: int64, a: string>", "struct field 'a' appears twice"),
    ("struct<a: strng>", "unknown type 'strng' in 'struct<a: strng>'"),
    ("struct<" * 12 + "a: int64" + ">" * 12, "types nested 12 deep; at most 8 levels"),
])
def test_bad_struct_types_are_one_line(name, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        check_type(name)
