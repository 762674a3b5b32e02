#!/usr/bin/env python3
"""Tiny random Gemma 2, Gemma 3 (text) and Phi-3 / Phi-4-mini checkpoints, the logits transformers
gives for them, and a 10-step ORPO trajectory of TRL's ORPOTrainer on each.

Used by crates/orpo-model/tests/family_gemma_phi.rs and crates/orpo-train/tests/family_trajectory.rs
(no Python needed at test time):
    pip install torch transformers trl peft safetensors
    python scripts/make_family_fixtures_gemma_phi.py     # writes tests/fixtures/model/{gemma2,gemma3,phi3}/

Every family directory holds
- `config.json` + `model.safetensors`: a random checkpoint whose weights make every term of the
  family matter: norm weights away from their neutral value (Gemma's `1 + w` with w ≠ 0, Phi's
  w ≠ 1), soft-caps small enough that tanh bends (the script prints how often |x / cap| > 0.5),
  sequences (12) longer than the sliding window (4), `query_pre_attn_scalar` ≠ `head_dim`,
  `head_dim` ≠ `hidden_size / num_attention_heads` (Gemma);
- `expected.json`: input ids, attention masks and logits for a right- and a left-padded batch,
  computed by transformers in f32 with eager attention from the checkpoint as reloaded from disk.
  Phi-3 has two more batches of length 6: its LongRoPE uses the long factors when a sequence
  (12) exceeds `original_max_position_embeddings` (8) and the short ones otherwise (6), so both
  sets are checked;
- `trajectory/`: `model/` (the starting checkpoint, vocabulary 512 = the bundled tokenizer's)
  and `trajectory.json`: TRL's ORPOTrainer, 10 steps, batch 4, on the first 40 rows of
  tests/fixtures/train/pairs.jsonl (the settings of scripts/make_train_fixtures.py otherwise):
  each step's loss and metrics as computed in the forward pass, the logged grad_norm, and the
  per-tensor L2 norms of the final weights and of the total update. The script checks that TRL
  tokenizes those rows exactly as the Llama fixture records (tests/fixtures/train/trajectory.json),
  so the Rust test need not repeat the tokenization check.

The configurations. The logits checkpoints have their `config.json` rewritten into the form the
Hub's checkpoints have (transformers 4.x: `rope_theta` / `rope_scaling` at the top level, no
`layer_types`), which transformers still parses when it reloads them; the trajectory checkpoints
keep the form transformers 5 saves (`layer_types`, `rope_parameters`). Both are read.
- gemma2: sliding window on even layers (sliding, full), attention soft-cap 1.0 and final
  soft-cap 2.0 (the released models use 50 and 30, unreached at this size).
- gemma3: `rope_theta` 1e6 with `rope_scaling` linear x2 for the global layers,
  `rope_local_base_freq` 1e4 for the local ones, `sliding_window_pattern` 3 (layers sliding,
  sliding, full; the trajectory model has the same three in `layer_types`), q/k norms. Gemma 3's
  attention takes no soft-cap (transformers does not pass it), and its final logit soft-cap is
  null as in the released models.
- phi3: Phi-4-mini style: partial_rotary_factor 0.75, LongRoPE (`rope_scaling` type longrope
  with short and long factors; original_max_position_embeddings 8 of max_position_embeddings
  64, so cos/sin are scaled by sqrt(1 + ln 8 / ln 8) = sqrt 2; the trajectory model: 16 of 128,
  sequences of 22 to 24 tokens use the long factors), tied embeddings, grouped-query attention
  (2 heads, 1 kv head), fused `qkv_proj` and `gate_up_proj`.
"""

import json
import math
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    Phi3Config,
    PreTrainedTokenizerFast,
    TrainerCallback,
)
from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "model"
TRAIN = ROOT / "tests" / "fixtures" / "train"
TOKENIZER_DIR = ROOT / "datasets" / "arith-prefs" / "tokenizer"
VOCAB = 96
SEQ = 12
SHORT_SEQ = 6
LENGTHS = [12, 8, 5]
SHORT_LENGTHS = [6, 4, 3]
ROWS = 40
STEPS = 10

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


