#!/usr/bin/env python3
"""burn → safetensors → transformers round trip, transformers side.

    cargo run -p orpo-model --example export_random -- CONFIG_JSON OUT
    python scripts/check_roundtrip.py OUT

Loads OUT with AutoModelForCausalLM.from_pretrained (unchanged) and compares its logits with
the ones burn wrote to OUT/burn_logits.json, on the non-padding positions. Exits 1 when the
largest difference exceeds 1e-4.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def main(out):
    ref = json.load(open(f"{out}/burn_logits.json"))
    model = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").float().eval()
    ids = torch.tensor(ref["input_ids"])
    mask = torch.tensor(ref["attention_mask"], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    burn = torch.tensor(ref["logits"]).reshape(ref["shape"])
    diff = (logits - burn).abs()[mask.bool()].max().item()
    print(f"{out}: {type(model).__name__}, max |Δlogit| over non-pad positions = {diff:.3e}")
    sys.exit(0 if diff <= 1e-4 else 1)


if __name__ == "__main__":
    main(sys.argv[1])
