"""What benchmarks/stage1.py measures on each model: the same held-out tokens, suites and prompt for all."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from breedlab.cmg.blocks import dataset_blocks
from breedlab.cmg.domain_head import DomainHead, greedy_head
from breedlab.cmg.inputs import dataset
from breedlab.evaluation.cost import flops_per_token
from breedlab.evaluation.latency import LatencySettings, torch_threads
from breedlab.evaluation.lm import generation_speed, score_lm
from breedlab.evaluation.measure import load_candidate
from breedlab.evaluation.suites import build_suite, load_suite, run_suite
from breedlab.models.io import count_parameters

PROMPTS = {
    "code": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "medical": "Type 2 diabetes mellitus is a chronic condition characterized by",
}
NEW_TOKENS = 64
SPEED_ROUNDS = 5
"""Generation speed is timed in rounds, the model then the fp32 parent back to back; the ratio is the
median of the rounds' ratios. This machine's speed drifts by tens of percent from minute to minute
(a shared host: the same model timed twice a few minutes apart gave 22 and 38 tokens/s), and
adjacent measurements share the drift."""
GEN_THREADS = LatencySettings().threads
"""torch threads while decoding at batch 1: the lab's own setting (``LatencySettings.threads``, one,
for the reason given there), so the benchmark and the fitness vector time decoding the same way.
Quality is scored with the run's ``--threads``."""
LEGACY_GEN_SUFFIX = f"-gen{NEW_TOKENS}x{SPEED_ROUNDS}"
"""Rows measured before speed was cached apart had it in their quality key; their quality is reused."""
FLOPS_CONTEXT = 128  # FLOPs per token are quoted at this context length (decode, KV cache)


@dataclass
class EvalInputs:
    domain: str
    tokenizer: object
    blocks: dict  # "domain" / "general" -> (N, 256) held-out test blocks
    cloze: object  # the frozen cloze suite on <domain>/test (utility)
    settings_key: str
    reference: object = None  # the fp32 parent, timed beside every model


def eval_inputs(registry, parent_id: str, domain: str, args) -> EvalInputs:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(registry.get(parent_id).path)
    seq = 64 if args.quick else 256
    blocks = {name: dataset_blocks(dataset(registry, f"{split}/test").path, tokenizer, seq, args.eval_tokens,
                                   order="shuffled")
              for name, split in (("domain", domain), ("general", "general"))}
    built = build_suite(registry, "cloze", domain, tokenizer=tokenizer, cases=args.cloze_cases, seed=0,
                        **({"context_tokens": 16, "continuation_tokens": 8} if args.quick else {}))
    cloze = load_suite(registry, built.id)
    # "shuffled": blocks sample the whole test split (cmg/blocks.py); rows measured on its first
    # documents (one ontology, one novel) have keys without it and are never mixed with these.
    key = f"eval{args.eval_tokens}-shuffled-cloze{args.cloze_cases}-{cloze.id[:12]}"
    reference, _ = load_candidate(registry.get(parent_id))
    return EvalInputs(domain, tokenizer, blocks, cloze, key, reference.eval())


SPEED_KEY = f"gen{NEW_TOKENS}x{SPEED_ROUNDS}-threads{GEN_THREADS}"


def time_generation(artifact, inputs: EvalInputs) -> dict:
    """Median tokens/s of the model and median ratio to the parent timed next to it, batch 1, greedy,
    at ``GEN_THREADS``; every round's pair is kept."""
    model, tokenizer = load_candidate(artifact)
    model.eval()
    prompt = PROMPTS.get(inputs.domain, PROMPTS["code"])
    with torch_threads(GEN_THREADS):
        generation_speed(model, tokenizer, "warm up", new_tokens=8, repeats=1)  # one-off costs stay out
        rounds = []
        for _ in range(SPEED_ROUNDS):
            with greedy_head(model):
                own = generation_speed(model, tokenizer, prompt, new_tokens=NEW_TOKENS, repeats=1)
            rounds.append([own, generation_speed(inputs.reference, tokenizer, prompt, new_tokens=NEW_TOKENS,
                                                 repeats=1)])
    return {"gen_tok_s": statistics.median(own for own, _ in rounds),
            "gen_tok_s_ratio": statistics.median(own / parent for own, parent in rounds),
            "gen_rounds": rounds, "gen_threads": GEN_THREADS}


