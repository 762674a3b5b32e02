#!/usr/bin/env python3
"""PEFT LoRA adapters on tiny Qwen3, Gemma 2 and Phi-3 checkpoints (issue 24: LoRA per family).

Used by crates/orpo-model/tests/family_lora.rs (no Python needed at test time):
    pip install torch transformers peft safetensors
    python scripts/make_family_lora_fixtures.py    # writes tests/fixtures/lora/{qwen3,gemma2,phi3}_*/

The same layout as scripts/make_lora_fixtures.py (whose helpers it uses): `base/` (the family's
checkpoint from the family fixture scripts' configs, every norm away from neutral, Gemma 2's
soft-caps reached, sequences longer than the sliding window and Phi-3's LongRoPE original
length), `adapter/` (what `PeftModel.save_pretrained` writes, random `lora_A` and `lora_B`) and
`expected.json` (a right-padded batch, the PEFT model's logits, one step's loss and adapter
gradients). Phi-3 has two cases: `o_proj` and `down_proj` only, and `all-linear`, whose adapters
on the fused `qkv_proj` / `gate_up_proj` orpo-model splits with a shared `A`.
"""
import json
import pathlib
import shutil
import sys

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_family_fixtures as qwen_smol  # noqa: E402
import make_family_fixtures_gemma_phi as gemma_phi  # noqa: E402
import make_lora_fixtures as lora_fixtures  # noqa: E402

OUT = lora_fixtures.OUT
VOCAB = lora_fixtures.VOCAB

CASES = {
    # Every projection, untied head, q/k norms.
    "qwen3_all_linear": (lambda: qwen_smol.qwen3(VOCAB), None,
                         dict(r=4, lora_alpha=8, target_modules="all-linear")),
    # Every projection, sandwich norms, soft-caps, sliding window 4, rsLoRA scaling.
    "gemma2_all_linear_rslora": (lambda: gemma_phi.gemma2(VOCAB), gemma_phi.to_hub_gemma2,
                                 dict(r=2, lora_alpha=6, target_modules="all-linear",
                                      use_rslora=True)),
    # The projections Phi-3 does not fuse, partial rotary with LongRoPE's long factors.
    "phi3_o_down": (lambda: gemma_phi.phi3(VOCAB), gemma_phi.to_hub_phi3,
                    dict(r=4, lora_alpha=8, target_modules=["o_proj", "down_proj"])),
    # Every projection, the fused qkv_proj and gate_up_proj included: PEFT's one LoRA on each
    # (A [r, in], B [q + k + v out, r]), which orpo-model splits sharing A.
    "phi3_all_linear": (lambda: gemma_phi.phi3(VOCAB), gemma_phi.to_hub_phi3,
                        dict(r=4, lora_alpha=8, target_modules="all-linear")),
}


def main():
    for index, (name, (make_config, post, lora_kwargs)) in enumerate(CASES.items()):
        torch.manual_seed(300 + index)
        case = OUT / name
        if case.exists():
            shutil.rmtree(case)
        model = AutoModelForCausalLM.from_config(make_config(), dtype=torch.float32,
                                                 attn_implementation="eager")
        gemma_phi.perturb(model)
        model.save_pretrained(case / "base")
        (case / "base" / "generation_config.json").unlink(missing_ok=True)
        if post is not None:
            post(case / "base")

        lora = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", **lora_kwargs)
        peft_model = get_peft_model(model, lora)
        with torch.no_grad():
            for pname, p in peft_model.named_parameters():
                if "lora_" in pname:
                    p.copy_(0.2 * torch.randn_like(p))
        peft_model.save_pretrained(case / "adapter")
        (case / "adapter" / "README.md").unlink(missing_ok=True)

        # Reload from disk (the rewritten config included), as a user would.
        base_model = AutoModelForCausalLM.from_pretrained(case / "base", dtype=torch.float32,
                                                          attn_implementation="eager")
        loaded = peft.PeftModel.from_pretrained(base_model, case / "adapter", is_trainable=True)
        ids, mask = lora_fixtures.batch(index)
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
                grads[pname.replace(".default", "")] = p.grad.flatten().tolist()
        r = lora_kwargs["r"]
        expected = {
            "scaling": lora_kwargs["lora_alpha"] / (r ** 0.5 if lora_kwargs.get("use_rslora")
                                                    else r),
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