def gemma2(vocab, hidden=32, head_dim=16, intermediate=48):
    return Gemma2Config(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=head_dim,
        hidden_activation="gelu_pytorch_tanh", max_position_embeddings=128, rms_norm_eps=1e-6,
        rope_theta=10000.0, query_pre_attn_scalar=24, sliding_window=4,
        attn_logit_softcapping=1.0, final_logit_softcapping=2.0, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, attention_dropout=0.0,
        attn_implementation="eager")


def gemma3(vocab, hidden=32, head_dim=16, intermediate=48):
    return Gemma3TextConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=head_dim,
        hidden_activation="gelu_pytorch_tanh", max_position_embeddings=128, rms_norm_eps=1e-6,
        rope_theta=1_000_000.0, rope_local_base_freq=10_000.0,
        rope_scaling={"rope_type": "linear", "factor": 2.0},
        query_pre_attn_scalar=24, sliding_window=4, sliding_window_pattern=3,
        attn_logit_softcapping=None, final_logit_softcapping=None, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, attention_dropout=0.0,
        attn_implementation="eager")


def phi3(vocab, hidden=32, heads=2, original=8, intermediate=48):
    head_dim = hidden // heads
    rotary_half = int(head_dim * 0.75) // 2
    g = torch.Generator().manual_seed(1234)
    short = [round(1.0 + 0.5 * float(x), 4) for x in torch.rand(rotary_half, generator=g)]
    long = [round(1.0 + 6.0 * float(x), 4) for x in torch.rand(rotary_half, generator=g)]
    return Phi3Config(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=1, hidden_act="silu",
        max_position_embeddings=8 * original, original_max_position_embeddings=original,
        rms_norm_eps=1e-5, rope_theta=10000.0, partial_rotary_factor=0.75,
        rope_scaling={"type": "longrope", "short_factor": short, "long_factor": long},
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        attention_dropout=0.0, resid_pdrop=0.0, embd_pdrop=0.0, sliding_window=None,
        attn_implementation="eager")


def to_hub_gemma2(directory):
    """Rewrites a saved Gemma2Config into the form of the Hub's Gemma 2 `config.json` (no
    `layer_types`: even layers slide; `rope_theta` at the top level)."""
    path = directory / "config.json"
    c = json.loads(path.read_text())
    assert c.pop("layer_types") == ["sliding_attention", "full_attention"]
    rope = c.pop("rope_parameters")
    assert rope["rope_type"] == "default"
    c["rope_theta"] = rope["rope_theta"]
    path.write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")


def to_hub_phi3(directory):
    """Rewrites a saved Phi3Config into the form of the Hub's Phi-4-mini `config.json`
    (`rope_scaling` with `type` longrope, `rope_theta` and `partial_rotary_factor` at the top)."""
    path = directory / "config.json"
    c = json.loads(path.read_text())
    rope = c.pop("rope_parameters")
    c["rope_theta"] = rope["rope_theta"]
    c["partial_rotary_factor"] = rope["partial_rotary_factor"]
    c["rope_scaling"] = {"type": "longrope", "short_factor": rope["short_factor"],
                         "long_factor": rope["long_factor"]}
    path.write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")


def to_hub_gemma3(directory):
    """Rewrites a saved Gemma3TextConfig into the form of the Hub's Gemma 3 `config.json`."""
    path = directory / "config.json"
    c = json.loads(path.read_text())
    rope = c.pop("rope_parameters")
    c.pop("layer_types")
    c.pop("_sliding_window_pattern", None)
    full = dict(rope["full_attention"])
    c["rope_theta"] = full.pop("rope_theta")
    c["rope_local_base_freq"] = rope["sliding_attention"]["rope_theta"]
    c["rope_scaling"] = full if full.get("rope_type", "default") != "default" else None
    c["sliding_window_pattern"] = 3
    path.write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")


# The logits checkpoints are written in the Hub's (transformers 4.x) config format, the trajectory
# checkpoints in the one transformers 5 saves (`layer_types`, `rope_parameters`): both are read.
FAMILIES = {
    "gemma2": dict(config=gemma2, post=to_hub_gemma2,
                   train_config=lambda: gemma2(512, head_dim=8, intermediate=32)),
    "gemma3": dict(config=gemma3, post=to_hub_gemma3,
                   train_config=lambda: gemma3(512, head_dim=8, intermediate=32)),
    "phi3": dict(config=phi3, post=to_hub_phi3,
                 train_config=lambda: phi3(512, original=16, intermediate=32)),
}


