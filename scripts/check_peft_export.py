#!/usr/bin/env python3
"""burn LoRA → PEFT adapter directory → Python `peft`, Python side.

    cargo run -p orpo-model --example export_lora -- BASE_DIR OUT [TARGETS]
    python scripts/check_peft_export.py OUT BASE_DIR

Loads BASE_DIR with transformers, puts the adapter burn wrote to OUT/adapter on it with
`peft.PeftModel.from_pretrained` (unchanged), and compares the logits with those burn computed
for base + adapter (OUT/burn_logits.json), on the non-padding positions. Also loads the merged
model burn wrote to OUT/merged with `AutoModelForCausalLM.from_pretrained` and compares it the
same way. Exits 1 when either difference exceeds 1e-4.
"""
import json
import sys

import peft
import torch
from transformers import AutoModelForCausalLM


def logits_of(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def main(out, base_dir):
    ref = json.load(open(f"{out}/burn_logits.json"))
    ids = torch.tensor(ref["input_ids"])
    mask = torch.tensor(ref["attention_mask"], dtype=torch.long)
    burn = torch.tensor(ref["logits"]).reshape(ref["shape"])
    keep = mask.bool()

    base = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation="eager").float()
    with_adapter = peft.PeftModel.from_pretrained(base, f"{out}/adapter").eval()
    adapted = logits_of(with_adapter, ids, mask)
    d_peft = (adapted - burn).abs()[keep].max().item()
    with torch.no_grad():
        with_adapter.disable_adapter_layers()
        d_base = (logits_of(with_adapter, ids, mask) - burn).abs()[keep].max().item()

    merged = AutoModelForCausalLM.from_pretrained(f"{out}/merged",
                                                  attn_implementation="eager").float().eval()
    d_merged = (logits_of(merged, ids, mask) - burn).abs()[keep].max().item()

    print(f"{out}: {type(base).__name__}, LoRA on {', '.join(ref['targets'])}; "
          f"max |Δlogit| over non-pad positions: PEFT(base + adapter) vs burn = {d_peft:.3e}, "
          f"transformers(merged) vs burn = {d_merged:.3e} "
          f"(base without the adapter: {d_base:.3e}); peft {peft.__version__}")
    sys.exit(0 if max(d_peft, d_merged) <= 1e-4 else 1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
