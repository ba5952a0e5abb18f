"""The ``mixed`` strategy's proxy search: how deep a student of ratio p should be.

Width pruning alone keeps every layer; depth pruning alone drops whole layers.
At one parameter budget there is a line of shapes between the two: drop d
layers (by block influence, first and last kept) and narrow the rest until
the budget holds. Minitron (arXiv 2407.14679, section 4) settles such choices
by a cheap proxy on candidates before any training, and finds width-heavy
shapes heal best; ShortGPT bounds useful depth pruning at 20-25% of layers.

So: for d = 0 .. floor(max_depth_drop * L), build the student the plan
describes (no training), and score it by the mean per-token
KL(parent || student) at T = 1 on calibration blocks (the recipe's
domain/general mix). The lowest KL wins; ties go to the shallower student,
which is the faster one. Every candidate and its score are recorded in the
child's recipe, so the choice can be re-checked.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .recipe import CMGRecipe
from .student import ParentDims, plan_student
from .student_weights import build_student
from .teacher import final_hidden_states


@torch.no_grad()
def proxy_kl(parent, student, blocks: torch.Tensor, states: list[torch.Tensor], batch_size: int) -> float:
    """Mean per-token KL(parent || student) in nats at T = 1 over ``blocks``."""
    total, count = 0.0, 0
    for index, start in enumerate(range(0, len(blocks), batch_size)):
        batch = blocks[start:start + batch_size]  # (b, S)
        teacher = F.log_softmax(parent.lm_head(states[index]).float(), dim=-1)  # (b, S, V)
        child = F.log_softmax(student(input_ids=batch, use_cache=False).logits.float(), dim=-1)
        total += (teacher.exp() * (teacher - child)).sum().item()
        count += batch.numel()
        del teacher, child
    return total / count


def search_size(recipe: CMGRecipe, layers: int, tokens: int) -> int:
    """Calibration tokens the search scores when it stays within its depth bound (a progress total)."""
    return (math.floor(recipe.max_depth_drop * layers) + 1) * tokens


def search_depth(parent, profile, recipe: CMGRecipe, blocks: torch.Tensor, batch_size: int = 4,
                 on_tokens=None) -> dict:
    """Score every feasible depth at the recipe's ratio; return the record with ``chosen_layers``.

    ``on_tokens(n)`` is called with the calibration tokens after each candidate (a progress bar).

    Depths within ``max_depth_drop`` come first. If none of them can hold the ratio (width pruning
    keeps every kv head, so a small p needs fewer layers), the search goes on dropping one layer
    at a time until a shape fits, and the record says that the bound was exceeded.
    """
    dims = ParentDims.of(parent.config)
    with torch.no_grad():  # the parent's states once; each candidate's KL recomputes its logits from them
        states = [hidden for _, hidden in final_hidden_states(parent, blocks, batch_size)]
    bound = math.floor(recipe.max_depth_drop * dims.layers)
    candidates = []
    for drop in range(dims.layers - 1):
        if drop > bound and any(c["feasible"] for c in candidates):
            break
        candidates.append(_candidate(parent, profile, recipe, blocks, states, batch_size, dims.layers - drop))
        if on_tokens is not None:
            on_tokens(int(blocks.numel()))
    feasible = [c for c in candidates if c["feasible"]]
    if not feasible:
        raise ValueError(f"no depth of this parent fits ratio {recipe.ratio}: use a larger ratio")
    best = min(feasible, key=lambda c: (c["proxy_kl"], c["layers"]))
    return {"proxy": "mean KL(parent || student) at T=1, no training", "tokens": int(blocks.numel()),
            "general_share": recipe.calibration_general_share, "candidates": candidates,
            "max_depth_drop_exceeded": dims.layers - best["layers"] > bound, "chosen_layers": best["layers"]}


def _candidate(parent, profile, recipe: CMGRecipe, blocks, states, batch_size: int, layers: int) -> dict:
    """One depth's plan, built and scored untrained (or why no plan of that depth fits)."""
    try:
        plan = plan_student(parent.config, ratio=recipe.ratio, strategy="mixed", profile=profile,
                            count_embeddings=recipe.count_embeddings, seed=recipe.seed, layers=layers)
    except ValueError as error:  # too narrow to land on the budget at this depth
        return {"layers": layers, "feasible": False, "reason": str(error)[:200]}
    student = build_student(parent, plan, seed=recipe.seed)
    return {"layers": len(plan.layers), "feasible": True, "heads": len(plan.heads[0]),
            "intermediate": len(plan.neurons[0]), "parameters": plan.student_params,
            "proxy_kl": round(proxy_kl(parent, student, blocks, states, batch_size), 6)}