def perturb(model, std=0.15):
    """Random everything, each norm weight away from its neutral value (0 for Gemma's `1 + w`)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                neutral = 0.0 if "gemma" in model.config.model_type else 1.0
                p.copy_(neutral + 0.2 * torch.randn_like(p))
            else:
                p.copy_(std * torch.randn_like(p))


def batch(seed, left, lengths, seq):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (len(lengths), seq), generator=g)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        if left:
            mask[row, seq - n:] = 1
        else:
            mask[row, :n] = 1
    return ids.masked_fill(mask == 0, 0), mask


class CapProbe:
    """Counts how often the soft-capped values reach the bent part of tanh (|x / cap| > 0.5)."""

    def __init__(self, model):
        self.model = model
        self.hits = {"attention": [0, 0], "final": [0, 0]}
        cap = getattr(model.config, "attn_logit_softcapping", None)
        self.handles = []
        if cap and "gemma2" in model.config.model_type:
            import transformers.models.gemma2.modeling_gemma2 as m

            original = torch.tanh
            probe = self

            def tanh(x):
                probe.hits["attention"][0] += int((x.abs() > 0.5).sum())
                probe.hits["attention"][1] += x.numel()
                return original(x)

            self._module, self._tanh = m, m.torch.tanh
            m.torch = _TorchShim(tanh)

    def final(self, logits):
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            x = logits / cap
            self.hits["final"][0] += int((x.abs() > 0.5).sum())
            self.hits["final"][1] += x.numel()

    def close(self):
        if hasattr(self, "_module"):
            self._module.torch = torch

    def report(self):
        return {k: f"{h}/{n}" for k, (h, n) in self.hits.items() if n}


class _TorchShim:
    """`torch` with `tanh` replaced, for counting inside the Gemma 2 attention."""

    def __init__(self, tanh):
        self.tanh = tanh

    def __getattr__(self, name):
        return getattr(torch, name)


def write_logits_case(name, spec, index):
    torch.manual_seed(100 + index)
    config = spec["config"](VOCAB)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32,
                                             attn_implementation="eager")
    perturb(model)
    directory = OUT / name
    if directory.exists():
        shutil.rmtree(directory)
    model.save_pretrained(directory, safe_serialization=True)
    if spec["post"]:
        spec["post"](directory)
    (directory / "generation_config.json").unlink(missing_ok=True)
    # Reload from disk, as a user would (and so that the rewritten Gemma 3 config is the one used).
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    expected = {"case": name, "transformers": transformers.__version__,
                "torch": torch.__version__, "batches": []}
    probe = CapProbe(model)
    shapes = [(SEQ, LENGTHS)] + ([(SHORT_SEQ, SHORT_LENGTHS)] if name == "phi3" else [])
    try:
        for seq, lengths in shapes:
            for left in (False, True):
                ids, mask = batch(200 + index + seq, left, lengths, seq)
                with torch.no_grad():
                    logits = model(input_ids=ids, attention_mask=mask).logits
                    if getattr(model.config, "final_logit_softcapping", None):
                        out = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
                        probe.final(model.lm_head(out))
                expected["batches"].append({
                    "padding": "left" if left else "right",
                    "input_ids": ids.tolist(),
                    "attention_mask": mask.tolist(),
                    "logits": [[[round(v, 7) for v in pos] for pos in row]
                               for row in logits.tolist()],
                })
    finally:
        probe.close()
    (directory / "expected.json").write_text(json.dumps(expected))
    files = sorted(p.name for p in directory.iterdir())
    print(f"{name}: {files}; soft-cap reach (|x/cap| > 0.5): {probe.report()}")


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
    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and "loss" in logs:
            self.logs.append({"step": state.global_step, **logs})


def norms(tensors):
    return {name: float(t.double().norm()) for name, t in sorted(tensors.items())}


def write_trajectory(name, spec, index, tokenizer, rows, llama_tokenized):
    directory = OUT / name / "trajectory"
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "model").mkdir(parents=True)
    torch.manual_seed(300 + index)
    config = spec["train_config"]()
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32,
                                             attn_implementation="eager")
    perturb(model, std=0.1)
    model.save_pretrained(directory / "model", safe_serialization=True)
    (directory / "model" / "generation_config.json").unlink(missing_ok=True)
    initial = load_file(str(directory / "model" / "model.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(directory / "model", dtype=torch.float32,
                                                 attn_implementation="eager")
    # How far the soft-caps bend on the first batch's chosen sequences (reported only).
    probe = CapProbe(model)
    try:
        first = [r["chosen_input_ids"] for r in llama_tokenized[:4]]
        width = max(map(len, first))
        ids = torch.tensor([x + [0] * (width - len(x)) for x in first])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in first])
        with torch.no_grad():
            model.eval()(input_ids=ids, attention_mask=mask)
            if getattr(model.config, "final_logit_softcapping", None):
                out = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
                probe.final(model.lm_head(out))
    finally:
        probe.close()
    print(f"{name} trajectory model: soft-cap reach {probe.report()}")
    with tempfile.TemporaryDirectory() as tmp:
        args = ORPOConfig(output_dir=tmp, **{k: v for k, v in SETTINGS.items()
                                             if k != "max_prompt_length"},
                          dataloader_num_workers=0, use_cpu=True, bf16=False, fp16=False,
                          eval_strategy="no", save_strategy="no", report_to="none",
                          disable_dropout=True, remove_unused_columns=False)
        callback = LogCallback()
        trainer = RecordingORPOTrainer(model=model, args=args,
                                       train_dataset=Dataset.from_list(rows),
                                       processing_class=tokenizer, callbacks=[callback])
        for i, r in enumerate(trainer.train_dataset):
            want = llama_tokenized[i]
            assert r["chosen_input_ids"] == want["chosen_input_ids"], i
            assert r["rejected_input_ids"] == want["rejected_input_ids"], i
            assert sum(1 for x in r["chosen_labels"] if x == -100) == want["chosen_prompt_len"], i
        trainer.train()
        optim = getattr(trainer.args.optim, "value", str(trainer.args.optim))
        final = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    assert len(trainer.recorded) == STEPS and len(callback.logs) == STEPS
    steps = []
    for i, (rec, log) in enumerate(zip(trainer.recorded, callback.logs, strict=True)):
        assert log["step"] == i + 1
        assert all(math.isfinite(v) for v in rec.values())
        steps.append({"step": i + 1, **rec, "grad_norm": float(log["grad_norm"]),
                      "learning_rate": float(log["learning_rate"]),
                      "logged_loss": float(log["loss"])})
    final = {k: v for k, v in final.items() if k in initial}
    update = {k: final[k] - initial[k] for k in initial}
    result = {
        "about": f"TRL ORPOTrainer reference trajectory for {name}; written by "
                 "scripts/make_family_fixtures_gemma_phi.py",
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__,
                     "torch": torch.__version__},
        "settings": {**SETTINGS, "optim": optim, "rows": ROWS, "dtype": "float32",
                     "device": "cpu", "disable_dropout": True},
        "steps": steps,
        "final_weight_norms": norms(final),
        "update_norms": norms(update),
    }
    (directory / "trajectory.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{name} trajectory: loss {steps[0]['loss']:.5f} -> {steps[-1]['loss']:.5f}, "
          f"grad_norm {steps[0]['grad_norm']:.4f} -> {steps[-1]['grad_norm']:.4f}")


def main():
    tokenizer = PreTrainedTokenizerFast.from_pretrained(TOKENIZER_DIR)
    assert len(tokenizer) == 512
    rows = [json.loads(line) for line in (TRAIN / "pairs.jsonl").read_text().splitlines()][:ROWS]
    llama = json.loads((TRAIN / "trajectory.json").read_text())["tokenized"][:ROWS]
    for index, (name, spec) in enumerate(FAMILIES.items()):
        write_logits_case(name, spec, index)
        write_trajectory(name, spec, index, tokenizer, rows, llama)
    for name in FAMILIES:
        total = sum(p.stat().st_size for p in (OUT / name).rglob("*") if p.is_file())
        print(f"{name}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
