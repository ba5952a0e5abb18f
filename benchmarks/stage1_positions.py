"""Where does a child lose? Parent vs child NLL by how held-out text is sampled, and by position.

    .venv/bin/python benchmarks/stage1_positions.py HOME DOMAIN CHILD_ID

Three samplings of each test split (``DOMAIN`` and general): 64 passages of 128 and of 256 tokens
drawn from every document (as the lab's suites are), and ``stream256``, the split's first 16,384
tokens in stored (document) order, which is how budgets were cut before issue 11's fix. Output of
the run recorded in docs/RESULTS.md: docs/results/stage1-positions-medical.txt (child e477d821b035).
"""

from __future__ import annotations

import random
import sys

import torch

from breedlab.cmg.blocks import dataset_blocks
from breedlab.cmg.inputs import dataset
from breedlab.data.read import iter_documents
from breedlab.evaluation.measure import load_candidate
from breedlab.evaluation.passages import case_blocks, lm_cases
from breedlab.home import Home
from breedlab.registry import Registry

BUCKETS = [(0, 8), (8, 32), (32, 64), (64, 128)]  # then (128, S - 1) where a block is longer


def sample_sets(registry, tokenizer, domain: str) -> dict[str, torch.Tensor]:
    sets = {}
    for split in (domain, "general"):
        test = dataset(registry, f"{split}/test")
        documents = list(iter_documents(test.path))
        for tokens in (128, 256):
            cases = lm_cases(documents, tokenizer, count=64, tokens=tokens, rng=random.Random(0))
            sets[f"{split}-sampled{tokens}"] = case_blocks(tokenizer, cases, tokens)
        sets[f"{split}-stream256"] = dataset_blocks(test.path, tokenizer, 256, 16_384, order="document")
    return sets


@torch.no_grad()
def position_nll(model, blocks: torch.Tensor) -> torch.Tensor:
    """(N, S-1) next-token NLL at every position of ``blocks`` (N, S)."""
    out = []
    for start in range(0, len(blocks), 8):
        batch = blocks[start:start + 8]
        logits = model(input_ids=batch).logits[:, :-1].float()
        out.append(torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none"))
    return torch.cat(out)


def main(home_path: str, domain: str, child_id: str) -> None:
    from transformers import AutoTokenizer

    torch.set_num_threads(2)
    registry = Registry.open(Home.resolve(home_path).registry_dir)
    parent = registry.find(kind="parent", name="smollm2-135m-instruct")[0]
    sets = sample_sets(registry, AutoTokenizer.from_pretrained(parent.path), domain)
    print({name: tuple(blocks.shape) for name, blocks in sets.items()}, flush=True)
    scores = {}
    for role, artifact in (("parent", parent), ("child", registry.get(child_id))):
        model, _ = load_candidate(artifact)
        scores[role] = {name: position_nll(model.eval(), blocks) for name, blocks in sets.items()}
        del model
    for name in sets:
        p, c = scores["parent"][name], scores["child"][name]
        buckets = [(a, b) for a, b in BUCKETS + [(128, p.shape[1])] if a < p.shape[1]]
        by_position = " ".join(f"[{a}:{b}] {float((c[:, a:b] - p[:, a:b]).mean()):+.3f}" for a, b in buckets)
        print(f"{name:22s} parent {float(p.mean()):.3f} child {float(c.mean()):.3f} diff {float((c - p).mean()):+.3f} "
              f"ppl-ratio {float(torch.exp((c - p).mean())):.3f} | {by_position}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
