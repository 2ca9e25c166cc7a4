"""Image and audio folders as they sit on disk, through the whole graph on every remote: cleaned (bad files
dropped and counted), published, round trip, cache, preflight and shards; then read by the unmodified
clients: `datasets.load_dataset` on the cache folder (offline, no network) and on the Hub, `dsm_assets.load`,
and webdataset's decoders on the shards."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import soundfile
from PIL import Image

import dsm_assets
from dsm_assets.defs import handoff
from dsm_assets.defs.factory import MATERIALIZE_JOB, OBSERVE_JOB, build_definitions
from dsm_assets.defs.resources import DsmRemotes
from dsm_assets.preflight import preflight
from dsm_assets.registry import load_registry
from dsm_assets.shards import webdataset_pipeline

from .conftest import write_registry
from .servers import HUB_TOKEN

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}


def image(colour: tuple[int, int, int], fmt: str, seed: int) -> bytes:
    pixels = Image.new("RGB", (20 + seed % 5, 16), colour)
    pixels.putpixel((seed % 16, seed % 12), (seed % 256, 0, 0))  # every file distinct
    out = io.BytesIO()
    pixels.save(out, fmt)
    return out.getvalue()


def clip(freq: float, fmt: str, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, (0.3 * np.sin(2 * np.pi * freq * np.arange(rate // 4) / rate)).astype(np.float32), rate,
                    format=fmt)
    return out.getvalue()


def write_image_folder(root: Path) -> None:
    """Class sub-folders (PNG and JPEG), plus a duplicate, an empty file, a truncated PNG and a text file."""
    for c, (name, colour) in enumerate(COLOURS.items()):
        for i in range(6):
            fmt = "JPEG" if i % 3 == 0 else "PNG"
            path = root / name / f"{i:02d}.{'jpg' if fmt == 'JPEG' else 'png'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image(colour, fmt, 10 * c + i))
    (root / "red" / "copy.png").write_bytes((root / "red" / "01.png").read_bytes())
    (root / "green" / "empty.png").write_bytes(b"")
    (root / "blue" / "cut.png").write_bytes((root / "blue" / "01.png").read_bytes()[:50])
    (root / "blue" / "notes.png").write_text("not an image\n")


def write_audio_folder(root: Path) -> None:
    """metadata.csv naming WAV and FLAC clips, plus one with a broken header."""
    rows = ["file_name,label"]
    for i in range(8):
        name = f"clips/{i}.{'flac' if i % 2 else 'wav'}"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(clip(220 + 40 * i, "FLAC" if i % 2 else "WAV"))
        rows.append(f"{name},{'high' if i >= 4 else 'low'}")
    broken = bytearray(clip(300, "WAV"))
    broken[20:36] = b"\xff" * 16
    (root / "clips" / "broken.wav").write_bytes(bytes(broken))
    rows.append("clips/broken.wav,low")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")


def entries(remote: dict) -> list[dict]:
    return [
        {"name": "colours", "use": "Colour classifier from an image folder",
         "remote": {**remote, "repo": "team/colours"},
         "source": {"path": "raw/colours", "format": "imagefolder"},
         "schema": {"image": "image", "label": "string"},
         "cleaning": {"dedupe_key": ["image"], "required": ["image", "label"],
                      "labels": {"column": "label", "allowed": list(COLOURS)}},
         "shards": {"count": 2}},
        {"name": "tones", "use": "Pitch classifier from an audio folder", "remote": {**remote, "repo": "team/tones"},
         "source": {"path": "raw/tones", "format": "audiofolder"},
         "schema": {"audio": "audio", "label": "string"},
         "cleaning": {"required": ["audio", "label"], "media": {"sample_rate": 8000}},
         "shards": {"count": 2}},
    ]


def remote_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[dict, DsmRemotes | None]:
    if kind == "local":
        return {"kind": "local"}, None
    if kind == "hub":
        server = request.getfixturevalue("hub_server")
        return {"kind": "hub"}, DsmRemotes(hf_endpoint=server.url, hf_token=HUB_TOKEN, backoff_seconds=0.01)
    endpoint = request.getfixturevalue("aws_env")
    return ({"kind": "s3", "bucket": "dsm-test", "prefix": f"media-{tmp_path.name}"},
            DsmRemotes(aws_endpoint_url=endpoint, backoff_seconds=0.01))


def run_in(code: str, *args: str, env: dict | None = None, isolated: bool = True) -> str:
    """Run `code` in a fresh interpreter (without network when `isolated`); its stdout."""
    command = ["unshare", "--net"] if isolated and _can_unshare() else []
    done = subprocess.run([*command, sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _can_unshare() -> bool:
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


LOAD_CACHED = """
import json, sys
import datasets
ds = datasets.load_dataset(sys.argv[1], split="train")
row = ds[0]
print(json.dumps({"rows": ds.num_rows, "features": {k: type(v).__name__ for k, v in ds.features.items()},
                  "value": type(row[sys.argv[2]]).__name__}))
"""

# datasets decodes Audio() through torchcodec (torch), which is not installed here: without it, read the bytes
# (decode=False) and decode them with dsm_assets.decode_audio (soundfile), as the README says
LOAD_AUDIO = """
import json, sys
import datasets
import dsm_assets
ds = datasets.load_dataset(sys.argv[1], split="train")
feature = type(ds.features["audio"]).__name__
decoded = dsm_assets.decode_audio(ds.cast_column("audio", datasets.Audio(decode=False))[0]["audio"])
print(json.dumps({"rows": ds.num_rows, "feature": feature, "rate": decoded["sampling_rate"],
                  "frames": len(decoded["array"])}))
