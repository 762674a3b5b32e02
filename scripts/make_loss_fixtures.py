#!/usr/bin/env python3
"""Reference fixtures for orpo-loss, produced by TRL's own ORPOTrainer code (trl 0.25, torch, f32).

Usage (from the workspace root):
    python3 scripts/make_loss_fixtures.py            # writes tests/fixtures/loss/

Builds a tiny random LlamaForCausalLM (vocab 64, hidden 16, 2 layers), a batch of 3 preference
pairs with right padding and different prompt/completion lengths, and calls the real, unbound
`ORPOTrainer.get_batch_loss_metrics` / `concatenated_forward` / `odds_ratio_loss` /
`get_batch_logps` / `concatenated_inputs` with a SimpleNamespace `self` carrying the attributes
they read (beta, label_pad_token_id, padding_value, is_encoder_decoder, aux_loss_enabled,
accelerator). A forward hook on `lm_head` captures its input (the final, post-norm hidden
states) and retains its gradient. Writes tests/fixtures/loss/*.json with the
hidden states, the head weight transposed to burn's [H, V] layout, the token tensors, every
metric, the loss and the gradients of the loss wrt the hidden states and the head weight.

Cases:
  trl_beta0.1.json            TRL exactly (beta = 0.1).
  completion_nll_beta0.1.json nll_on_completion_only emulation: TRL's code for everything
                              except the NLL, which is computed by hand on the completion
                              tokens only (TRL has no such option).
  tau2_bias_beta0.5.json      beta = 0.5, orpo_beta (tau) = 2 and a random head bias, by hand
                              (TRL has no tau and Llama's head no bias), from the same hidden
                              states; the odds ratio follows TRL's formula with logsigmoid(tau*x).
"""

import json
import os
import types

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM
from trl.trainer.orpo_trainer import ORPOTrainer

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

# 3 pairs: (prompt, chosen, rejected) lengths differ; BOS=1 starts prompts, EOS=2 ends completions.
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


def trl_self(beta):
    s = types.SimpleNamespace(
        beta=beta,
        label_pad_token_id=-100,
        padding_value=0,
        is_encoder_decoder=False,
        aux_loss_enabled=False,
        accelerator=Acc(),
    )
    s.concatenated_inputs = ORPOTrainer.concatenated_inputs
    s.get_batch_logps = ORPOTrainer.get_batch_logps
    s.odds_ratio_loss = types.MethodType(ORPOTrainer.odds_ratio_loss, s)
    s.concatenated_forward = types.MethodType(ORPOTrainer.concatenated_forward, s)
    return s


captured = {}


def hook(module, args):
    h = args[0]
    h.retain_grad()
    captured["hidden"] = h


model.lm_head.register_forward_pre_hook(hook)
conc = ORPOTrainer.concatenated_inputs(batch, label_pad_token_id=-100, padding_value=0)
input_ids = conc["concatenated_input_ids"]
attention_mask = conc["concatenated_attention_mask"]
completion_mask = (conc["concatenated_labels"] != -100).long()


def tolist(t):
    return t.detach().to(torch.float64).tolist()


def write(name, beta, tau, nll_on_completion_only, hidden, weight_vh, loss, metrics, grad_hidden, grad_weight, bias=None, grad_bias=None):
    os.makedirs(OUT, exist_ok=True)
    doc = {
        "description": name,
        "config": {"beta": beta, "orpo_beta": tau, "nll_on_completion_only": nll_on_completion_only},
        "hidden": tolist(hidden),
        "head_weight": tolist(weight_vh.t()),  # [H, V]
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "completion_mask": completion_mask.tolist(),
        "loss": float(loss),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "grad_hidden": tolist(grad_hidden),
        "grad_head_weight": tolist(grad_weight.t()),  # [H, V]
    }
    if bias is not None:
        doc["head_bias"] = tolist(bias)
        doc["grad_head_bias"] = tolist(grad_bias)
    path = os.path.join(OUT, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f)
    print("wrote", path, "loss", float(loss))


# --- Case 1: TRL exactly -------------------------------------------------------------------
model.zero_grad()
loss, metrics = ORPOTrainer.get_batch_loss_metrics(trl_self(0.1), model, batch, train_eval="train")
loss.backward()
hidden = captured["hidden"]
write("trl_beta0.1", 0.1, 1.0, False, hidden, model.lm_head.weight, loss.item(), metrics, hidden.grad, model.lm_head.weight.grad)
H0 = hidden.detach().clone()
W0 = model.lm_head.weight.detach().clone()  # [V, H]


# --- Hand-computed cases from the same hidden states ------------------------------------------
def by_hand(beta, tau, nll_on_completion_only, bias):
    h = H0.clone().requires_grad_(True)
    w = W0.clone().requires_grad_(True)
    b = bias.clone().requires_grad_(True) if bias is not None else None
    logits = h @ w.t() + (b if b is not None else 0.0)
    B = len(pairs)
    all_logps = ORPOTrainer.get_batch_logps(logits, conc["concatenated_labels"], average_log_prob=True)
    lc, lr = all_logps[:B], all_logps[B:]
    if nll_on_completion_only:
        labels = conc["concatenated_labels"]
    else:
        labels = torch.where(attention_mask == 1, input_ids, -100)
    nll = F.cross_entropy(logits[:B, :-1].reshape(-1, V), labels[:B, 1:].reshape(-1), ignore_index=-100)
    # TRL's odds_ratio_loss with ratio = logsigmoid(tau * log_odds)
    log_odds = (lc - lr) - (torch.log1p(-torch.exp(lc)) - torch.log1p(-torch.exp(lr)))
    ratio = F.logsigmoid(tau * log_odds)
    loss = nll - (beta * ratio).mean()
    cr, rr = beta * lc.detach(), beta * lr.detach()
    metrics = {
        "rewards/chosen": cr.mean(),
        "rewards/rejected": rr.mean(),
        "rewards/accuracies": (cr > rr).float().mean(),
        "rewards/margins": (cr - rr).mean(),
        "logps/rejected": lr.detach().mean(),
        "logps/chosen": lc.detach().mean(),
        "logits/rejected": logits[B:, :-1].detach().mean(),
        "logits/chosen": logits[:B, :-1].detach().mean(),
        "nll_loss": nll.detach(),
        "log_odds_ratio": ratio.detach().mean(),
        "log_odds_chosen": log_odds.detach().mean(),
    }
    loss.backward()
    return h, w, b, loss, metrics


# Cross-check: by_hand with TRL's settings reproduces TRL's numbers.
_, _, _, l_check, m_check = by_hand(0.1, 1.0, False, None)
assert abs(l_check.item() - loss.item()) < 1e-6, (l_check.item(), loss.item())
for k in metrics:
    assert abs(float(m_check[k]) - float(metrics[k])) < 1e-6, k

h, w, _, l2, m2 = by_hand(0.1, 1.0, True, None)
write("completion_nll_beta0.1", 0.1, 1.0, True, h, w, l2.item(), m2, h.grad, w.grad)

bias = torch.randn(V, generator=g) * 0.5
h, w, b, l3, m3 = by_hand(0.5, 2.0, False, bias)
write("tau2_bias_beta0.5", 0.5, 2.0, False, h, w, l3.item(), m3, h.grad, w.grad, b, b.grad)
