"""Regenerate the sample raw data shipped in dsm_assets/sample_data/ (deterministic: same bytes every run).

    python scripts/make_sample_data.py

The files are committed; `make demo` copies them into the data dir. They carry the faults the cleaning
step exists for: duplicates, null and unknown labels, stray whitespace, one invalid UTF-8 line, and
parallel chord annotation layers."""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "dsm_assets" / "sample_data"

POSITIVE = ["great", "wonderful", "excellent", "delightful", "superb", "lovely", "fantastic", "solid"]
NEGATIVE = ["terrible", "awful", "disappointing", "broken", "useless", "poor", "dreadful", "flimsy"]
NEUTRAL = ["okay", "average", "fine", "ordinary", "acceptable", "standard", "plain", "typical"]
THINGS = ["battery", "screen", "delivery", "manual", "price", "sound", "keyboard", "camera", "strap", "lid"]
INTENSIFIERS = ["", "really ", "very ", "quite ", "truly ", "pretty "]
TEMPLATES = ["The {thing} is {word}.", "Honestly a {word} {thing}.", "{word} {thing}, would say so again.",
             "I found the {thing} {word} overall.", "Our {thing} arrived and it was {word}."]


def text_reviews(rng: random.Random) -> bytes:
    rows: list[tuple[str, str]] = []
    for _ in range(560):
        label, words = rng.choice([("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)])
        word = rng.choice(INTENSIFIERS) + rng.choice(words)
        text = rng.choice(TEMPLATES).format(thing=rng.choice(THINGS), word=word)
        rows.append((text[0].upper() + text[1:], label))
    rows += [rows[rng.randrange(len(rows))] for _ in range(25)]  # exact duplicates
    rows += [(f"Review pending moderation #{i}.", "") for i in range(8)]  # null labels
    unknown = ["postive", "spam", "N/A", "5 stars", "neg", "??", "positive!", "mixed"]  # labels outside the set
    rows += [(f"The {t} is {w}.", bad) for t, w, bad in zip(THINGS[:8], POSITIVE, unknown, strict=True)]
    rng.shuffle(rows)
    lines = [b"id,text,label"]
    for i, (text, label) in enumerate(rows, start=1):
        if i % 37 == 0:
            text, label = f"  {text}   ", f" {label} "  # stray whitespace
        lines.append(f'{i},"{text}",{label}'.encode())
    lines.insert(200, b'999999,"Caf\xe9 au lait was \xff\xfe great",positive')  # one invalid UTF-8 line
    return b"\n".join(lines) + b"\n"


ROOTS = ["C", "D", "E", "F", "G", "A", "Bb"]
PROGRESSIONS = {  # roman numerals over a major key, with basic and extended qualities per degree
    "I": (0, "", "maj7"), "ii": (2, "m", "m7"), "iii": (4, "m", "m7"), "IV": (5, "", "maj7"),
    "V": (7, "", "7"), "vi": (9, "m", "m7"),
}
NOTES = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]


def chords(rng: random.Random) -> bytes:
    items = []
    for i in range(1, 281):
        key = rng.choice(ROOTS)
        romans = [rng.choice(list(PROGRESSIONS)) for _ in range(rng.randint(4, 12))]
        base = NOTES.index(key)
        basic, extended = [], []
        for r in romans:
            step, q_basic, q_ext = PROGRESSIONS[r]
            root = NOTES[(base + step) % 12]
            basic.append(root + q_basic)
            extended.append(root + q_ext)
        items.append({
            "id": i, "title": f"Etude {i:03d}", "key": key, "mode": "major", "tempo": rng.randint(60, 180),
            "chord_layer_basic": basic, "chord_layer_extended": extended, "chord_layer_roman": romans,
        })
    items += [dict(items[rng.randrange(len(items))]) for _ in range(12)]  # duplicate ids
    for item in rng.sample(items, 5):
        item["chord_layer_basic"] = None  # missing canonical layer
    for item in rng.sample(items, 4):
        item["mode"] = "dorian"  # not in the allowed set
    return "".join(json.dumps(it, sort_keys=True) + "\n" for it in items).encode()


def main() -> None:
    rng = random.Random(20261123)
    (OUT / "text_reviews").mkdir(parents=True, exist_ok=True)
    (OUT / "chords").mkdir(parents=True, exist_ok=True)
    (OUT / "text_reviews" / "reviews.csv").write_bytes(text_reviews(rng))
    (OUT / "chords" / "chords.jsonl").write_bytes(chords(rng))
    print(f"wrote sample data under {OUT}")


if __name__ == "__main__":
    main()
