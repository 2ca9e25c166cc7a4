"""The training step of examples/train.sbatch: read the cached dataset offline and train on it.

A stand-in for real training: it loads the pinned version with `dsm_assets.load` (local files only) and
reports what it would train on. Replace the body of `train` with your model code."""

from __future__ import annotations

import sys
from collections import Counter

import dsm_assets


def train(name: str) -> None:
    dataset = dsm_assets.load(name)  # raises, naming `dsm preflight`, if the cache is missing or stale
    label_column = next((c for c in ("label", "mode") if c in dataset.column_names), None)
    labels = Counter(dataset[label_column]) if label_column else {}
    print(f"training on {name}: {dataset.num_rows} rows, columns {dataset.column_names}, labels {dict(labels)}")


if __name__ == "__main__":
    train(sys.argv[1] if len(sys.argv) > 1 else "text_reviews")
