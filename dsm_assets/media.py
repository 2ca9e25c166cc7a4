"""Image and audio payloads: what a file is (sniffed from its bytes, never from its name), and whether it
decodes within the registry's limits. Images are decoded with Pillow; audio with soundfile (libsndfile,
bundled in its wheels: WAV, FLAC, OGG and MP3 with no network and no system codecs). A payload that
fails is dropped by cleaning under the reason `Probe.problem` names."""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
IMAGE_KINDS = ("png", "jpg", "webp", "gif", "bmp", "tiff")
AUDIO_KINDS = ("wav", "flac", "ogg", "mp3")
DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000: decoding more would take GBs; a bomb declares far more
DEFAULT_MAX_DURATION = 3600.0  # seconds of audio decoded to check a file, unless the registry says otherwise
AUDIO_BLOCK = 1 << 16  # frames decoded at a time: checking a long file stays in bounded memory


@dataclass(frozen=True)
class MediaLimits:
    """The registry's optional `cleaning.media` constraints; a payload outside them is dropped and counted."""

    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS  # refused before decoding: a decompression bomb costs no memory
    sample_rate: int | None = None  # the one sample rate audio must have
    min_duration: float | None = None  # seconds
    max_duration: float | None = None  # seconds


@dataclass(frozen=True)
class Probe:
    """What one payload is: `problem` is the drop reason (e.g. `corrupt_image`), None when it is fine."""

    problem: str | None
    kind: str | None = None  # png, jpg, wav, flac, … (sniffed)
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    duration: float | None = None
    detail: str = ""  # one line: why it was dropped

    def describe(self) -> str:
        """`PNG 24×24` or `WAV 8000 Hz 1.50 s`: what a preview shows in place of the bytes."""
        if self.width is not None:
            return f"{(self.kind or '?').upper()} {self.width}×{self.height}"
        if self.sample_rate is not None:
            return f"{(self.kind or '?').upper()} {self.sample_rate} Hz {self.duration:.2f} s"
        return self.detail


def sniff(payload: bytes) -> str | None:
    """The media kind of `payload` from its first bytes (png, jpg, webp, gif, bmp, tiff, wav, flac, ogg, mp3),
    or None. This names shard members, so webdataset's decoders pick the right one."""
    head = bytes(payload[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def probe_image(payload: bytes | None, limits: MediaLimits = MediaLimits()) -> Probe:
    """Decode `payload` fully with Pillow after checking its declared size, so a bomb is refused unread."""
    from PIL import Image

    if not payload:
        return Probe("empty_image", detail="the file is empty (0 bytes)")
    kind = sniff(payload)
    if kind not in IMAGE_KINDS:
        return Probe("not_image", kind, detail=f"not an image ({kind or 'unknown'} content)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(payload)) as image:
                width, height = image.size
                if width * height > limits.max_pixels:
                    return Probe("image_too_large", kind, width, height,
                                 detail=f"{width}×{height} is over max_pixels {limits.max_pixels}")
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Probe("image_too_large", kind, detail=str(exc).split(".")[0])
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError … for corrupt data
        return Probe("corrupt_image", kind, detail=_why(exc))
    problem = _outside(limits, width, height)
    return Probe(problem, kind, width, height, detail=f"{width}×{height} is outside the limits" if problem else "")


def _outside(limits: MediaLimits, width: int, height: int) -> str | None:
    if (limits.min_width and width < limits.min_width) or (limits.min_height and height < limits.min_height):
        return "image_too_small"
    if (limits.max_width and width > limits.max_width) or (limits.max_height and height > limits.max_height):
        return "image_too_large"
    return None


def probe_audio(payload: bytes | None, limits: MediaLimits = MediaLimits()) -> Probe:
    """Decode `payload` with soundfile, block by block, after checking its declared rate and duration."""
    import soundfile

    if not payload:
        return Probe("empty_audio", detail="the file is empty (0 bytes)")
    kind = sniff(payload)
    if kind not in AUDIO_KINDS:
        return Probe("not_audio", kind, detail=f"not audio ({kind or 'unknown'} content)")
    try:
        info = soundfile.info(io.BytesIO(payload))
        rate, duration = int(info.samplerate), float(info.duration)
        problem = _audio_outside(limits, rate, duration)
        if problem:
            return Probe(problem, kind, sample_rate=rate, duration=duration,
                         detail=f"{rate} Hz, {duration:.2f} s is outside the limits")
        frames = sum(len(block) for block in soundfile.blocks(io.BytesIO(payload), blocksize=AUDIO_BLOCK))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, ValueError for corrupt data
        return Probe("corrupt_audio", kind, detail=_why(exc))
    if kind == "wav" and _wav_truncated(payload):
        return Probe("corrupt_audio", kind, detail="truncated: the data chunk is shorter than its header says")
    if info.frames > 0 and frames < info.frames:
        return Probe("corrupt_audio", kind, detail=f"truncated: {frames} of {info.frames} frames decode")
    return Probe(None, kind, sample_rate=rate, duration=duration)


def _why(exc: Exception) -> str:
    """A decoder's error as one short line, without the in-memory file's repr."""
    text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>:?", "", str(exc)).strip()
    return f"cannot decode ({type(exc).__name__}: {text[:80]})"


def _wav_truncated(payload: bytes) -> bool:
    """Whether a WAV's data chunk declares more bytes than the file holds (libsndfile reads what is there)."""
    pos = 12
    while pos + 8 <= len(payload):
        chunk, size = payload[pos:pos + 4], struct.unpack_from("<I", payload, pos + 4)[0]
        if chunk == b"data":
            return size != 0xFFFFFFFF and pos + 8 + size > len(payload)  # 0xFFFFFFFF: a streamed WAV
        pos += 8 + size + (size & 1)
    return False


def _audio_outside(limits: MediaLimits, rate: int, duration: float) -> str | None:
    if limits.sample_rate and rate != limits.sample_rate:
        return "audio_sample_rate"
    if duration > (limits.max_duration or DEFAULT_MAX_DURATION):
        return "audio_too_long"
    if limits.min_duration and duration < limits.min_duration:
        return "audio_too_short"
    return None


def probe(type_name: str, payload: bytes | None, limits: MediaLimits = MediaLimits()) -> Probe:
    """probe_image or probe_audio, by the column's registry type."""
    return probe_image(payload, limits) if type_name == "image" else probe_audio(payload, limits)
