#!/usr/bin/env python3
"""Writes `tests/fixtures/data/named_templates.json`: the chat templates the `chat_template` key
knows by name (chatml, llama3, zephyr, gemma, phi3), read from where orpo-data copied them (TRL
1.16's `trl/chat_templates/*.jinja`; ChatML as TRL's `setup_chat_format`; Zephyr from
HuggingFaceH4/zephyr-7b-beta), and conversations rendered with each by `transformers`'
`apply_chat_template`, for `crates/orpo-data/tests/named_templates.rs`.

    python scripts/make_named_template_fixtures.py
"""
import json
import os

import trl
from transformers import AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TRL_TEMPLATES = os.path.join(os.path.dirname(trl.__file__), "chat_templates")

CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"


def source(name):
    if name == "chatml":
        return CHATML
    if name == "zephyr":
        fx = json.load(open(os.path.join(ROOT, "tests", "fixtures", "data", "chat_templates.json")))
        return fx["templates"]["zephyr"]
    return open(os.path.join(TRL_TEMPLATES, f"{name}.jinja")).read()


CONVERSATIONS = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "  2 + 2 = 4.  "}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say \"hi\" <twice> & café ☕"},
        {"role": "assistant", "content": "hi hi"},
        {"role": "user", "content": "Again?\n"},
    ],
]


def main():
    tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "datasets", "arith-prefs", "tokenizer"))
    tok.bos_token = "<|endoftext|>"
    templates = {n: source(n) for n in ["chatml", "llama3", "zephyr", "gemma", "phi3"]}
    cases = []
    for name, template in templates.items():
        for ci, conv in enumerate(CONVERSATIONS):
            for agp in [False, True]:
                try:
                    out = tok.apply_chat_template(conv, chat_template=template, tokenize=False, add_generation_prompt=agp)
                    err = None
                except Exception as e:  # raise_exception in the template
                    out, err = None, str(e)
                cases.append({"template": name, "conversation": ci, "add_generation_prompt": agp, "output": out, "error": err})
    fixture = {
        "special_tokens": {"bos_token": tok.bos_token, "eos_token": tok.eos_token, "pad_token": tok.pad_token},
        "templates": templates,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    path = os.path.join(ROOT, "tests", "fixtures", "data", "named_templates.json")
    with open(path, "w") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(path), len(cases), "cases")


if __name__ == "__main__":
    main()
