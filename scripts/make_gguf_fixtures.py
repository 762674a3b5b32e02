"""Checks `orpo export --format gguf` against the real transformers GGUF loader and writes the
fixture the Rust test (crates/orpo-model/tests/gguf.rs) compares against.

    pip install torch transformers gguf safetensors
    cargo build -p orpo-cli
    python scripts/make_gguf_fixtures.py [--orpo target/debug/orpo]

The model is tests/fixtures/train/model (Llama, tied head, GQA, 64 wide) with the byte-level BPE
tokenizer of datasets/arith-prefs/tokenizer. For f16 and Q8_0 the script
1. exports the GGUF with the orpo binary,
2. loads it with `AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)` (transformers
   de-permutes q/k and dequantises with gguf-py) and with `AutoTokenizer` (the vocabulary,
   merges and special tokens from the GGUF metadata),
3. checks the tokenizer encodes like the original tokenizer.json, and the logits against the
   original safetensors model in f32: f16 within 1e-2; Q8_0 within the bound stated below,
4. writes tests/fixtures/gguf/train_model.json: the input ids, the logits transformers computes
   from each GGUF (the Rust test dequantises its own GGUF, runs our model on it and must
   reproduce these), and the measured differences to the f32 model.
"""

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import gguf
import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests/fixtures/train/model"
TOKENIZER = ROOT / "datasets/arith-prefs/tokenizer"
OUT = ROOT / "tests/fixtures/gguf/train_model.json"
INPUT_IDS = [[1, 87, 30, 19, 25, 13, 198, 64]]
# Bounds on max |logits(GGUF) - logits(f32)| on this input. Measured with transformers 5.25 /
# gguf 0.19 (also written into the fixture as max_abs_diff_*): f16 2.1e-4, Q8_0 7.0e-3. The Q8_0
# bound we state is 2e-2: about 3x the measured error (Q8_0's step is max|w|/127 per block of
# 32, so each weight moves by at most 0.4% of its block's largest magnitude).
BOUND = {"f16": 1e-2, "q8_0": 2e-2}
TEXTS = ["12 + 7 = 19", "<|im_start|>user\n3 * 4<|im_end|>\n", "  spaces and 1234567 digits!"]


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids)).logits.float().numpy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--orpo", default=str(ROOT / "target/debug/orpo"))
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "checkpoint"
        shutil.copytree(MODEL, ckpt)
        for f in TOKENIZER.iterdir():
            shutil.copy(f, ckpt / f.name)
        reference = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
        ref_logits = logits(reference, INPUT_IDS)
        ref_tok = AutoTokenizer.from_pretrained(ckpt)
        fixture = {
            "model": "tests/fixtures/train/model",
            "tokenizer": "datasets/arith-prefs/tokenizer",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "gguf": getattr(gguf, "__version__", "0.19.0"),
            "input_ids": INPUT_IDS,
        }
        for dtype in ["f16", "q8_0"]:
            name = f"model-{dtype}.gguf"
            subprocess.run(
                [args.orpo, "export", "--checkpoint", str(ckpt), "--out", str(tmp / name),
                 "--format", "gguf", "--dtype", dtype],
                check=True,
            )
            model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=name, dtype=torch.float32)
            got = logits(model, INPUT_IDS)
            diff = float(np.abs(got - ref_logits).max())
            print(f"{dtype}: max |logits(GGUF) - logits(f32 safetensors)| = {diff:.3e}")
            assert diff <= BOUND[dtype], f"{dtype}: {diff} > {BOUND[dtype]}"
            tok = AutoTokenizer.from_pretrained(tmp, gguf_file=name)
            for text in TEXTS:
                want = ref_tok(text, add_special_tokens=False)["input_ids"]
                have = tok(text, add_special_tokens=False)["input_ids"]
                assert want == have, f"{dtype} tokenizer: {text!r}: {have} != {want}"
            fixture[f"logits_{dtype}"] = np.round(got[0].astype(np.float64), 4).tolist()
            fixture[f"max_abs_diff_{dtype}"] = diff
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(fixture) + "\n")
        print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