"""


@pytest.mark.parametrize("kind", ["local", "hub", "s3"])
def test_image_and_audio_folders_through_the_whole_graph(kind, tmp_path, request):
    data, outputs = tmp_path / "data", tmp_path / "outputs"
    write_image_folder(data / "raw" / "colours")
    write_audio_folder(data / "raw" / "tones")
    remote, remotes = remote_for(kind, tmp_path, request)
    registry = load_registry(write_registry(tmp_path / "registry.yaml", entries(remote)))
    defs = build_definitions(registry=registry, data_dir=data, outputs_dir=outputs, remotes=remotes)
    with dg.DagsterInstance.ephemeral() as instance:
        defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance)
        result = defs.resolve_job_def(MATERIALIZE_JOB).execute_in_process(instance=instance, raise_on_error=False)
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks), [(c.asset_key, c.check_name) for c in checks if not c.passed]
        assert {c.check_name for c in checks} >= {"round_trip", "integrity"}
        colours, tones = (handoff.read_cleaned(instance, registry.get(n)) for n in ("colours", "tones"))
        assert colours.rows_out == 18 and colours.dropped == {
            "duplicate": 1, "empty_image": 1, "corrupt_image": 1, "not_image": 1}
        assert tones.rows_out == 8 and tones.dropped == {"corrupt_audio": 1}
        cached = {n: handoff.read_cache(instance, registry.get(n)) for n in ("colours", "tones")}
        shards = {n: handoff.read_shards(instance, registry.get(n)) for n in ("colours", "tones")}

    for name in ("colours", "tones"):
        assert preflight(registry.get(name), data).ready
    got = json.loads(run_in(LOAD_CACHED, str(cached["colours"].folder), "image",
                            env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}))
    assert got["rows"] == 18 and got["features"] == {"image": "Image", "label": "Value"}
    assert got["value"] in ("PngImageFile", "JpegImageFile")
    got = json.loads(run_in(LOAD_AUDIO, str(cached["tones"].folder), env={"HF_HUB_OFFLINE": "1"}))
    assert got == {"rows": 8, "feature": "Audio", "rate": 8000, "frames": 2000}

    loaded = dsm_assets.load("colours", registry=registry, data_dir=data)
    assert isinstance(loaded[0]["image"], Image.Image) and loaded.num_rows == 18
    sound = dsm_assets.load("tones", registry=registry, data_dir=data)[0]["audio"]
    assert sound["sampling_rate"] == 8000 and isinstance(sound["array"], np.ndarray) and len(sound["array"]) == 2000

    images = list(webdataset_pipeline(shards["colours"].folder, shuffle=0, decode="pil"))
    assert len(images) == 18 and all(isinstance(s.get("png", s.get("jpg")), Image.Image) for s in images)
    assert {k for s in images for k in s if not k.startswith("__")} == {"json", "cls", "png", "jpg"}
    clips = list(webdataset_pipeline(shards["tones"].folder, shuffle=0, decode="audio"))
    assert len(clips) == 8 and all(s.get("wav", s.get("flac"))["sampling_rate"] == 8000 for s in clips)

    if kind == "hub":  # the published version, read from the Hub server by datasets itself
        server = request.getfixturevalue("hub_server")
        got = json.loads(run_in(LOAD_CACHED.replace('sys.argv[1], split="train"',
                                                    'sys.argv[1], split="train", revision="v1.0"'),
                                "team/colours", "image", isolated=False,
                                env={"HF_ENDPOINT": server.url, "HF_TOKEN": HUB_TOKEN,
                                     "HF_HOME": str(tmp_path / "hf-home")}))
        assert got["rows"] == 18 and got["features"]["image"] == "Image"
        assert got["value"] in ("PngImageFile", "JpegImageFile")


def test_an_image_folder_with_metadata_csv_publishes_and_caches_without_a_conversion_script(tmp_path):
    from dsm_assets.cleaning import clean_dataset
    from dsm_assets.errors import SourceError

    from .caching import cache_latest, publish_and_verify

    data = tmp_path / "data"
    root = data / "raw" / "captions"
    for i, (name, colour) in enumerate(COLOURS.items()):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "images" / f"{name}.png").write_bytes(image(colour, "PNG", i))
    (root / "metadata.csv").write_text("file_name,caption\nimages/red.png,a red square\n"
                                       "images/green.png,a green square\nimages/blue.png,\"blue, square\"\n")
    entry = {"name": "captions", "use": "Captioned images",
             "source": {"path": "raw/captions", "format": "imagefolder"},
             "schema": {"image": "image", "caption": "string"}, "cleaning": {"required": ["image", "caption"]}}
    spec = load_registry(write_registry(tmp_path / "registry.yaml", [entry])).get("captions")
    folder = cache_latest(publish_and_verify(spec, data), data).path
    import datasets

    ds = datasets.load_dataset(str(folder), split="train")
    assert ds.num_rows == 3 and ds[2]["caption"] == "blue, square" and isinstance(ds[0]["image"], Image.Image)
    assert ds[0]["image"].getpixel((1, 1)) == COLOURS["red"]

    (root / "metadata.csv").write_text("file_name,caption\nimages/red.png,red\nimages/purple.png,purple\n")
    before = sorted(p.name for p in (data / "clean" / "captions").iterdir())
    with pytest.raises(SourceError, match=r"metadata.csv: row 2: .*images/purple.png"):
        clean_dataset(spec, data)
    assert sorted(p.name for p in (data / "clean" / "captions").iterdir()) == before  # nothing half-written
