#!/usr/bin/env python3
"""Reference bf16 training trajectory: TRL's ORPOTrainer with `bf16=True` on the CPU.

Usage (from the workspace root; CPU only, under a minute; needs tests/fixtures/train/ from
scripts/make_train_fixtures.py):
    pip install torch transformers trl safetensors
    python3 scripts/make_bf16_trajectory.py          # writes the two paths below
    python3 scripts/make_bf16_trajectory.py --f32-check
        # instead: the f32 run of trajectory.json with this TRL, compared with the stored one
        # (writes nothing; checks that a TRL upgrade did not change the reference itself)

Writes:
  tests/fixtures/train/model-bf16/
        The trajectory fixture's tiny Llama (tests/fixtures/train/model, f32) cast to bfloat16
        and saved as transformers saves a bf16 checkpoint (`dtype: bfloat16` in config.json):
        the starting weights of a run "fine-tuning a pretrained model stored in bf16".
  tests/fixtures/train/trajectory-bf16.json
        The same 20-step run as trajectory.json (same settings, pairs and tokenization), but
        started from model-bf16 and trained with `bf16=True`: the Hugging Face Trainer on the CPU
        then runs the forward and backward passes under `torch.autocast("cpu", torch.bfloat16)`
        while the parameters, their gradients and AdamW stay float32 (the model is loaded with
        `dtype=float32`, which holds the bf16 values exactly: TRL's f32 master weights start
        from the same numbers as ours). For each step the loss and TRL's metrics from the
        forward pass, the logged grad_norm and learning_rate; the per-tensor L2 norms of the
        final (f32) weights and of the total update; and `f32_losses`, the losses of TRL's f32
        run from the same bf16-stored start (how far bf16 itself moves the trajectory: a yardstick
        for the Rust test's tolerance).

What autocast computes in bf16 here (torch's CPU autocast op lists): the linear layers (q/k/v/o,
the MLP, the LM head) and the attention products; what stays f32: the embedding lookup, the
residual stream (a bf16 projection output added to the f32 residual promotes to f32), RMSNorm
(transformers computes it in f32), the loss's log-softmax over the logits. orpo-rs with
`bf16: true` computes every activation in bf16 and keeps f32 master weights, so the two runs
agree to bf16 rounding, not to f32 rounding; crates/orpo-train/tests/bf16_trajectory.rs says how
far.
"""

import dataclasses
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback  # noqa: E402

try:  # TRL 1.x keeps ORPO in trl.experimental
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: E402
except ImportError:  # TRL 0.x
    from trl import ORPOConfig, ORPOTrainer  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "train"
MODEL_F32 = FIXTURE / "model"
MODEL_BF16 = FIXTURE / "model-bf16"
OUT = FIXTURE / "trajectory-bf16.json"
TOKENIZER_DIR = ROOT / "datasets" / "arith-prefs" / "tokenizer"


class RecordingORPOTrainer(ORPOTrainer):
    """ORPOTrainer that keeps the exact loss and metrics of every training forward pass."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recorded = []

    def get_batch_loss_metrics(self, model, batch, train_eval="train"):
        loss, metrics = super().get_batch_loss_metrics(model, batch, train_eval)
        if train_eval == "train":
            self.recorded.append({"loss": loss.detach().float().item(),
                                  **{k: float(v) for k, v in metrics.items()}})
        return loss, metrics


class LogCallback(TrainerCallback):
    """Keeps what the Trainer logs at each step (grad_norm, learning_rate)."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and "loss" in logs:
            self.logs.append({"step": state.global_step, **logs})


def tensor_norms(tensors):
    return {name: float(t.double().norm()) for name, t in sorted(tensors.items())}


