#!/usr/bin/env python3
"""TRL's ORPOTrainer at the SmolLM2-135M shape: the figures that
`crates/orpo-train/examples/bench_train.rs` measures for orpo-rs (issue 9).

    python scripts/bench_trl.py [--pairs 2] [--prompt 128] [--completion 384] [--steps 12]
                                [--warmup 2] [--layers 30] [--threads 2] [--grad-checkpointing]
                                [--bf16]

Random weights (hidden 576, 30 layers, 9 heads / 3 KV heads, intermediate 1536, vocab 49152,
tied), f32 weights, CPU, `torch.set_num_threads(threads)`; `--bf16` is TRL 1.x's default
(`bf16=True`: transformers autocasts the forward to bf16 on the CPU, weights and AdamW stay f32).
TRL 1.x's ORPO (`trl.experimental.orpo`) and TRL 0.2x's (`trl.ORPOTrainer`) both work. The rows are tokenized to the same synthetic
ids as the Rust bench (TRL's `tokenize_row` is overridden, so tokenization is not timed here;
data preparation is `scripts/bench_trl_data.py`). Every step is a real `Trainer.train()` step:
collation, forward, TRL's ORPO loss, backward, clipping (max_grad_norm 1.0), AdamW.

Prints one JSON line: median seconds per step after `warmup` steps, training tokens per second
(non-padding tokens of chosen and rejected), peak RSS (ru_maxrss), and seconds from process start
to the end of the first step (imports included).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time


def seconds_since_process_start() -> float:
    with open("/proc/self/stat") as f:
        after_comm = f.read().rsplit(")", 1)[1].split()
    start_ticks = float(after_comm[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def synthetic_ids(seed: int, length: int, vocab: int) -> list[int]:
    # The same ids as bench_train.rs's `synthetic_pairs`.
    return [((i * 7919 + seed * 104_729) % (vocab - 3)) + 3 for i in range(length)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--completion", type=int, default=384)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="TRL 1.x's default: autocast to bf16")
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast, TrainerCallback
    import trl
    try:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # TRL 1.x
    except ImportError:
        from trl import ORPOConfig, ORPOTrainer  # TRL 0.2x

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocab = 49152
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=576, intermediate_size=1536, num_hidden_layers=args.layers,
        num_attention_heads=9, num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=100000.0,
        max_position_embeddings=8192, tie_word_embeddings=True,
    )
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if not hasattr(model, "warnings_issued"):
        model.warnings_issued = {}  # TRL 0.25 sets a flag that transformers 5 models lack
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(os.path.join(root, "datasets/arith-prefs/tokenizer"))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    prompt_len, completion_len = args.prompt, args.completion

    class SyntheticOrpoTrainer(ORPOTrainer):
        def tokenize_row(self, feature, model=None):
            p = int(feature["pair"])
            chosen = synthetic_ids(2 * p, prompt_len + completion_len, vocab)
            rejected = chosen[:prompt_len] + synthetic_ids(2 * p + 1, prompt_len + completion_len, vocab)[prompt_len:]
            labels = lambda ids: [-100] * prompt_len + ids[prompt_len:]
            return {
                "prompt_input_ids": chosen[:prompt_len],
                "prompt_attention_mask": [1] * prompt_len,
                "chosen_input_ids": chosen,
                "chosen_attention_mask": [1] * len(chosen),
                "chosen_labels": labels(chosen),
                "rejected_input_ids": rejected,
                "rejected_attention_mask": [1] * len(rejected),
                "rejected_labels": labels(rejected),
            }

    total = args.warmup + args.steps
    # Every step trains on the same pairs, as the Rust bench does.
    rows = [{"prompt": "p", "chosen": "c", "rejected": "r", "pair": i % args.pairs}
            for i in range(total * args.pairs)]
    step_seconds, first = [], {}

    class Timer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            step_seconds.append(time.perf_counter() - self.t)
            if "end" not in first:
                first["end"] = seconds_since_process_start()

    with tempfile.TemporaryDirectory() as out:
        # TRL 1.x has no max_prompt_length (the rows are pre-tokenized here, so it only matters to 0.2x).
        prompt_limit = {"max_prompt_length": prompt_len} if "max_prompt_length" in ORPOConfig.__dataclass_fields__ else {}
        orpo_args = ORPOConfig(**prompt_limit,
            output_dir=out, per_device_train_batch_size=args.pairs, max_steps=total,
            learning_rate=1e-5, lr_scheduler_type="constant", beta=0.1, max_length=prompt_len + completion_len,
            max_completion_length=completion_len, logging_steps=1,
            save_strategy="no", report_to="none", use_cpu=True, dataloader_num_workers=0,
            gradient_checkpointing=args.grad_checkpointing, disable_tqdm=True,
            # TRL 1.x defaults to bf16=True (autocast); f32 unless --bf16, like bench_train's --dtype.
            bf16=args.bf16,
        )
        trainer = SyntheticOrpoTrainer(model=model, args=orpo_args, train_dataset=Dataset.from_list(rows),
                                       processing_class=tokenizer, callbacks=[Timer()])
        trainer.train()

    timed = sorted(step_seconds[args.warmup:])
    median = statistics.median(timed)
    tokens = 2 * args.pairs * (prompt_len + completion_len)
    params = 576 * vocab + args.layers * (576 * 576 * 2 + 576 * 192 * 2 + 3 * 576 * 1536)
    print(json.dumps({
        "tool": f"trl {trl.__version__} / torch {torch.__version__}",
        "threads": args.threads,
        "grad_checkpointing": args.grad_checkpointing,
        "bf16": args.bf16,
        "pairs": args.pairs, "prompt": prompt_len, "completion": completion_len, "layers": args.layers,
        "train_tokens_per_step": tokens,
        "median_step_s": median, "min_step_s": timed[0], "max_step_s": timed[-1],
        "tokens_per_s": tokens / median,
        "approx_gflop_per_s": 6.0 * params * tokens / median / 1e9,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "first_step_end_s": first.get("end"),
        "steps_timed": len(timed),
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
