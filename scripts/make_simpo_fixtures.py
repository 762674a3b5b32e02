#!/usr/bin/env python3
"""Reference fixtures for orpo-loss's SimPO objective, produced by TRL's own CPOTrainer code
(`loss_type="simpo"`, trl 1.x: `trl.experimental.cpo`; torch, f32).

Usage (from the workspace root; CPU, a few seconds):
    pip install torch transformers 'trl>=1'
    python3 scripts/make_simpo_fixtures.py           # writes tests/fixtures/loss/simpo_*.json

Builds a tiny random LlamaForCausalLM (vocab 64, hidden 16, 2 layers) and a batch of 3
preference pairs with right padding and different prompt/completion lengths (the batch of
scripts/make_loss_fixtures.py), and calls the real, unbound `CPOTrainer.get_batch_loss_metrics`
/ `concatenated_forward` / `cpo_loss` / `get_batch_logps` / `concatenated_inputs` with a
SimpleNamespace `self` carrying the attributes they read. A forward hook on `lm_head` captures
its input (the final hidden states) and retains its gradient. Each fixture holds the hidden
states, the head weight as burn's [H, V], the token tensors (`completion_mask` = labels !=
-100), the loss, TRL's metrics and the gradients wrt the hidden states and the head weight.

Cases (SimPO: length-normalised log-probs, reference-free, margin gamma; CPO adds
`cpo_alpha` times the NLL of the chosen completion tokens):
  simpo_beta2_gamma1.json       beta 2.0, simpo_gamma 1.0, cpo_alpha 0 (SimPO as in its paper)
  simpo_beta0.1_cpo_alpha1.json beta 0.1, simpo_gamma 0.5, cpo_alpha 1.0 (TRL's defaults: CPO-SimPO)
"""

import json
import os
import types

import torch
import trl
from transformers import LlamaConfig, LlamaForCausalLM
from trl.experimental.cpo import CPOTrainer

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "loss"))
torch.manual_seed(1234)
torch.use_deterministic_algorithms(True)

V, H = 64, 16
cfg = LlamaConfig(
    vocab_size=V,
    hidden_size=H,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=64,
    tie_word_embeddings=False,
    initializer_range=0.3,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
model = LlamaForCausalLM(cfg).float().eval()

g = torch.Generator().manual_seed(7)


def toks(n):
    return torch.randint(3, V, (n,), generator=g).tolist()


pairs = [
    ([1] + toks(2), toks(3) + [2], toks(2) + [2]),
    ([1] + toks(4), toks(1) + [2], toks(5) + [2]),
    ([1] + toks(1), toks(6) + [2], [2]),
]


def pad_rows(rows, value):
    n = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (n - len(r)) for r in rows], dtype=torch.long)


batch = {}
for side, idx in (("chosen", 1), ("rejected", 2)):
    ids = [p[0] + p[idx] for p in pairs]
    labels = [[-100] * len(p[0]) + p[idx] for p in pairs]
    batch[f"{side}_input_ids"] = pad_rows(ids, 0)
    batch[f"{side}_attention_mask"] = pad_rows([[1] * len(r) for r in ids], 0)
    batch[f"{side}_labels"] = pad_rows(labels, -100)


class Acc:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(x):
        return x


def trl_self(beta, gamma, cpo_alpha):
    s = types.SimpleNamespace(
        beta=beta,
        loss_type="simpo",
        simpo_gamma=gamma,
        cpo_alpha=cpo_alpha,
        label_smoothing=0.0,
        alpha=0.0,
        label_pad_token_id=-100,
        padding_value=0,
        pad_token_id=0,
        is_encoder_decoder=False,
        aux_loss_enabled=False,
        accelerator=Acc(),
    )
    s.concatenated_inputs = CPOTrainer.concatenated_inputs
    s.get_batch_logps = CPOTrainer.get_batch_logps
    s.cpo_loss = types.MethodType(CPOTrainer.cpo_loss, s)
    s.concatenated_forward = types.MethodType(CPOTrainer.concatenated_forward, s)
    return s


captured = {}


def hook(module, args):
    h = args[0]
    h.retain_grad()
    captured["hidden"] = h


model.lm_head.register_forward_pre_hook(hook)
conc = CPOTrainer.concatenated_inputs(batch, padding_value=0)
input_ids = conc["concatenated_input_ids"]
attention_mask = conc["concatenated_attention_mask"]
completion_mask = (conc["concatenated_labels"] != -100).long()


def tolist(t):
    return t.detach().to(torch.float64).tolist()


def case(name, beta, gamma, cpo_alpha):
    model.zero_grad()
    loss, metrics = CPOTrainer.get_batch_loss_metrics(trl_self(beta, gamma, cpo_alpha), model, batch, train_eval="train")
    loss.backward()
    hidden = captured["hidden"]
    doc = {
        "description": name,
        "versions": {"trl": trl.__version__, "torch": torch.__version__},
        "config": {
            "loss_type": "simpo",
            "beta": beta,
            "simpo_gamma": gamma,
            "cpo_alpha": cpo_alpha,
            "nll_on_completion_only": True,
        },
        "hidden": tolist(hidden),
        "head_weight": tolist(model.lm_head.weight.t()),  # [H, V]
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "completion_mask": completion_mask.tolist(),
        "loss": float(loss.detach()),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "grad_hidden": tolist(hidden.grad),
        "grad_head_weight": tolist(model.lm_head.weight.grad.t()),  # [H, V]
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f)
    print("wrote", path, "loss", float(loss), doc["metrics"])


case("simpo_beta2_gamma1", 2.0, 1.0, 0.0)
case("simpo_beta0.1_cpo_alpha1", 0.1, 0.5, 1.0)
