#!/usr/bin/env python3
"""Reference training trajectory: TRL's ORPOTrainer, 20 steps on a tiny random Llama.

Usage (from the workspace root; CPU only, about half a minute):
    pip install torch transformers trl pyarrow safetensors
    python3 scripts/make_train_fixtures.py           # writes tests/fixtures/train/

Writes:
  model/config.json, model/model.safetensors
        A tiny random LlamaForCausalLM (hidden 64, 2 layers, 4 heads, 2 KV heads, vocabulary
        512 = the bundled tokenizer's, tied embeddings, no dropout), f32, seed 0: the starting
        weights of both runs.
  pairs.jsonl
        The first 80 rows of datasets/arith-prefs (standard format: prompt, chosen, rejected).
  trajectory.json
        The settings, the versions, TRL's tokenization of every row (`chosen_input_ids`,
        `rejected_input_ids` and the prompt length of each, which the labels mask), and for
        each of the 20 optimizer steps the loss and TRL's metrics as computed in the forward
        pass (exact float32 values, before the Trainer's logging rounds or averages them), the
        logged `grad_norm` and `learning_rate`, and the per-tensor L2 norms of the final weights
        and of the total update (final − initial).

The run: TRL ORPOTrainer, AdamW (the Trainer's default optimizer), learning_rate 1e-3, constant
schedule, no warm-up, batch 4, no gradient accumulation, max_steps 20 (one epoch of 80 rows),
weight_decay 0, max_grad_norm 1.0, beta 0.1, train_sampling_strategy "sequential" (dataset
order), f32 on the CPU, no evaluation, no dropout, max_length 256 / max_prompt_length 128 (no row
is truncated; the script checks it). The Rust side is crates/orpo-train/tests/trl_trajectory.rs.
"""

import json
import math
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast, TrainerCallback  # noqa: E402
from trl import ORPOConfig, ORPOTrainer  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "train"
TOKENIZER_DIR = ROOT / "datasets" / "arith-prefs" / "tokenizer"
DATA = sorted((ROOT / "datasets" / "arith-prefs" / "data").glob("train-*.parquet"))
ROWS = 80
STEPS = 20
MODEL_SEED = 0

SETTINGS = dict(
    learning_rate=1e-3,
    lr_scheduler_type="constant",
    warmup_steps=0,
    per_device_train_batch_size=4,
    gradient_accumulation_steps=1,
    max_steps=STEPS,
    weight_decay=0.0,
    max_grad_norm=1.0,
    adam_beta1=0.9,
    adam_beta2=0.999,
    adam_epsilon=1e-8,
    beta=0.1,
    max_length=256,
    max_prompt_length=128,
    logging_steps=1,
    seed=42,
    train_sampling_strategy="sequential",
)

MODEL_CONFIG = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    tie_word_embeddings=True,
    attention_dropout=0.0,
    pad_token_id=0,
    eos_token_id=2,
    bos_token_id=None,
)


class RecordingORPOTrainer(ORPOTrainer):
    """ORPOTrainer that keeps the exact loss and metrics of every training forward pass."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recorded = []

    def get_batch_loss_metrics(self, model, batch, train_eval="train"):
        loss, metrics = super().get_batch_loss_metrics(model, batch, train_eval)
        if train_eval == "train":
            self.recorded.append({"loss": loss.detach().item(), **metrics})
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


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "model").mkdir(parents=True)

    tokenizer = PreTrainedTokenizerFast.from_pretrained(TOKENIZER_DIR)
    assert tokenizer.bos_token_id is None and tokenizer.eos_token_id == 2 and tokenizer.pad_token_id == 0
    assert len(tokenizer) == MODEL_CONFIG["vocab_size"], len(tokenizer)

    # The starting weights: transformers' own initialisation (normal, std 0.02), seed 0.
    torch.manual_seed(MODEL_SEED)
    model = AutoModelForCausalLM.from_config(LlamaConfig(**MODEL_CONFIG), dtype=torch.float32)
    model.save_pretrained(OUT / "model", safe_serialization=True)
    initial = load_file(str(OUT / "model" / "model.safetensors"))

    table = pq.read_table(DATA[0]).slice(0, ROWS)
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in table.to_pylist()]
    with open(OUT / "pairs.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

    model = AutoModelForCausalLM.from_pretrained(OUT / "model", dtype=torch.float32)
    # TRL 0.25 writes `model.warnings_issued[...]`, an attribute transformers 5 no longer has.
    if not hasattr(model, "warnings_issued"):
        model.warnings_issued = {}
    with tempfile.TemporaryDirectory() as tmp:
        args = ORPOConfig(
            output_dir=tmp,
            **SETTINGS,
            dataloader_num_workers=0,
            use_cpu=True,
            bf16=False,
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
        tokenized = []
        for r in trainer.train_dataset:
            cp = sum(1 for label in r["chosen_labels"] if label == -100)
            rp = sum(1 for label in r["rejected_labels"] if label == -100)
            assert r["chosen_input_ids"][-1] == tokenizer.eos_token_id, "a completion was truncated"
            assert r["rejected_input_ids"][-1] == tokenizer.eos_token_id, "a completion was truncated"
            tokenized.append({
                "chosen_input_ids": r["chosen_input_ids"],
                "chosen_prompt_len": cp,
                "rejected_input_ids": r["rejected_input_ids"],
                "rejected_prompt_len": rp,
            })
        longest = max(max(len(t["chosen_input_ids"]), len(t["rejected_input_ids"])) for t in tokenized)
        assert longest <= SETTINGS["max_length"], longest
        trainer.train()
        optim = getattr(trainer.args.optim, "value", str(trainer.args.optim))
        final = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    assert len(trainer.recorded) == STEPS, len(trainer.recorded)
    assert len(callback.logs) == STEPS, len(callback.logs)
    steps = []
    for i, (rec, log) in enumerate(zip(trainer.recorded, callback.logs, strict=True)):
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
        "about": "TRL ORPOTrainer reference trajectory; written by scripts/make_train_fixtures.py",
        "versions": {
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "settings": {**SETTINGS, "optim": optim, "rows": ROWS, "model_seed": MODEL_SEED,
                     "dtype": "float32", "device": "cpu", "disable_dropout": True},
        "model_config": MODEL_CONFIG,
        "tokenized": tokenized,
        "steps": steps,
        "final_weight_norms": tensor_norms(final),
        "update_norms": tensor_norms(update),
    }
    (OUT / "trajectory.json").write_text(json.dumps(result, indent=1) + "\n")
    for s in steps:
        print(f"step {s['step']:2d}  loss {s['loss']:.6f}  nll {s['nll_loss']:.6f}  "
              f"acc {s['rewards/accuracies']:.2f}  grad_norm {s['grad_norm']:.4f}")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB), optim {optim}, longest sequence {longest}")


if __name__ == "__main__":
    main()
