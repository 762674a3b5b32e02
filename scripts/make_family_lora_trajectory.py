#!/usr/bin/env python3
"""A 10-step TRL 1.16 ORPOTrainer run with a PEFT LoRA on a tiny Phi-3, Qwen3 or Gemma 2
(issue 24: LoRA per family; Phi-3's fused `qkv_proj` / `gate_up_proj` adapters trained as PEFT
trains them, Qwen3's q/k norms and Gemma 2's soft-caps and sliding window under the adapters).

Used by crates/orpo-train/tests/family_trajectory.rs (no Python needed at test time):
    python scripts/make_family_lora_trajectory.py [phi3] [qwen3] [gemma2]   # default: all three
    # writes tests/fixtures/lora/{family}_trajectory/

The run is the family trajectories' (scripts/make_family_fixtures.py for qwen3,
scripts/make_family_fixtures_gemma_phi.py for phi3 and gemma2: the family's trajectory config,
vocabulary 512, the first 40 pairs of tests/fixtures/train/pairs.jsonl, AdamW lr 1e-3 constant,
batch 4, sequential, f32) with `all-linear` LoRA r 4, alpha 8, no dropout. Each directory holds
`model/` (the frozen base), `adapter/` (the starting adapter, `lora_B` random so that every
factor gets a gradient from the first step) and `trajectory.json` (each step's loss, metrics
and grad_norm; each adapter tensor's final norm and update norm, PEFT's names).

PEFT writes `target_modules` from a Python set, whose order follows the string hash: the script
re-runs itself with PYTHONHASHSEED=0 so that a regenerated `adapter_config.json` is the
committed one byte for byte.
"""
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile

import torch

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_family_fixtures as qwen_fx  # noqa: E402
import make_family_fixtures_gemma_phi as fx  # noqa: E402

import peft  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl.experimental.orpo import ORPOConfig  # noqa: E402

# The family's tiny trajectory config and the seed of its base weights and starting adapter.
FAMILIES = {
    "phi3": (fx.FAMILIES["phi3"]["train_config"], 400),
    "qwen3": (qwen_fx.FAMILIES["qwen3"]["train_config"], 401),
    "gemma2": (fx.FAMILIES["gemma2"]["train_config"], 402),
}


def write_trajectory(name, tokenizer, rows):
    train_config, seed = FAMILIES[name]
    out = fx.ROOT / "tests" / "fixtures" / "lora" / f"{name}_trajectory"
    if out.exists():
        shutil.rmtree(out)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(train_config(), dtype=torch.float32,
                                             attn_implementation="eager")
    fx.perturb(model, std=0.1)
    model.save_pretrained(out / "model")
    (out / "model" / "generation_config.json").unlink(missing_ok=True)
    base = AutoModelForCausalLM.from_pretrained(out / "model", dtype=torch.float32,
                                                attn_implementation="eager")
    lora = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0, bias="none",
                      target_modules="all-linear")
    model = get_peft_model(base, lora)
    with torch.no_grad():
        for key, p in model.named_parameters():
            if "lora_B" in key:
                p.copy_(0.1 * torch.randn_like(p))
    model.save_pretrained(out / "adapter")
    (out / "adapter" / "README.md").unlink(missing_ok=True)
    initial = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    with tempfile.TemporaryDirectory() as tmp:
        args = ORPOConfig(output_dir=tmp, **{k: v for k, v in fx.SETTINGS.items()
                                             if k != "max_prompt_length"},
                          dataloader_num_workers=0, use_cpu=True, bf16=False, fp16=False,
                          eval_strategy="no", save_strategy="no", report_to="none",
                          disable_dropout=True, remove_unused_columns=False)
        callback = fx.LogCallback()
        trainer = fx.RecordingORPOTrainer(model=model, args=args,
                                          train_dataset=Dataset.from_list(rows),
                                          processing_class=tokenizer, callbacks=[callback])
        trainer.train()
        optim = getattr(trainer.args.optim, "value", str(trainer.args.optim))
        trainer.model.save_pretrained(pathlib.Path(tmp) / "final")
        final = load_file(str(pathlib.Path(tmp) / "final" / "adapter_model.safetensors"))
    assert len(trainer.recorded) == fx.STEPS and len(callback.logs) == fx.STEPS
    assert sorted(final) == sorted(initial)
    steps = []
    for i, (rec, log) in enumerate(zip(trainer.recorded, callback.logs, strict=True)):
        assert log["step"] == i + 1
        assert all(math.isfinite(v) for v in rec.values())
        steps.append({"step": i + 1, **rec, "grad_norm": float(log["grad_norm"]),
                      "learning_rate": float(log["learning_rate"]),
                      "logged_loss": float(log["loss"])})
    update = {k: final[k] - initial[k] for k in initial}
    result = {
        "about": f"TRL ORPOTrainer + PEFT LoRA (all-linear) reference trajectory for {name}; "
                 "written by scripts/make_family_lora_trajectory.py",
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__, "torch": torch.__version__},
        "settings": {**fx.SETTINGS, "optim": optim, "rows": fx.ROWS, "dtype": "float32",
                     "device": "cpu", "disable_dropout": True},
        "steps": steps,
        "final_weight_norms": fx.norms(final),
        "update_norms": fx.norms(update),
    }
    (out / "trajectory.json").write_text(json.dumps(result, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{name} LoRA trajectory: loss {steps[0]['loss']:.5f} -> {steps[-1]['loss']:.5f}, "
          f"grad_norm {steps[0]['grad_norm']:.4f} -> {steps[-1]['grad_norm']:.4f}; "
          f"{total / 1024:.0f} KiB")


def main():
    names = sys.argv[1:] or list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        sys.exit(f"unknown family {unknown}; known: {', '.join(FAMILIES)}")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(fx.TOKENIZER_DIR)
    rows = [json.loads(line) for line in (fx.TRAIN / "pairs.jsonl").read_text().splitlines()]
    rows = rows[:fx.ROWS]
    for name in names:
        write_trajectory(name, tokenizer, rows)


if __name__ == "__main__":
    main()
