#!/usr/bin/env python3
"""Writes tiny random Llama-family checkpoints and the logits transformers gives for them.

Used by crates/orpo-model/tests/parity.rs (no Python needed at test time):
    pip install torch transformers safetensors
    python scripts/make_model_fixtures.py            # writes tests/fixtures/model/

Each case directory holds a Hugging Face checkpoint (config.json + safetensors, one of them
sharded, one stored in bf16) and `expected.json`: input ids, attention masks and logits for a
right-padded and a left-padded batch, computed by transformers in f32 with eager attention.
"""
import json
import pathlib
import shutil

import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "model"
VOCAB = 96
SEQ = 12
LENGTHS = [12, 8, 5]


def base(**kw):
    d = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
             rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=1, eos_token_id=2,
             pad_token_id=0, tie_word_embeddings=True, attn_implementation="eager")
    d.update(kw)
    return d


CASES = {
    "llama_tied_gqa": (LlamaConfig, base(), {}),
    "llama_untied_mha": (LlamaConfig, base(num_key_value_heads=4, tie_word_embeddings=False), {}),
    "qwen2_bias": (Qwen2Config, base(tie_word_embeddings=False, use_sliding_window=False), {}),
    "mistral_gqa": (MistralConfig, base(sliding_window=None, tie_word_embeddings=False), {}),
    "llama3_rope": (LlamaConfig, base(hidden_size=32, num_attention_heads=4, num_key_value_heads=1,
                                      rope_theta=500000.0, rope_scaling=dict(
                                          rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0, original_max_position_embeddings=8)),
                    {}),
    "llama_sharded": (LlamaConfig, base(tie_word_embeddings=False), {"max_shard_size": "20KB"}),
    "llama_bf16": (LlamaConfig, base(), {"bf16": True}),
}


def batch(seed, left):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (len(LENGTHS), SEQ), generator=g)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(LENGTHS):
        if left:
            mask[row, SEQ - n:] = 1
        else:
            mask[row, :n] = 1
    ids = ids.masked_fill(mask == 0, 0)
    return ids, mask


def main():
    torch.manual_seed(0)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for index, (name, (cls, kwargs, opts)) in enumerate(CASES.items()):
        torch.manual_seed(index)
        config = cls(**kwargs)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32,
                                                 attn_implementation="eager")
        # Random everything, biases and norm weights included, so that each one is tested.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "norm" in pname:
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                else:
                    p.copy_(0.15 * torch.randn_like(p))
        if opts.get("bf16"):
            model = model.to(torch.bfloat16)
        directory = OUT / name
        save_kw = {"safe_serialization": True}
        if "max_shard_size" in opts:
            save_kw["max_shard_size"] = opts["max_shard_size"]
        model.save_pretrained(directory, **save_kw)
        # Reload from disk, as a user would: an in-memory `.float()` of a bf16 model keeps
        # bf16-rounded rotary frequencies, which a fresh load does not.
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32,
                                                     attn_implementation="eager").eval()
        expected = {"case": name, "transformers": transformers.__version__,
                    "torch": torch.__version__, "batches": []}
        for left in (False, True):
            ids, mask = batch(100 + index, left)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits
            expected["batches"].append({
                "padding": "left" if left else "right",
                "input_ids": ids.tolist(),
                "attention_mask": mask.tolist(),
                "logits": [[[round(v, 7) for v in pos] for pos in row] for row in logits.tolist()],
            })
        (directory / "expected.json").write_text(json.dumps(expected))
        files = sorted(p.name for p in directory.iterdir())
        print(f"{name}: {files}")


if __name__ == "__main__":
    main()
