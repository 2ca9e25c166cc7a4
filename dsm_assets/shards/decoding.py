"""Decoders for shard members that webdataset has none for without extra installs.

Images need nothing here: members are named by their content (`.png`, `.jpg`, `.webp`, …), so webdataset's own
`.decode("pil")` (or "rgb8", "torchrgb", …) decodes them with Pillow. Audio members (`.wav`, `.flac`, `.ogg`,
`.mp3`) are decoded by `audio_decoder`, with soundfile (libsndfile, which we install anyway). webdataset's own
`torch_audio` decoder needs torchaudio, which this project does not install."""

from __future__ import annotations

import io
from typing import Any

from dsm_assets.media import AUDIO_KINDS


def decode_audio(payload: bytes) -> dict[str, Any]:
    """`{"array": float32 numpy array, "sampling_rate": int}`, as `datasets`' Audio() feature decodes: the
    array is (frames,) for mono, (frames, channels) otherwise."""
    import soundfile

    array, rate = soundfile.read(io.BytesIO(payload), dtype="float32", always_2d=False)
    return {"array": array, "sampling_rate": int(rate)}


def audio_decoder(key: str, data: bytes) -> dict[str, Any] | None:
    """A webdataset decoder handler: decodes a member whose extension is wav, flac, ogg or mp3 (also
    `<column>.wav`, …) with `decode_audio`; returns None for anything else, so the next handler gets it.

        wds.WebDataset(urls).decode(audio_decoder, "pil")   # audio as {"array", "sampling_rate"}, images as PIL
        webdataset_pipeline(folder, decode=("audio", "pil"))  # the same through our pipeline

    It is what `wds.handle_extension("wav flac ogg mp3", decode_audio)` builds, without importing webdataset."""
    if key.rsplit(".", 1)[-1].lower() not in AUDIO_KINDS:
        return None
    return decode_audio(data)
