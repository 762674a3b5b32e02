#!/usr/bin/env python3
"""Tiny random Qwen3, SmolLM3 and sliding-window Mistral checkpoints, the logits transformers gives
for them, and a 10-step ORPO trajectory of TRL's ORPOTrainer on each.

Used by crates/orpo-model/tests/family.rs (no Python needed at test time):
    pip install torch transformers trl peft safetensors
    python scripts/make_family_fixtures.py     # writes tests/fixtures/model/{qwen3,smollm3,mistral_sw}/

The fixture layout and the machinery (perturbed weights, right- and left-padded batches of 12
tokens, the TRL trajectory on the first 40 rows of tests/fixtures/train/pairs.jsonl) are those of
scripts/make_family_fixtures_gemma_phi.py, imported from it; see its docstring for the files.

The configurations (every quirk reached by the 12-token batches):
- qwen3: per-head q_norm/k_norm (weights away from 1), head_dim 16 != hidden 32 / 4 heads, no
  biases, grouped-query attention (4 heads, 2 kv heads), use_sliding_window with window 4 from
  max_window_layers 1 (layer 0 global, layers 1 and 2 sliding).
- smollm3: no_rope_layers [1, 0, 1] (layer 1 is NoPE), tied embeddings (SmolLM3's default).
- mistral_sw: Mistral with sliding_window 4 on every layer (transformers' MistralModel takes the
  sliding-window mask whenever the key is set).
"""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import torch  # noqa: E402
from transformers import (  # noqa: E402
    MistralConfig,
    PreTrainedTokenizerFast,
    Qwen3Config,
    SmolLM3Config,
)

import make_family_fixtures_gemma_phi as base  # noqa: E402

COMMON = dict(max_position_embeddings=128, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2,
              pad_token_id=0, attention_dropout=0.0, attn_implementation="eager")


def qwen3(vocab, head_dim=16, intermediate=48):
    return Qwen3Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=intermediate, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=head_dim, hidden_act="silu",
        rope_theta=10000.0, attention_bias=False, use_sliding_window=True, sliding_window=4,
        max_window_layers=1, tie_word_embeddings=False, **COMMON)


def smollm3(vocab, intermediate=48):
    return SmolLM3Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=intermediate, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, hidden_act="silu", rope_theta=10000.0,
        no_rope_layers=[1, 0, 1], use_sliding_window=False, sliding_window=None,
        attention_bias=False, mlp_bias=False, tie_word_embeddings=True, **COMMON)


def mistral_sw(vocab, intermediate=48):
    return MistralConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=intermediate, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, hidden_act="silu", rope_theta=10000.0,
        sliding_window=4, tie_word_embeddings=False, **COMMON)


FAMILIES = {
    "qwen3": dict(config=qwen3, post=None,
                  train_config=lambda: qwen3(512, head_dim=8, intermediate=32)),
    "smollm3": dict(config=smollm3, post=None,
                    train_config=lambda: smollm3(512, intermediate=32)),
    "mistral_sw": dict(config=mistral_sw, post=None,
                       train_config=lambda: mistral_sw(512, intermediate=32)),
}


def main():
    tokenizer = PreTrainedTokenizerFast.from_pretrained(base.TOKENIZER_DIR)
    assert len(tokenizer) == 512
    rows = [json.loads(line)
            for line in (base.TRAIN / "pairs.jsonl").read_text().splitlines()][:base.ROWS]
    llama = json.loads((base.TRAIN / "trajectory.json").read_text())["tokenized"][:base.ROWS]
    for index, (name, spec) in enumerate(FAMILIES.items()):
        # Seeds apart from the Gemma/Phi ones (indices 0-2 there).
        base.write_logits_case(name, spec, 10 + index)
        base.write_trajectory(name, spec, 10 + index, tokenizer, rows, llama)
        path = base.OUT / name / "trajectory" / "trajectory.json"
        result = json.loads(path.read_text())
        result["about"] = (f"TRL ORPOTrainer reference trajectory for {name}; written by "
                           "scripts/make_family_fixtures.py")
        path.write_text(json.dumps(result, indent=1) + "\n")
        config = json.loads((base.OUT / name / "config.json").read_text())
        print(name, {k: config.get(k) for k in
                     ("layer_types", "no_rope_layers", "sliding_window", "use_sliding_window")})
    for name in FAMILIES:
        total = sum(p.stat().st_size for p in (base.OUT / name).rglob("*") if p.is_file())
        print(f"{name}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
