"""The ensemble baseline of a merge: both specialists run on every input and their logits are averaged.

Seed 000 asks "why keep an ensemble if a merge is smaller? The ensemble is a behavioral baseline": a
merged model replaces two, so the fair rival is the two run together, at the cost of both. The
ensemble here averages the members' logits (a normalised geometric mean of their distributions) and is
scored by the same suite scorers as any candidate, case by case, so the merge rule can pair its cases
with the merged model's. Its cost is both members' weights and FLOPs.
"""

from __future__ import annotations

import torch
from transformers.modeling_outputs import CausalLMOutput

from breedlab.evaluation.fitness import FitnessVector
from breedlab.evaluation.measure import load_candidate
from breedlab.evaluation.suites import load_suite, run_suite, tokenizer_fingerprint
from breedlab.registry import Registry

SCORED_KINDS = ("lm", "cloze")


class LogitEnsemble(torch.nn.Module):
    """Members run on the same input; the output's logits are the mean of theirs (float32)."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = torch.nn.ModuleList(members)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_) -> CausalLMOutput:
        logits = [m(input_ids=input_ids, attention_mask=attention_mask).logits.float() for m in self.members]
        return CausalLMOutput(logits=torch.stack(logits).mean(dim=0))  # (B, S, V)


def measure_ensemble(registry: Registry, model_ids: list[str], suites: dict[str, str]) -> FitnessVector:
    """The ensemble's per-case scores on ``suites``' lm and cloze suites, and its cost (the members' sum)."""
    members = [registry.get(ref) for ref in model_ids]
    loaded = [load_candidate(member) for member in members]
    prints = {tokenizer_fingerprint(tokenizer) for _, tokenizer in loaded}
    if len(prints) != 1:
        raise ValueError("the ensemble's members use different tokenizers; their logits cannot be averaged")
    ensemble, tokenizer = LogitEnsemble([model for model, _ in loaded]).eval(), loaded[0][1]
    fitness = FitnessVector(candidate="ensemble:" + "+".join(ref[:12] for ref in model_ids),
                            suites={k: v for k, v in suites.items() if k in SCORED_KINDS})
    with torch.no_grad():
        for kind, suite_id in fitness.suites.items():
            result = run_suite(load_suite(registry, suite_id), ensemble, tokenizer)
            if kind == "lm":
                fitness.domain_case_nll, fitness.domain_ppl = list(result.case_scores), result.perplexity
            else:
                fitness.utility, fitness.utility_cases = result.accuracy, [int(v) for v in result.case_scores]
    fitness.weight_bytes = sum(entry.size for member in members for name, entry in member.manifest.files.items()
                               if name.endswith(".safetensors"))
    return fitness
