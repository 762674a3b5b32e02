#!/usr/bin/env python3
"""Writes `tests/fixtures/data/chat_templates.json`: conversations rendered by
`transformers`' `apply_chat_template` with several well-known chat templates (ChatML, Zephyr,
Llama 3, Qwen 2.5, Mistral, a `tojson` one), for orpo-data's minijinja parity test.

    python scripts/make_template_fixtures.py
"""
import json
import os

from transformers import AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

TEMPLATES = {
    "chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    "zephyr": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
    "qwen2.5": "{%- if messages[0]['role'] == 'system' %}\n    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n{%- else %}\n    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n{%- endif %}\n{%- for message in messages %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role + '\\n' + message.content.strip() + '<|im_end|>\\n' }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n",
    "mistral": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}",
    "tojson": "{% for m in messages %}{{ m | tojson }}\n{% endfor %}{% if add_generation_prompt %}{{ {'role': 'assistant', 'n': 1, 'ok': true, 'x': none} | tojson }}{% endif %}",
}

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
    cases = []
    for name, template in TEMPLATES.items():
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
        "templates": TEMPLATES,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    path = os.path.join(ROOT, "tests", "fixtures", "data", "chat_templates.json")
    with open(path, "w") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(path), len(cases), "cases")


if __name__ == "__main__":
    main()
