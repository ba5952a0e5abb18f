"""Does a domain head pay for itself in greedy decode, and does a dropped-rows-only fallback help?

Times greedy decoding (64 tokens, batch 1) of one model with no domain head, with the domain head
whose fallback recomputes the full head (as first shipped), and with the shipped one (the fallback
computes only the dropped rows), in alternating rounds with the fp32 parent; prints the rounds, the
medians and the fast-path share (needs an otherwise idle machine):

    .venv/bin/python benchmarks/domain_head_probe.py ARTIFACT_ID [ROUNDS]
"""
import statistics
import sys

import torch

from breedlab.cmg.domain_head import DomainHead, greedy_head
from breedlab.evaluation.lm import generation_speed
from breedlab.evaluation.measure import load_candidate
from breedlab.home import Home
from breedlab.registry import Registry

torch.set_num_threads(2)
PROMPT = "def fibonacci(n):\n"


class FullFallbackHead(DomainHead):
    """The first version: a fallback position recomputes the whole head."""

    def forward(self, hidden):
        if not self.greedy or hidden.shape[-2] != 1 or torch.is_grad_enabled():
            return self.full(hidden)
        flat = hidden.reshape(-1, hidden.shape[-1])
        kept = self.kept_head(flat)
        confident = kept.max(dim=-1).values > flat @ self.other_weight + self.other_bias
        logits = flat.new_full((flat.shape[0], self.full.out_features), torch.finfo(flat.dtype).min)
        logits[:, self.kept_ids] = kept
        if not bool(confident.all()):
            logits[~confident] = self.full(flat[~confident])
        self.fast_positions += int(confident.sum())
        self.fallbacks += int((~confident).sum())
        return logits.reshape(*hidden.shape[:-1], -1)


def timed(model, tokenizer):
    with greedy_head(model):
        return generation_speed(model, tokenizer, PROMPT, 64, 1)


registry = Registry.open(Home.resolve(None).registry_dir)
parent, tokenizer = load_candidate(registry.find(kind="parent")[0])
model, _ = load_candidate(registry.get(sys.argv[1]))
shipped = model.lm_head
if not isinstance(shipped, DomainHead):
    raise SystemExit(f"{sys.argv[1]} has no domain head")
old = FullFallbackHead.__new__(FullFallbackHead)
old.__dict__ = shipped.__dict__.copy()  # the same tensors and counters' starting point
variants = {"no domain head": shipped.full, "full-head fallback": old, "dropped-rows fallback": shipped}
rows = {"fp32 parent": [], **{name: [] for name in variants}}
for round_ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 5):
    rows["fp32 parent"].append(timed(parent, tokenizer))
    for name, head in variants.items():
        model.lm_head = head
        rows[name].append(timed(model, tokenizer))
    print(round_, {k: round(v[-1], 1) for k, v in rows.items()}, flush=True)
print("median", {k: round(statistics.median(v), 1) for k, v in rows.items()})
print("fast-path share", round(shipped.fast_positions / max(1, shipped.fast_positions + shipped.fallbacks), 3))