@torch.no_grad()
def head_agreement(model, blocks: torch.Tensor) -> dict:
    """On held-out positions, how often the domain head's fast path runs and how often its argmax misses."""
    head = model.lm_head
    states = model.model(input_ids=blocks[:8]).last_hidden_state.reshape(-1, 1, model.config.hidden_size)
    full = head.full(states).argmax(dim=-1)
    before = (head.fast_positions, head.fallbacks)
    with greedy_head(model):
        fast = head(states).argmax(dim=-1)
    taken = head.fast_positions - before[0]
    return {"head_positions": int(states.shape[0]), "head_fast_share": taken / states.shape[0],
            "head_argmax_misses": int((fast != full).sum()), "head_kept": int(head.kept_ids.numel())}


def evaluate_quality(artifact, registry, inputs: EvalInputs) -> dict:
    """Everything but speed: sizes, dense FLOPs/token, accuracy, perplexities, utility, head share, cost."""
    model, tokenizer = load_candidate(artifact)
    model.eval()
    domain = score_lm(model, inputs.blocks["domain"])
    general = score_lm(model, inputs.blocks["general"])
    cloze = run_suite(inputs.cloze, model, tokenizer)
    row = {
        "artifact": artifact.id, "name": artifact.manifest.name, "kind": artifact.manifest.kind,
        "parameters": _parameters(model, True), "nonembed_parameters": _parameters(model, False),
        "dense_flops_per_token": flops_per_token(model.config, FLOPS_CONTEXT),
        "vocab_size": model.config.vocab_size, "hidden_size": model.config.hidden_size,
        "domain_accuracy": domain.accuracy, "domain_ppl": domain.perplexity, "general_ppl": general.perplexity,
        "utility": cloze.accuracy,
    }
    if isinstance(model.lm_head, DomainHead):
        row.update(head_agreement(model, inputs.blocks["domain"]))
    row.update(breed_cost(artifact, registry))
    return row


def served_flops(row: dict) -> float:
    """FLOPs per decode token as served: a domain head computes K/V of the head on a fast step and all
    of it (kept, then dropped rows) on a fallback, so it saves fast_share * (1 - K/V) of the head."""
    if "head_kept" not in row:
        return row["dense_flops_per_token"]
    head = 2 * row["hidden_size"] * row["vocab_size"]
    return row["dense_flops_per_token"] - head * row["head_fast_share"] * (1 - row["head_kept"] / row["vocab_size"])


def from_legacy(row: dict, vocab_size: int, hidden_size: int) -> dict:
    """A row cached with speed and head-adjusted FLOPs (the old fallback recomputed the whole head)
    as a quality row: the dense FLOPs put back, the speed fields dropped."""
    quality = {k: v for k, v in row.items() if not k.startswith("gen_")}
    quality.update(vocab_size=vocab_size, hidden_size=hidden_size)
    dense = quality.pop("flops_per_token")
    if "head_kept" in quality:
        dense += 2 * hidden_size * vocab_size * (1 - quality["head_kept"] / vocab_size - (1 - quality["head_fast_share"]))
    quality["dense_flops_per_token"] = dense
    return quality


def _parameters(model, include_embeddings: bool) -> int:
    """Weights as served: int8 and fp16 layers (buffers or packed, not parameters) count as the
    parameters they replace; a separately stored head is the embedding's copy, not counted again."""
    from breedlab.operators.quantize import Fp16Linear, Int8Linear

    replaced = sum(m.in_features * m.out_features for name, m in model.named_modules()
                   if isinstance(m, (Int8Linear, Fp16Linear)) and name.startswith("model.layers."))
    return count_parameters(model, include_embeddings=include_embeddings) + replaced


def breed_cost(artifact, registry) -> dict:
    """Training tokens and breed seconds of the model (an int8 copy: its source's, plus nothing)."""
    if artifact.manifest.kind == "quantized":
        artifact = registry.get(artifact.manifest.parents[0])
    metrics = artifact.manifest.metrics or {}
    return {"train_tokens": int(metrics.get("tokens", 0)),
            "breed_cpu_seconds": float(metrics.get("breed_cpu_seconds", 0.0)),
            "breed_wall_seconds": float(metrics.get("breed_wall_seconds", 0.0))}
