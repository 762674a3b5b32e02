#!/usr/bin/env python3
"""Writes tiny base models, PEFT LoRA adapters on them, and what PEFT computes with them.

Used by crates/orpo-model/tests/lora.rs (no Python needed at test time):
    pip install torch transformers peft safetensors
    python scripts/make_lora_fixtures.py             # writes tests/fixtures/lora/

Each case directory holds
- `base/`: a Hugging Face checkpoint (random weights, norms and biases included),
- `adapter/`: the adapter directory `PeftModel.save_pretrained` writes
  (`adapter_config.json`, `adapter_model.safetensors`), with random `lora_A` *and* `lora_B`
  (PEFT initialises B to zero, which would make the adapter a no-op),
- `expected.json`: a right-padded batch, the logits of the PEFT model on it (eval mode, f32,
  eager attention), and for one training step the loss (mean next-token cross-entropy over the
  non-padding positions) and the gradient of every `lora_A` / `lora_B` tensor (PEFT layout).
"""
import json
import pathlib
import shutil

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "lora"
VOCAB = 96
SEQ = 10
LENGTHS = [10, 7, 4]


def base(**kw):
    d = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
             rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=1, eos_token_id=2,
             pad_token_id=0, tie_word_embeddings=True, attn_implementation="eager")
    d.update(kw)
    return d


CASES = {
    # Every projection (PEFT's `all-linear`), untied head, standard scaling alpha / r.
    "llama_all_linear": (LlamaConfig, base(tie_word_embeddings=False),
                         dict(r=4, lora_alpha=8, target_modules="all-linear")),
    # Some projections only, q/k/v biases in the base, rank-stabilised scaling alpha / sqrt(r).
    "qwen2_qv_down_rslora": (Qwen2Config, base(use_sliding_window=False),
                             dict(r=2, lora_alpha=6, target_modules=["q_proj", "v_proj", "down_proj"],
                                  use_rslora=True)),
}


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (len(LENGTHS), SEQ), generator=g)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(LENGTHS):
        mask[row, :n] = 1
    return ids.masked_fill(mask == 0, 0), mask


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for index, (name, (cls, kwargs, lora_kwargs)) in enumerate(CASES.items()):
        torch.manual_seed(100 + index)
        case = OUT / name
        model = AutoModelForCausalLM.from_config(cls(**kwargs), dtype=torch.float32,
                                                 attn_implementation="eager")
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "norm" in pname:
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                else:
                    p.copy_(0.15 * torch.randn_like(p))
        model.save_pretrained(case / "base")
        (case / "base" / "generation_config.json").unlink(missing_ok=True)

        lora = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", **lora_kwargs)
        peft_model = get_peft_model(model, lora)
        with torch.no_grad():
            for pname, p in peft_model.named_parameters():
                if "lora_" in pname:
                    p.copy_(0.2 * torch.randn_like(p))
        peft_model.save_pretrained(case / "adapter")
        (case / "adapter" / "README.md").unlink(missing_ok=True)

        # Reload from disk, as a user would, so the fixture checks what was written.
        base_model = AutoModelForCausalLM.from_pretrained(case / "base", dtype=torch.float32,
                                                          attn_implementation="eager")
        loaded = peft.PeftModel.from_pretrained(base_model, case / "adapter", is_trainable=True)
        ids, mask = batch(index)
        loaded.eval()
        with torch.no_grad():
            logits = loaded(input_ids=ids, attention_mask=mask).logits
        loaded.train()
        out = loaded(input_ids=ids, attention_mask=mask)
        labels = ids[:, 1:]
        valid = mask[:, 1:].bool()
        logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
        nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        loss = nll[valid].mean()
        loss.backward()
        grads = {}
        for pname, p in loaded.named_parameters():
            if p.requires_grad:
                assert "lora_" in pname, pname
                key = pname.replace(".default", "")
                grads[key] = p.grad.flatten().tolist()
        expected = {
            "scaling": lora_kwargs["lora_alpha"] / (lora_kwargs["r"] ** 0.5
                                                    if lora_kwargs.get("use_rslora")
                                                    else lora_kwargs["r"]),
            "input_ids": ids.tolist(),
            "attention_mask": mask.tolist(),
            "logits": logits.flatten().tolist(),
            "shape": list(logits.shape),
            "loss": loss.item(),
            "grads": grads,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": peft.__version__},
        }
        (case / "expected.json").write_text(json.dumps(expected))
        print(f"{case}: {len(grads)} adapter tensors, loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
