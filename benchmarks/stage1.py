"""Stage 1 of the Genesis V1 roadmap, measured: does the CMG child keep the parent's domain skill?

For the real SmolLM2 parent on the code domain and p in {0.1, 0.3}, breeds at one
training budget: the profiled child (LoRA only, the paper's CMG), the uniform
child (every k-th layer), the scratch child (same shape, random init; all weights
trained since LoRA on random weights learns nothing) and the profiled child with
all weights trained (what LoRA-only costs). Scores each with the parent on held-out
code and general text, in one run, and prints one table of ratios to the parent.
Also times the KD loop with cached parent logits against the parent run live.

    .venv/bin/python benchmarks/stage1.py                 # real parent, about an hour on 2 cores
    .venv/bin/python benchmarks/stage1.py --quick         # pico lab smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from breedlab.cmg.blocks import dataset_blocks
from breedlab.cmg.breed import breed_child
from breedlab.cmg.inputs import dataset, load_frozen
from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.evaluation.lm import generation_speed, score_lm
from breedlab.home import Home
from breedlab.modelio import count_parameters, load_model
from breedlab.registry import Registry

# (label, strategy, trainable, peak lr): LoRA takes a larger lr than full fine-tuning; scratch needs the most.
VARIANTS = [
    ("profiled", "profiled", "lora", 2e-3),
    ("uniform", "uniform", "lora", 2e-3),
    ("scratch (all weights)", "scratch", "full", 1e-3),
    ("profiled, all weights", "profiled", "full", 3e-4),
]
PROMPT = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
console = Console(width=180)  # the table is wide; logs are read in files, not 80-column terminals


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--tokens", type=int, default=49_152, help="training tokens per child")
    parser.add_argument("--eval-tokens", type=int, default=16_384, help="held-out tokens per split")
    parser.add_argument("--timing-steps", type=int, default=6, help="steps for the cached-vs-live KD timing")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="pico lab instead of SmolLM2 (smoke test)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/stage1"))
    return parser.parse_args(argv)


def prepare(args, home: Home, registry: Registry):
    """The parent artifact and the base recipe; imports SmolLM2 and builds code/general data if missing."""
    if args.quick:
        from breedlab.pico_lab import build_pico_lab

        lab = build_pico_lab(registry, home.cache_dir)
        base = CMGRecipe(domain="code", batch_size=4, seq_len=64, profile_tokens=1024, lora_rank=8, lora_alpha=16,
                         teacher_topk=16, warmup_steps=4)
        return lab.parent, base
    from breedlab.data.build import build_corpora
    from breedlab.parent import import_parent

    parent = import_parent(registry, "smollm2", cache_dir=home.cache_dir)
    build_corpora(home, registry, domains=["code", "general"])
    # At ~49k training tokens only a couple of steps are rehearsal steps: a small general pool suffices.
    return parent, CMGRecipe(domain="code", warmup_steps=4, rehearsal_pool_tokens=8192)


def evaluate(label, model, tokenizer, blocks, metrics=None) -> dict:
    started = time.perf_counter()
    domain = score_lm(model, blocks["domain"])
    general = score_lm(model, blocks["general"])
    row = {
        "model": label, "parameters": count_parameters(model),
        "domain_accuracy": domain.accuracy, "domain_ppl": domain.perplexity, "general_ppl": general.perplexity,
        "generation_tok_s": generation_speed(model, tokenizer, PROMPT, new_tokens=48, repeats=2),
        "eval_seconds": time.perf_counter() - started,
    }
    if metrics:
        row.update({"train_tokens": metrics["tokens"], "train_seconds": metrics["train_seconds_last_run"],
                    "train_tok_s": metrics["train_tokens_per_second"],
                    "trainable_fraction": metrics["trainable_fraction"]})
    console.print(f"  {label}: acc {row['domain_accuracy']:.4f}  ppl {row['domain_ppl']:.2f}  "
                  f"general ppl {row['general_ppl']:.2f}")
    return row


def breed_variants(args, home, registry, parent, base, blocks, tokenizer) -> list[dict]:
    rows = []
    for ratio in args.ratios:
        for label, strategy, trainable, lr in VARIANTS:
            recipe = replace(base, ratio=ratio, strategy=strategy, trainable=trainable, lr=lr,
                             tokens=args.tokens, pool_tokens=args.tokens)
            console.rule(f"p={ratio} {label}")
            outcome = breed_child(registry, home, parent.id, recipe, RunOptions(threads=args.threads))
            child, _ = load_model(outcome.child.path)
            row = evaluate(f"p={ratio} {label}", child, tokenizer, blocks, outcome.child.manifest.metrics)
            rows.append({**row, "ratio": ratio, "variant": label, "child_id": outcome.child.id})
    return rows


def time_kd_loops(args, home, registry, parent, base) -> dict:
    """Tokens/s of training steps with the parent cached (hidden states; top-k) vs run live on every batch."""
    speeds = {}
    for label, teacher in (("cached parent hidden states (exact)", "hidden"),
                           (f"cached parent top-{base.teacher_topk} logits", "topk"), ("live parent", "live")):
        recipe = replace(base, ratio=0.3, tokens=None, steps=10_000, teacher=teacher, seed=99,
                         pool_tokens=base.seq_len * base.batch_size * args.timing_steps)
        options = RunOptions(threads=args.threads, stop_after=args.timing_steps,
                             work_dir=home.cache_dir / "stage1-timing" / teacher)
        outcome = breed_child(registry, home, parent.id, recipe, options)
        speeds[label] = outcome.result.run_tokens / outcome.result.seconds
        console.print(f"  KD loop with {label}: {speeds[label]:,.0f} tokens/s")
    return speeds


def ratio_table(rows: list[dict]) -> Table:
    parent = rows[0]
    table = Table(title="Stage 1: children vs the parent (code domain; ratios are child / parent)")
    for column in ("model", "params", "domain acc", "acc ratio", "domain ppl", "ppl ratio", "general ppl",
                   "general +PPL", "train tokens", "train s", "gen tok/s ratio"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(
            row["model"], f"{row['parameters'] / 1e6:.1f}M ({row['parameters'] / parent['parameters']:.2f})",
            f"{row['domain_accuracy']:.4f}", f"{row['domain_accuracy'] / parent['domain_accuracy']:.3f}",
            f"{row['domain_ppl']:.2f}", f"{row['domain_ppl'] / parent['domain_ppl']:.2f}",
            f"{row['general_ppl']:.2f}", f"{row['general_ppl'] - parent['general_ppl']:+.2f}",
            f"{row.get('train_tokens', 0):,}", f"{row.get('train_seconds', 0):.0f}",
            f"{row['generation_tok_s'] / parent['generation_tok_s']:.2f}",
        )
    return table


def verdicts(rows: list[dict]) -> list[str]:
    """The claims the issue asks about, each stated as met or not with its numbers."""
    parent, lines = rows[0], []
    for ratio in sorted({r["ratio"] for r in rows[1:]}):
        by = {r["variant"]: r for r in rows[1:] if r["ratio"] == ratio}
        profiled = by["profiled"]
        for rival in ("uniform", "scratch (all weights)"):
            won = profiled["domain_accuracy"] > by[rival]["domain_accuracy"]
            lines.append(f"p={ratio}: profiled {'beats' if won else 'does NOT beat'} {rival} on domain accuracy "
                         f"({profiled['domain_accuracy']:.4f} vs {by[rival]['domain_accuracy']:.4f})")
        if abs(ratio - 0.3) < 1e-9:
            kept = profiled["domain_accuracy"] / parent["domain_accuracy"]
            regression = profiled["general_ppl"] - parent["general_ppl"]
            met = kept > 0.9 and regression < 2.0
            lines.append(f"Stage 1 hypothesis (p=0.30 keeps >90% of parent domain accuracy with <2 PPL general "
                         f"regression): {'MET' if met else 'NOT MET'} (kept {kept:.1%}, regression {regression:+.2f} PPL)")
    return lines


def write_report(out: Path, rows, speeds, lines, args, seconds: float) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": "python benchmarks/stage1.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                         f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
              "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(seconds),
              "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "kd_loop_tokens_per_s": speeds,
              "verdicts": lines}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    with open(out.with_suffix(".md"), "w") as stream:
        Console(file=stream, width=200, color_system=None).print(ratio_table(rows))
        stream.write("\n" + "\n".join(f"- {line}" for line in lines) + "\n")
        stream.write("".join(f"- KD loop, {k}: {v:,.0f} tokens/s\n" for k, v in speeds.items()))


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    home = Home.resolve(args.home)
    registry = Registry.open(home.registry_dir)
    parent, base = prepare(args, home, registry)
    parent_model, tokenizer = load_frozen(parent)
    blocks = {name: dataset_blocks(dataset(registry, f"{name}/test").path, tokenizer, base.seq_len,
                                   args.eval_tokens) for name in ("code", "general")}
    blocks = {"domain": blocks["code"], "general": blocks["general"]}
    console.rule("parent")
    rows = [evaluate("parent", parent_model, tokenizer, blocks)]
    rows += breed_variants(args, home, registry, parent, base, blocks, tokenizer)
    console.rule("KD loop timing")
    speeds = time_kd_loops(args, home, registry, parent, base)
    lines = verdicts(rows)
    console.print(ratio_table(rows))
    for line in lines:
        console.print(f"- {line}")
    write_report(args.out, rows, speeds, lines, args, time.perf_counter() - started)
    console.print(f"written {args.out}.md and .json ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
