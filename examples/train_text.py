"""A text classifier (TF-IDF + logistic regression) trained through Dagster Pipes: a model entry's
`train.command` in the registry. It runs as its own process; `dagster_pipes` (no dagster import) gives it
the pinned dataset as extras, and it reports its metrics back.

Extras: dataset, version, commit, cache_folder, shards_folder, shards_manifest_hash, output_folder.
Contract: write the model's files into output_folder; report {"metrics": {"accuracy": …}}."""

from __future__ import annotations

from pathlib import Path

import joblib
import xxhash
from dagster_pipes import open_dagster_pipes
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from dsm_assets.shards import webdataset_pipeline

HELD_OUT_PERCENT = 20


def samples(shards_folder: Path) -> tuple[list[str], list[int], list[bool]]:
    """Text, label index and held-out flag (a stable hash of the sample key) of every sample."""
    texts, labels, held_out = [], [], []
    for sample in webdataset_pipeline(shards_folder, shuffle=0):
        texts.append(sample["txt"].decode())
        labels.append(int(sample["cls"]))
        held_out.append(xxhash.xxh3_64_intdigest(sample["__key__"].encode()) % 100 < HELD_OUT_PERCENT)
    return texts, labels, held_out


def train(shards_folder: Path, output_folder: Path) -> dict[str, float | int]:
    texts, labels, held_out = samples(shards_folder)
    train_rows = [i for i, h in enumerate(held_out) if not h]
    test_rows = [i for i, h in enumerate(held_out) if h]
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                          LogisticRegression(max_iter=1000, random_state=0))
    model.fit([texts[i] for i in train_rows], [labels[i] for i in train_rows])
    predicted = model.predict([texts[i] for i in test_rows]) if test_rows else []
    correct = sum(int(p == labels[i]) for p, i in zip(predicted, test_rows, strict=True))
    joblib.dump(model, output_folder / "model.joblib")
    return {"accuracy": correct / len(test_rows) if test_rows else 0.0, "train_samples": len(train_rows),
            "test_samples": len(test_rows)}


def main() -> None:
    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        pipes.log.info(f"training on {extras['dataset']} {extras['version']} ({extras['commit'][:12]})")
        metrics = train(Path(extras["shards_folder"]), Path(extras["output_folder"]))
        pipes.report_custom_message({"metrics": metrics})


if __name__ == "__main__":
    main()
