#!/usr/bin/env python3
"""Writes `tests/fixtures/data/mixture.json`: TRL 1.16's `get_dataset` (trl/scripts/utils.py)
on a mixture of the bundled arith-prefs train and test files with fractions, as the `datasets`
key gives it: the fractions, and the prompts of the combined training split in order, for
`crates/orpo-train/tests/data_keys.rs`.

    python scripts/make_mixture_fixture.py
"""
import json
import os

from trl.scripts.utils import DatasetConfig, DatasetMixtureConfig, get_dataset

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FILES = [
    ("datasets/arith-prefs/data/train-00000-of-00001.parquet", 0.25),
    ("datasets/arith-prefs/data/test-00000-of-00001.parquet", 0.6),
]


def main():
    mixture = DatasetMixtureConfig(
        datasets=[
            DatasetConfig(path="parquet", data_files=os.path.join(ROOT, f), fraction=fr) for f, fr in FILES
        ]
    )
    train = get_dataset(mixture)["train"]
    fixture = {
        "datasets": [{"path": f, "split": "train", "fraction": fr} for f, fr in FILES],
        "prompts": list(train["prompt"]),
    }
    path = os.path.join(ROOT, "tests", "fixtures", "data", "mixture.json")
    with open(path, "w") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print("wrote", os.path.relpath(path), len(train), "rows")


if __name__ == "__main__":
    main()