def run(model, settings, rows, bf16):
    """Trains `model` with TRL; returns the trainer (with `.recorded`) and the logged steps."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(TOKENIZER_DIR)
    if not hasattr(model, "warnings_issued"):
        model.warnings_issued = {}
    with tempfile.TemporaryDirectory() as tmp:
        args = ORPOConfig(
            output_dir=tmp,
            **settings,
            dataloader_num_workers=0,
            use_cpu=True,
            bf16=bf16,
            fp16=False,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_dropout=True,
            remove_unused_columns=False,
        )
        callback = LogCallback()
        trainer = RecordingORPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[callback],
        )
        trainer.train()
    return trainer, callback.logs


def check_f32(reference, settings):
    """The f32 run of trajectory.json with the installed TRL: the worst relative loss difference."""
    rows = [json.loads(line) for line in (FIXTURE / "pairs.jsonl").read_text().splitlines()]
    model = AutoModelForCausalLM.from_pretrained(MODEL_F32, dtype=torch.float32)
    trainer, _ = run(model, settings, rows, bf16=False)
    worst = max(abs(r["loss"] - s["loss"]) / abs(s["loss"])
                for r, s in zip(trainer.recorded, reference["steps"], strict=True))
    print(f"f32 run with trl {trl.__version__} against trajectory.json (trl "
          f"{reference['versions']['trl']}): worst relative loss difference {worst:.2e}")


def main():
    reference = json.loads((FIXTURE / "trajectory.json").read_text())
    s = reference["settings"]
    settings = {k: s[k] for k in (
        "learning_rate", "lr_scheduler_type", "warmup_steps", "per_device_train_batch_size",
        "gradient_accumulation_steps", "max_steps", "weight_decay", "max_grad_norm",
        "adam_beta1", "adam_beta2", "adam_epsilon", "beta", "max_length", "max_prompt_length",
        "logging_steps", "seed", "train_sampling_strategy")}
    # TRL 1.x dropped `max_prompt_length`; no row of the fixture is truncated either way (the
    # tokenization is checked against trajectory.json's below), so the key is left out there.
    fields = {f.name for f in dataclasses.fields(ORPOConfig)}
    dropped = sorted(k for k in settings if k not in fields)
    settings = {k: v for k, v in settings.items() if k in fields}
    steps_total = settings["max_steps"]
    f32_check = "--f32-check" in sys.argv[1:]
    if f32_check:
        return check_f32(reference, settings)

    # The bf16-stored starting checkpoint.
    if MODEL_BF16.exists():
        shutil.rmtree(MODEL_BF16)
    model = AutoModelForCausalLM.from_pretrained(MODEL_F32, dtype=torch.bfloat16)
    model.save_pretrained(MODEL_BF16, safe_serialization=True)
    stored = load_file(str(MODEL_BF16 / "model.safetensors"))
    assert all(t.dtype == torch.bfloat16 for t in stored.values())
    config = json.loads((MODEL_BF16 / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16", config
    initial = {k: v.float() for k, v in stored.items()}

    rows = [json.loads(line) for line in (FIXTURE / "pairs.jsonl").read_text().splitlines()]

    # f32 parameters holding the bf16 values exactly: the masters of torch's mixed precision.
    model = AutoModelForCausalLM.from_pretrained(MODEL_BF16, dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    trainer, logs = run(model, settings, rows, bf16=True)
    # The tokenization is the f32 fixture's (the Rust test checks ours against that one).
    for r, e in zip(trainer.train_dataset, reference["tokenized"], strict=True):
        assert r["chosen_input_ids"] == e["chosen_input_ids"]
        assert r["rejected_input_ids"] == e["rejected_input_ids"]
    mixed = str(trainer.accelerator.mixed_precision)
    assert mixed == "bf16", mixed
    optim = getattr(trainer.args.optim, "value", str(trainer.args.optim))
    final = {k: v.detach().float().clone() for k, v in trainer.model.state_dict().items()}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    f32_trainer, _ = run(AutoModelForCausalLM.from_pretrained(MODEL_BF16, dtype=torch.float32),
                         settings, rows, bf16=False)
    assert str(f32_trainer.accelerator.mixed_precision) == "no"
    f32_losses = [r["loss"] for r in f32_trainer.recorded]

    assert len(trainer.recorded) == steps_total, len(trainer.recorded)
    assert len(logs) == steps_total, len(logs)
    steps = []
    for i, (rec, log) in enumerate(zip(trainer.recorded, logs, strict=True)):
        assert log["step"] == i + 1
        assert all(math.isfinite(v) for v in rec.values())
        steps.append({
            "step": i + 1,
            **rec,
            "grad_norm": float(log["grad_norm"]),
            "learning_rate": float(log["learning_rate"]),
            "logged_loss": float(log["loss"]),
        })
    final = {k: v for k, v in final.items() if k in initial}
    update = {k: final[k] - initial[k] for k in initial}
    result = {
        "about": "TRL ORPOTrainer with bf16=True (CPU autocast, f32 master weights) from the "
                 "bf16-stored model-bf16; written by scripts/make_bf16_trajectory.py",
        "versions": {
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "settings": {**settings, "optim": optim, "rows": len(rows), "model": "model-bf16",
                     "dtype": "bfloat16 autocast, float32 parameters", "mixed_precision": mixed,
                     "device": "cpu", "disable_dropout": True,
                     "not_in_this_trl": dropped},
        "steps": steps,
        "final_weight_norms": tensor_norms(final),
        "update_norms": tensor_norms(update),
        "f32_losses": f32_losses,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for st, l32 in zip(steps, f32_losses, strict=True):
        print(f"step {st['step']:2d}  loss {st['loss']:.6f} (f32 {l32:.6f}, rel "
              f"{abs(st['loss'] - l32) / abs(l32):.1e})  nll {st['nll_loss']:.6f}  "
              f"acc {st['rewards/accuracies']:.2f}  grad_norm {st['grad_norm']:.4f}")
    print(f"wrote {MODEL_BF16} and {OUT}; trl {trl.__version__}, transformers "
          f"{transformers.__version__}, torch {torch.__version__}, optim {optim}")


if __name__ == "__main__":
    main()
