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

With ``min_speedup`` the search also targets a measured speed: each candidate
is timed decoding in fp16 against the parent in fp16 (``shape_speed.py``), and
the lowest KL is taken among the candidates at least that much faster. In fp16
the lowest-KL shape at p = 0.8 keeps every layer and decodes no faster than the
parent; speed comes from depth (docs/results/depth-speed-probe.txt).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from breedlab.cmg.recipe import CMGRecipe
from breedlab.cmg.student import ParentDims, plan_student
from breedlab.cmg.student_weights import build_student
from breedlab.cmg.teacher import final_hidden_states


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
                 on_tokens=None, speedup=None) -> dict:
    """Score every feasible depth at the recipe's ratio; return the record with ``chosen_layers``.

    ``on_tokens(n)`` is called with the calibration tokens after each candidate (a progress bar).
    With ``recipe.min_speedup`` each feasible candidate's decode speedup over the parent is measured
    too (``speedup(student)``, by default ``shape_speed.decode_speedup`` in fp16), and the lowest KL
    is taken among the candidates at least that fast; if none is, the fastest, and the record says so.

    Depths within ``max_depth_drop`` come first. If none of them can hold the ratio (width pruning
    keeps every kv head, so a small p needs fewer layers), the search goes on dropping one layer
    at a time until a shape fits, and the record says that the bound was exceeded.
    """
    dims = ParentDims.of(parent.config)
    with torch.no_grad():  # the parent's states once; each candidate's KL recomputes its logits from them
        states = [hidden for _, hidden in final_hidden_states(parent, blocks, batch_size)]
    bound = math.floor(recipe.max_depth_drop * dims.layers)
    if recipe.min_speedup is not None and speedup is None:
        speedup = _fp16_speedup(parent, blocks)
    candidates = []
    for drop in range(dims.layers - 1):
        if drop > bound and any(c["feasible"] for c in candidates):
            break
        candidates.append(_candidate(parent, profile, recipe, blocks, states, batch_size, dims.layers - drop,
                                     speedup if recipe.min_speedup is not None else None))
        if on_tokens is not None:
            on_tokens(int(blocks.numel()))
    feasible = [c for c in candidates if c["feasible"]]
    if not feasible:
        raise ValueError(f"no depth of this parent fits ratio {recipe.ratio}: use a larger ratio")
    best, choice = _choose(feasible, recipe.min_speedup)
    return {"proxy": "mean KL(parent || student) at T=1, no training", "tokens": int(blocks.numel()),
            "general_share": recipe.calibration_general_share, "candidates": candidates,
            **({"min_speedup": recipe.min_speedup, "choice": choice} if recipe.min_speedup is not None else {}),
            "max_depth_drop_exceeded": dims.layers - best["layers"] > bound, "chosen_layers": best["layers"]}


def _choose(feasible: list[dict], min_speedup: float | None) -> tuple[dict, str]:
    """The chosen candidate and the rule that chose it. Ties go to the shallower (faster) student."""
    lowest_kl = lambda c: (c["proxy_kl"], c["layers"])  # noqa: E731
    if min_speedup is None:
        return min(feasible, key=lowest_kl), "lowest KL"
    fast = [c for c in feasible if c["speedup"] >= min_speedup]
    if fast:
        return min(fast, key=lowest_kl), f"lowest KL among the shapes at >= {min_speedup}x the parent's decode"
    fastest = max(feasible, key=lambda c: c["speedup"])
    return fastest, (f"the fastest shape ({fastest['speedup']}x): none reached {min_speedup}x the parent's "
                     "decode within the depth bound")


def _fp16_speedup(parent, blocks: torch.Tensor):
    """``speedup(student)``: decode speed over the parent's, both served in fp16 (``shape_speed.py``)."""
    from breedlab.cmg.shape_speed import as_fp16, decode_speedup

    served = as_fp16(parent)
    prompt = blocks[:1, :16]
    return lambda student: decode_speedup(served, student, prompt)


def _candidate(parent, profile, recipe: CMGRecipe, blocks, states, batch_size: int, layers: int,
               speedup=None) -> dict:
    """One depth's plan, built and scored untrained (or why no plan of that depth fits); with
    ``speedup``, its measured decode speedup over the parent too."""
    try:
        plan = plan_student(parent.config, ratio=recipe.ratio, strategy="mixed", profile=profile,
                            count_embeddings=recipe.count_embeddings, seed=recipe.seed, layers=layers)
    except ValueError as error:  # too narrow to land on the budget at this depth
        return {"layers": layers, "feasible": False, "reason": str(error)[:200]}
    student = build_student(parent, plan, seed=recipe.seed)
    record = {"layers": len(plan.layers), "feasible": True, "heads": len(plan.heads[0]),
              "intermediate": len(plan.neurons[0]), "parameters": plan.student_params,
              "proxy_kl": round(proxy_kl(parent, student, blocks, states, batch_size), 6)}
    if speedup is not None:
        record["speedup"] = round(float(speedup(student)), 3)
    return record
