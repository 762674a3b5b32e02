#!/usr/bin/env python3
"""Writes the bundled `arith-prefs` preference datasets (CC0-1.0, generated).

    python scripts/make_demo_dataset.py            # writes datasets/arith-prefs{,-chat}/data/*.parquet

Each pair asks for a sum or difference of two 2-digit numbers; the chosen answer is right, the
rejected one is subtly wrong (off by 1, 2 or 10, or two digits swapped). A tiny model learns the
preference in minutes on a CPU.

- `datasets/arith-prefs`: standard format, explicit prompt (`prompt`, `chosen`, `rejected`
  strings, plus `id` and `op` columns that loaders ignore).
- `datasets/arith-prefs-chat`: the same pairs, conversational with an implicit prompt
  (`chosen`/`rejected` are lists of `{role, content}` structs holding the user turn too).

Deterministic: fixed seed, so the files are reproducible byte for byte with the same pyarrow.
"""
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20240312
N_TRAIN = 3000
N_TEST = 300
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "datasets")


def wrong_answer(rng: random.Random, right: int) -> int:
    while True:
        kind = rng.random()
        if kind < 0.6:
            cand = right + rng.choice([-2, -1, 1, 2])
        elif kind < 0.85:
            cand = right + rng.choice([-10, 10])
        else:
            s = str(right)
            if len(s) < 2 or s[0] == s[1]:
                continue
            cand = int(s[1] + s[0] + s[2:]) if s[1] != "0" else right + 1
        if cand != right and cand >= 0:
            return cand


def make_pairs():
    rng = random.Random(SEED)
    combos = set()
    rows = []
    while len(rows) < N_TRAIN + N_TEST:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        op = rng.choice(["+", "-"])
        if op == "-" and b > a:
            a, b = b, a
        if (a, op, b) in combos:
            continue
        combos.add((a, op, b))
        right = a + b if op == "+" else a - b
        wrong = wrong_answer(rng, right)
        rows.append(
            {
                "id": len(rows),
                "op": op,
                "question": f"What is {a} {op} {b}?",
                "right": f"{a} {op} {b} = {right}.",
                "wrong": f"{a} {op} {b} = {wrong}.",
            }
        )
    return rows[:N_TRAIN], rows[N_TRAIN:]


def make_small_pairs():
    """Single-digit sums and differences (minuend up to 18): 245 distinct questions, each asked
    many times with different wrong answers. The held-out split holds pairs not in the training
    split (same questions, other wrong answers or orders): the preference is learnable by a
    tiny model from scratch in a few minutes, which the 2-digit set is not."""
    rng = random.Random(SEED + 1)
    questions = [(a, "+", b) for a in range(10) for b in range(10)]
    questions += [(a, "-", b) for a in range(19) for b in range(10) if a >= b]
    combos = set()
    for a, op, b in questions:
        right = a + b if op == "+" else a - b
        for _ in range(40):
            combos.add((a, op, b, wrong_answer(rng, right)))
    combos = sorted(combos)
    rng.shuffle(combos)
    test, rest = combos[:N_TEST], combos[N_TEST:]
    train = [rng.choice(rest) for _ in range(N_TRAIN)]  # with replacement: ~1000 distinct pairs

    def row(i, c):
        a, op, b, wrong = c
        right = a + b if op == "+" else a - b
        return {"id": i, "op": op, "question": f"What is {a} {op} {b}?",
                "right": f"{a} {op} {b} = {right}.", "wrong": f"{a} {op} {b} = {wrong}."}

    return [row(i, c) for i, c in enumerate(train)], [row(i, c) for i, c in enumerate(test)]


def write(table: pa.Table, name: str, split: str):
    out = os.path.join(ROOT, name, "data")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{split}-00000-of-00001.parquet")
    pq.write_table(table, path, compression="snappy", row_group_size=1000)
    print(f"wrote {os.path.relpath(path)} ({table.num_rows} rows)")


def main():
    msg = pa.struct([("content", pa.string()), ("role", pa.string())])
    for split, rows in zip(["train", "test"], make_small_pairs()):
        def conv_small(r, answer):
            return [{"content": r["question"], "role": "user"},
                    {"content": answer, "role": "assistant"}]
        chat = pa.table({
            "id": pa.array([r["id"] for r in rows], pa.int64()),
            "chosen": pa.array([conv_small(r, r["right"]) for r in rows], pa.list_(msg)),
            "rejected": pa.array([conv_small(r, r["wrong"]) for r in rows], pa.list_(msg)),
        })
        write(chat, "arith-small-chat", split)
    for split, rows in zip(["train", "test"], make_pairs()):
        standard = pa.table(
            {
                "id": pa.array([r["id"] for r in rows], pa.int64()),
                "op": [r["op"] for r in rows],
                "prompt": [r["question"] for r in rows],
                "chosen": [" " + r["right"] for r in rows],
                "rejected": [" " + r["wrong"] for r in rows],
            }
        )
        write(standard, "arith-prefs", split)

        def conv(r, answer):
            return [
                {"content": r["question"], "role": "user"},
                {"content": answer, "role": "assistant"},
            ]

        chat = pa.table(
            {
                "id": pa.array([r["id"] for r in rows], pa.int64()),
                "chosen": pa.array([conv(r, r["right"]) for r in rows], pa.list_(msg)),
                "rejected": pa.array([conv(r, r["wrong"]) for r in rows], pa.list_(msg)),
            }
        )
        write(chat, "arith-prefs-chat", split)


if __name__ == "__main__":
    main()
