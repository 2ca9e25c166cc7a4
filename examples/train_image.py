"""An image classifier (logistic regression on pixels) trained through Dagster Pipes on the shapes shards:
a model entry's `train.command` in the registry. Each sample's PNG is decoded with Pillow, cropped to what
is drawn and scaled to 12x12 grayscale (so position and size do not matter); CPU only, seconds.

Extras: dataset, version, commit, cache_folder, shards_folder, shards_manifest_hash, output_folder.
Contract: write the model's files into output_folder; report {"metrics": {"accuracy": …}}."""

from __future__ import annotations

import io
from pathlib import Path

import joblib
import numpy as np
import xxhash
from dagster_pipes import open_dagster_pipes
from PIL import Image
from sklearn.linear_model import LogisticRegression

from dsm_assets.shards import webdataset_pipeline

HELD_OUT_PERCENT = 20
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")


SIDE = 12


def pixels(sample: dict) -> np.ndarray:
    """The drawn shape's mask, cropped to its bounding box and scaled to SIDE x SIDE, in [0, 1]."""
    payload = next(sample[ext] for ext in IMAGE_EXTENSIONS if ext in sample)
    with Image.open(io.BytesIO(payload)) as image:
        mask = image.convert("L").point(lambda v: 255 if v else 0)
        cropped = mask.crop(mask.getbbox() or (0, 0, *mask.size))
        return np.asarray(cropped.resize((SIDE, SIDE), Image.Resampling.BILINEAR), dtype=np.float32).ravel() / 255


def train(shards_folder: Path, output_folder: Path) -> dict[str, float | int]:
    rows, labels, held_out = [], [], []
    for sample in webdataset_pipeline(shards_folder, shuffle=0):
        rows.append(pixels(sample))
        labels.append(int(sample["cls"]))
        held_out.append(xxhash.xxh3_64_intdigest(sample["__key__"].encode()) % 100 < HELD_OUT_PERCENT)
    x, y, test = np.stack(rows), np.array(labels), np.array(held_out)
    model = LogisticRegression(max_iter=2000, random_state=0).fit(x[~test], y[~test])
    accuracy = float((model.predict(x[test]) == y[test]).mean()) if test.any() else 0.0
    joblib.dump(model, output_folder / "model.joblib")
    return {"accuracy": accuracy, "train_samples": int((~test).sum()), "test_samples": int(test.sum())}


def main() -> None:
    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        pipes.log.info(f"training on {extras['dataset']} {extras['version']} ({extras['commit'][:12]})")
        metrics = train(Path(extras["shards_folder"]), Path(extras["output_folder"]))
        pipes.report_custom_message({"metrics": metrics})


if __name__ == "__main__":
    main()
