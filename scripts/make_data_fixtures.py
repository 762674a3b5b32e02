#!/usr/bin/env python3
"""Writes TRL v0.25 tokenization fixtures for orpo-data's parity tests.

    pip install 'trl==0.25.*' transformers
    cargo run -p orpo-data --release --example train_tokenizer   # the bundled tokenizer
    python scripts/make_data_fixtures.py

Runs TRL's own code (`maybe_extract_prompt`, `maybe_apply_chat_template`,
`ORPOTrainer.tokenize_row`) on the rows of `tests/fixtures/data/trl_parity_input.jsonl` (standard
and conversational, explicit and implicit prompts, multi-turn, a BPE merge at the prompt/answer
boundary, long prompts and completions reaching every truncation branch) with the tokenizer of
`datasets/arith-prefs/tokenizer`, under several configurations, and writes the token ids and
labels to `tests/fixtures/data/trl_parity.json`.
"""
import json
import os

import trl
from transformers import AutoTokenizer
from trl.data_utils import maybe_apply_chat_template, maybe_extract_prompt
from trl.trainer.orpo_trainer import ORPOTrainer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TOKENIZER = os.path.join(ROOT, "datasets", "arith-prefs", "tokenizer")
OUT = os.path.join(ROOT, "tests", "fixtures", "data")

LONG = "Please think carefully and show no work at all. " * 4
CHECK = " Check: the digits add up, so the answer holds." * 3


def u(c):
    return {"role": "user", "content": c}


def a(c):
    return {"role": "assistant", "content": c}


ROWS = [
    # standard, explicit prompt
    {"prompt": "What is 37 + 45?", "chosen": " 37 + 45 = 82.", "rejected": " 37 + 45 = 83."},
    {"prompt": "What is 90 - 12?", "chosen": " 90 - 12 = 78.", "rejected": " 90 - 12 = 88."},
    # BPE merge across the prompt/answer boundary
    {"prompt": "The answer is", "chosen": "n't known yet.", "rejected": "n't there."},
    {"prompt": "The answer is kno", "chosen": "wn.", "rejected": "wn to me."},
    # standard, implicit prompt
    {"chosen": "What is 2 + 2? 2 + 2 = 4.", "rejected": "What is 2 + 2? 2 + 2 = 5."},
    # conversational, explicit prompt
    {"prompt": [u("What is 11 + 22?")], "chosen": [a("11 + 22 = 33.")], "rejected": [a("11 + 22 = 34.")]},
    # conversational, implicit prompt
    {"chosen": [u("What is 50 - 25?"), a("50 - 25 = 25.")], "rejected": [u("What is 50 - 25?"), a("50 - 25 = 35.")]},
    # multi-turn with a system message; only the last assistant turn differs
    {
        "chosen": [
            {"role": "system", "content": "You are a calculator."},
            u("What is 3 + 4?"),
            a("3 + 4 = 7."),
            u("And 7 + 8?"),
            a("7 + 8 = 15."),
        ],
        "rejected": [
            {"role": "system", "content": "You are a calculator."},
            u("What is 3 + 4?"),
            a("3 + 4 = 7."),
            u("And 7 + 8?"),
            a("7 + 8 = 16."),
        ],
    },
    # string prompt with conversational completions holding the user turn (ultrafeedback style)
    {"prompt": "What is 6 + 7?", "chosen": [u("What is 6 + 7?"), a("6 + 7 = 13.")], "rejected": [u("What is 6 + 7?"), a("6 + 7 = 12.")]},
    # long prompt (prompt truncation), standard and conversational
    {"prompt": LONG + "What is 12 + 13?", "chosen": " 12 + 13 = 25.", "rejected": " 12 + 13 = 26."},
    {"prompt": [u(LONG + "What is 14 + 15?")], "chosen": [a("14 + 15 = 29.")], "rejected": [a("14 + 15 = 39.")]},
    # long completion (completion truncation), short prompt
    {"prompt": "What is 21 + 21?", "chosen": " 21 + 21 = 42." + CHECK, "rejected": " 21 + 21 = 43."},
    # long prompt and long completion
    {"prompt": LONG + "What is 31 + 31?", "chosen": " 31 + 31 = 62." + CHECK, "rejected": " 31 + 31 = 52." + CHECK},
    # a prompt ending with an assistant message (continue_final_message)
    {"prompt": [u("What is 4 + 4?"), a("4 + 4 =  ")], "chosen": [a("8.")], "rejected": [a("9.")]},
    # a completion that already ends with EOS
    {"prompt": "What is 1 + 1?", "chosen": " 1 + 1 = 2.<|im_end|>", "rejected": " 1 + 1 = 3."},
]

BOS_TEMPLATE = "{{ bos_token }}" + (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CONFIGS = [
    {"name": "default", "max_length": 1024, "max_prompt_length": 512, "truncation_mode": "keep_end", "bos": False},
    {"name": "short_keep_end", "max_length": 48, "max_prompt_length": 24, "truncation_mode": "keep_end", "bos": False},
    {"name": "short_keep_start", "max_length": 48, "max_prompt_length": 24, "truncation_mode": "keep_start", "bos": False},
    {"name": "bos_template", "max_length": 40, "max_prompt_length": 16, "truncation_mode": "keep_end", "bos": True},
]


def trl_rows(cfg):
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    if cfg["bos"]:
        tok.bos_token = "<|endoftext|>"
        tok.chat_template = BOS_TEMPLATE
    t = ORPOTrainer.__new__(ORPOTrainer)
    t.processing_class = tok
    t.is_encoder_decoder = False
    t.max_length = cfg["max_length"]
    t.max_prompt_length = cfg["max_prompt_length"]
    t.truncation_mode = cfg["truncation_mode"]
    t.label_pad_token_id = -100
    out = []
    for row in ROWS:
        ex = maybe_extract_prompt(dict(row))
        ex = maybe_apply_chat_template(ex, tok)
        b = t.tokenize_row(ex)
        out.append(
            {
                "text": {"prompt": ex["prompt"], "chosen": ex["chosen"], "rejected": ex["rejected"]},
                "chosen_input_ids": b["chosen_input_ids"],
                "chosen_labels": b["chosen_labels"],
                "rejected_input_ids": b["rejected_input_ids"],
                "rejected_labels": b["rejected_labels"],
            }
        )
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "trl_parity_input.jsonl"), "w") as f:
        for row in ROWS:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    fixture = {
        "generator": "scripts/make_data_fixtures.py",
        "trl_version": trl.__version__,
        "bos_template": BOS_TEMPLATE,
        "configs": [dict(cfg, rows=trl_rows(cfg)) for cfg in CONFIGS],
    }
    with open(os.path.join(OUT, "trl_parity.json"), "w") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.relpath(os.path.join(OUT, "trl_parity.json")))


if __name__ == "__main__":
    main()
