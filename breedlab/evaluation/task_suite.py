"""Task suites: an examples niche judged by the task itself.

A ``task`` suite holds held-out examples (``<niche>/examples/test``): each case is the prompt
messages, the desired output and any sources. The ``task-generate`` scorer has the candidate
*generate* each answer (greedy, at most ``max_new_tokens``, the prompt under the model's chat
template, exactly as breeding rendered it) and scores it with the task's metric
(``task_metrics.score_task``); the per-case primary scores are what the paired tests compare.
"""

from __future__ import annotations

import random

import torch

from breedlab.cmg.example_blocks import render_example
from breedlab.data.examples import Example
from breedlab.evaluation.scorers import SuiteResult, scorer
from breedlab.evaluation.task_metrics import score_task

END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>")


def task_cases(examples: list[dict], count: int, rng: random.Random) -> list[dict]:
    """Up to ``count`` held-out examples, a seeded sample kept in id order."""
    chosen = sorted(rng.sample(range(len(examples)), min(count, len(examples))))
    return [{"id": examples[i]["id"], "messages": examples[i]["messages"], "output": examples[i]["output"],
             "sources": examples[i].get("sources", [])} for i in chosen]


def generate_answer(model, tokenizer, case: dict, max_new_tokens: int) -> str:
    """The model's greedy answer to the case's prompt, cut at the end of its turn."""
    prompt_ids, _ = render_example(tokenizer, Example(tuple(case["messages"]), case["output"]))
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    text = tokenizer.decode(out[0, len(prompt_ids):], skip_special_tokens=False)
    for marker in (*END_OF_TURN, tokenizer.eos_token or ""):
        if marker and marker in text:
            text = text.split(marker)[0]
    return text.strip()


@scorer("task-generate", version=1, kinds=("task",))
def score_generated(model, tokenizer, cases: list[dict], settings: dict) -> SuiteResult:
    answers = [generate_answer(model, tokenizer, case, settings["max_new_tokens"]) for case in cases]
    scores = score_task(settings["task"], answers, [c["output"] for c in cases],
                        sources=[c["sources"] for c in cases] if settings["task"] == "grounded" else None,
                        citations=settings.get("citations", False))
    return SuiteResult(cases=len(cases), accuracy=scores.mean, case_scores=scores.per_case)
