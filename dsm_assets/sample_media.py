"""The media samples, generated at install time (deterministic, seconds, a few KB a file):

- `shapes`: an image folder, one sub-folder per class (circle, square, triangle; PNG, some lossless WebP),
  with the faults cleaning handles: duplicate images under other names, empty and truncated files, a text
  file named `.png`, a class outside the label set, and a stray README.
- `chord_tones`: an audio folder of synthesized major and minor triads (WAV and FLAC, 8 kHz, half a second)
  labelled by `metadata.csv`, with a broken WAV header, an empty file, a duplicate clip, a 16 kHz clip and a
  label outside the set."""

from __future__ import annotations

import csv
import io
import math
import random
import struct
import wave
import zlib
from pathlib import Path

SIZE = 24
LABELS = ("circle", "square", "triangle")
PER_CLASS = 100
TONE_RATE = 8000
TONE_SECONDS = 0.5
NOTES = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]
QUALITIES = {"major": (0, 4, 7), "minor": (0, 3, 7), "diminished": (0, 3, 6)}


def png(pixels: list[list[tuple[int, int, int]]]) -> bytes:
    """Encode rows of RGB pixels as a PNG (8-bit RGB, no interlace)."""
    height, width = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def draw(label: str, rng: random.Random) -> bytes:
    colour = (rng.randrange(60, 256), rng.randrange(60, 256), rng.randrange(60, 256))
    cx, cy, r = rng.randrange(8, 16), rng.randrange(8, 16), rng.randrange(4, 8)

    def inside(x: int, y: int) -> bool:
        if label == "circle":
            return (x - cx) ** 2 + (y - cy) ** 2 <= r * r
        if label == "square":
            return abs(x - cx) <= r and abs(y - cy) <= r
        if label == "triangle":
            return y - cy <= r and y - cy >= -r and abs(x - cx) <= (y - cy + r) // 2
        return abs(x - cx) + abs(y - cy) <= r  # a diamond: the "hexagon" class outside the label set

    return png([[colour if inside(x, y) else (0, 0, 0) for x in range(SIZE)] for y in range(SIZE)])


def _webp(png_bytes: bytes) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    with Image.open(io.BytesIO(png_bytes)) as image:
        image.save(out, "WEBP", lossless=True)
    return out.getvalue()


def write_shapes(root: Path) -> int:
    """The shapes image folder under `root`; returns the files written."""
    rng = random.Random(20261123)
    files: dict[str, bytes] = {}
    for i in range(1, PER_CLASS * len(LABELS) + 1):
        label = LABELS[i % 3]
        image = draw(label, rng)
        files[f"{label}/{i:04d}.webp" if i % 10 == 0 else f"{label}/{i:04d}.png"] = \
            _webp(image) if i % 10 == 0 else image
    originals = sorted(files)
    for n, name in enumerate(rng.sample(originals, 6), start=1):  # the same image saved again under another name
        files[f"{name.split('/')[0]}/copy-{n}{Path(name).suffix}"] = files[name]
    files["circle/empty.png"] = b""
    files["square/empty.png"] = b""
    files["square/truncated.png"] = draw("square", rng)[:60]
    files["triangle/truncated.png"] = draw("triangle", rng)[:90]
    files["triangle/notes.png"] = b"this is a text file with a .png name\n"
    for n in range(1, 4):
        files[f"hexagon/{n:04d}.png"] = draw("hexagon", rng)
    files["README.txt"] = b"Shapes drawn by dsm_assets.sample_media; one folder per class.\n"
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return len(files)


def tone(root_note: str, quality: str, rate: int = TONE_RATE, seconds: float = TONE_SECONDS,
         volume: float = 0.3) -> list[float]:
    """A triad on `root_note` (octave 4) with a short fade in and out, as samples in [-1, 1]."""
    base = 261.63 * 2 ** (NOTES.index(root_note) / 12)
    freqs = [base * 2 ** (step / 12) for step in QUALITIES[quality]]
    count = int(rate * seconds)
    fade = rate // 50
    return [volume * min(1.0, i / fade, (count - i) / fade) * sum(math.sin(2 * math.pi * f * i / rate) for f in freqs)
            for i in range(count)]


def wav(samples: list[float], rate: int = TONE_RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(s * 32767)) for s in samples))
    return out.getvalue()


def flac(samples: list[float], rate: int = TONE_RATE) -> bytes:
    import numpy as np
    import soundfile

    out = io.BytesIO()
    soundfile.write(out, np.asarray(samples, dtype=np.float32), rate, format="FLAC")
    return out.getvalue()


def write_chord_tones(root: Path) -> int:
    """The chord_tones audio folder under `root` (clips/ and metadata.csv); returns the files written."""
    rng = random.Random(20261129)
    rows: list[tuple[str, str, str]] = []
    files: dict[str, bytes] = {}
    for i in range(1, 41):
        note, quality = rng.choice(NOTES), ("major", "minor")[i % 2]
        name = f"clips/{i:03d}.{'flac' if i % 3 == 0 else 'wav'}"
        volume = rng.uniform(0.15, 0.3)  # every clip distinct, though notes and qualities repeat
        files[name] = (flac if name.endswith(".flac") else wav)(tone(note, quality, volume=volume))
        rows.append((name, quality, note))
    files["clips/copy.wav"] = files["clips/001.wav"]  # a duplicate clip under another name
    rows.append(("clips/copy.wav", rows[0][1], rows[0][2]))
    broken = bytearray(wav(tone("C", "major")))
    broken[20:36] = b"\xff" * 16  # the fmt chunk overwritten
    files["clips/broken.wav"] = bytes(broken)
    rows.append(("clips/broken.wav", "major", "C"))
    files["clips/empty.flac"] = b""
    rows.append(("clips/empty.flac", "minor", "A"))
    files["clips/hifi.wav"] = wav(tone("E", "major", rate=16000), rate=16000)  # not the registry's 8 kHz
    rows.append(("clips/hifi.wav", "major", "E"))
    files["clips/dim.wav"] = wav(tone("B", "diminished"))
    rows.append(("clips/dim.wav", "diminished", "B"))
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "label", "root"])
        writer.writerows(rows)
    return len(files) + 1
