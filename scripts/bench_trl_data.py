#!/usr/bin/env python3
"""Times TRL v0.25's ORPO dataset preparation on the rows `bench_data` uses.

    python scripts/bench_trl_data.py [--repeat 4] [--num-proc N]

Builds the same 12,000-row tables as `cargo run -p orpo-data --release --example bench_data`
(the bundled `arith-prefs-chat` and `arith-prefs` train splits repeated 4 times), then runs what
`ORPOTrainer.__init__` runs: `Dataset.from_parquet`, `map(maybe_extract_prompt)`,
`map(maybe_apply_chat_template)`, `map(tokenize_row)` (max_length 1024, max_prompt_length 512),
with the bundled tokenizer (a fast tokenizer). Caching is off. Prints rows/s, best of 3.
"""
import argparse
import os
import tempfile
import time

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from transformers import AutoTokenizer
from trl.data_utils import maybe_apply_chat_template, maybe_extract_prompt
from trl.trainer.orpo_trainer import ORPOTrainer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "datasets")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--num-proc", type=int, default=None)
    args = ap.parse_args()
    datasets.disable_caching()
    datasets.disable_progress_bars()
    tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "arith-prefs", "tokenizer"))
    t = ORPOTrainer.__new__(ORPOTrainer)
    t.processing_class = tok
    t.is_encoder_decoder = False
    t.max_length = 1024
    t.max_prompt_length = 512
    t.truncation_mode = "keep_end"
    t.label_pad_token_id = -100
    tmp = tempfile.mkdtemp()
    for name in ["arith-prefs-chat", "arith-prefs"]:
        src = pq.read_table(os.path.join(ROOT, name, "data", "train-00000-of-00001.parquet"))
        path = os.path.join(tmp, f"{name}.parquet")
        pq.write_table(pa.concat_tables([src] * args.repeat), path)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            ds = datasets.Dataset.from_parquet(path)
            ds = ds.map(maybe_extract_prompt, num_proc=args.num_proc)
            ds = ds.map(maybe_apply_chat_template, fn_kwargs={"tokenizer": tok}, num_proc=args.num_proc)
            ds = ds.map(t.tokenize_row, num_proc=args.num_proc)
            best = min(best, time.perf_counter() - t0)
        print(f"{name:>17}: {len(ds)} rows in {best:.3f} s = {len(ds) / best:8.0f} rows/s (num_proc={args.num_proc})")


if __name__ == "__main__":
    main()
