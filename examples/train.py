"""The training step of examples/train.sbatch: read the cached dataset offline, train, record the model.

It loads the pinned version with `dsm_assets.load` (local files only), trains a text classifier on its
`text` and `label` columns (replace `train` with your model code), saves the model into a folder and
records it with `dsm_assets.record_model`: lineage.json then states the version and commit this process
loaded. The orchestrator's `recorded_models` sensor reports it in Dagster; the node needs no network."""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

import dsm_assets


def train(dataset, folder: Path) -> dict[str, float | int]:
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    split = dataset.train_test_split(test_size=0.2, seed=0)
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                          LogisticRegression(max_iter=1000, random_state=0))
    model.fit(split["train"]["text"], split["train"]["label"])
    accuracy = float((model.predict(split["test"]["text"]) == split["test"]["label"]).mean())
    joblib.dump(model, folder / "model.joblib")
    return {"accuracy": accuracy, "train_samples": split["train"].num_rows, "test_samples": split["test"].num_rows}


def main(name: str, model: str | None) -> None:
    dataset = dsm_assets.load(name)  # raises, naming `dsm preflight`, if the cache is missing or stale
    label_column = next((c for c in ("label", "mode") if c in dataset.column_names), None)
    labels = Counter(dataset[label_column]) if label_column else {}
    print(f"training on {name}: {dataset.num_rows} rows, columns {dataset.column_names}, labels {dict(labels)}")
    if model is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        metrics = train(dataset, Path(tmp))
        recorded = dsm_assets.record_model(model, tmp, metrics=metrics, code=[__file__])
    print(f"recorded models/{model} {recorded.version}: accuracy {metrics['accuracy']:.3f}, in {recorded.folder}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "text_reviews", sys.argv[2] if len(sys.argv) > 2 else None)
