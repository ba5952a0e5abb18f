"""Stages 1-3 of the Genesis V1 roadmap, measured: compact children against the real parent.

For each domain (code, medical), side by side in one run on one machine: the
parent and its int8 and fp16 copies; the paper's recipe (``paper`` preset: depth first,
LoRA only, T = 4) at p in {0.1, 0.3}; the ``compact`` preset at three sizes,
each also stacked with int8 and with fp16 weight-only quantization; the retention curve of
one size over training budgets; ``uniform`` and ``scratch`` at equal budget;
a scratch child at the same p on 20x the tokens (Stage 2; note that ``scratch``
takes the depth-first solver's shape, not the compact child's width-pruned
one); and a grandchild at half the compact child's size (Stage 3). Ratios are to the fp32
parent measured in the same run.

Rows are cached in the output JSON by artifact id and evaluation settings,
and children are reused from the registry, so an interrupted run resumes and
a longer budget can be added later without re-measuring the rest:

    .venv/bin/python benchmarks/stage1.py --home /tmp/home            # every row (hours on 2 cores)
    .venv/bin/python benchmarks/stage1.py --rows "compact*" --domains code
    .venv/bin/python benchmarks/stage1.py --quick                      # pico smoke run, a minute
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage1_eval import (  # noqa: E402
    LEGACY_GEN_SUFFIX,
    SPEED_KEY,
    eval_inputs,
    evaluate_quality,
    from_legacy,
    served_flops,
    time_generation,
)

from breedlab.cmg.recipe import RunOptions, preset_recipe  # noqa: E402
from breedlab.home import Home  # noqa: E402
from breedlab.operators.cmg import breed_child  # noqa: E402
from breedlab.operators.quantize import QuantizeRecipe, quantize  # noqa: E402
from breedlab.registry import Registry  # noqa: E402

console = Console(width=200)
QUANTS = ("int8", "fp16")  # the weight-only stacks of ops/quantize.py measured beside each float model


@dataclass(frozen=True)
class Row:
    """One model to measure: how to get it, and what to call it."""

    label: str
    strategy: str  # what the json's ``strategy`` key says (parent, paper, compact, uniform, ...)
    preset: str | None = None  # None: the parent itself
    overrides: dict = field(default_factory=dict)
    quant: str | None = None  # stack weight-only quantization on top: "int8" or "fp16" (ops/quantize.py)
    source: str | None = None  # a row label whose model is this one's parent (Stage 3)


def plan_rows(args) -> list[Row]:
    budget, size = args.budget, args.curve_size
    compact = lambda p, tokens, **kw: {"ratio": p, "tokens": tokens, "pool_tokens": args.pool, **kw}  # noqa: E731
    rows = [Row("parent", "parent")] + [Row(f"parent {q}", "parent", quant=q) for q in QUANTS]
    rows += [Row(f"paper p={p}", "paper", "paper", {"ratio": p, "tokens": budget, "pool_tokens": args.pool})
             for p in args.paper_ratios]
    for p in args.sizes:
        rows += [Row(f"compact p={p}", "compact", "compact", compact(p, budget))]
        rows += [Row(f"compact p={p} {q}", "compact", "compact", compact(p, budget), quant=q) for q in QUANTS]
    # The child as first bred, before the budgets sampled the whole split (its first sources only) and
    # with the preset's first calibration mix and rehearsal pool: the fix's effect on the same blocks.
    rows.append(Row(f"compact p={size} document order", "compact", "compact",
                    compact(size, budget, data_order="document", calibration_general_share=0.25,
                            rehearsal_pool_tokens=32_768)))
    rows += [Row(f"compact p={size} {tokens // 1000}k tok", "compact", "compact", compact(size, tokens))
             for tokens in args.curve if tokens != budget]
    for strategy in ("uniform", "scratch"):
        rows.append(Row(f"{strategy} p={size}", strategy, "compact", compact(size, budget, strategy=strategy)))
    rows.append(Row(f"scratch p={size} 20x tokens", "scratch", "compact",
                    compact(size, 20 * budget, strategy="scratch")))
    rows.append(Row(f"grandchild p={args.grandchild_ratio}", "compact", "compact",
                    compact(args.grandchild_ratio, budget), source=f"compact p={size}"))
    if args.set:  # a recipe variant: its rows say so in their labels (the parents' rows are unchanged)
        suffix = " [" + ", ".join(f"{k}={v}" for k, v in args.set.items()) + "]"
        rows = [row if row.preset is None else
                Row(row.label + suffix, row.strategy, row.preset, {**row.overrides, **args.set}, row.quant,
                    row.source and row.source + suffix) for row in rows]
    # The fp32 parent always stays: every ratio is to it (its row is cached after the first run).
    return [row for row in rows if not args.rows or row.label == "parent"
            or any(fnmatch.fnmatch(row.label, pattern) for pattern in args.rows)]


def model_for(row: Row, domain: str, args, home, registry, parent_id: str, made: dict):
    """The artifact ``row`` measures (bred, quantized or reused from the registry)."""
    options = RunOptions(threads=args.threads)
    if row.preset is None:
        artifact = registry.get(parent_id)
    else:
        if row.source and row.source not in made:
            raise SystemExit(f"{row.label} is bred from {row.source!r}: include that row (--rows)")
        source = made[row.source] if row.source else parent_id
        recipe = preset_recipe(row.preset, domain, **{**args.base, **row.overrides})
        console.rule(f"{domain}: {row.label}")
        outcome = breed_child(registry, home, source, recipe, options)
        if outcome.child is None:
            raise SystemExit(f"{row.label} was interrupted; run again to resume")
        artifact = outcome.child
    made[row.label if not row.quant else row.label.replace(f" {row.quant}", "", 1)] = artifact.id
    if row.quant:
        scheme = {"int8": "symmetric", "fp16": "fp16"}[row.quant]
        artifact = quantize(registry, home, artifact.id, QuantizeRecipe(scheme=scheme), options,
                            drift_domain=domain).child
    return artifact


def measure(args, home, registry, parent_id: str, cache: dict) -> list[dict]:
    rows, retimed = [], set()
    for domain in args.domains:
        inputs = eval_inputs(registry, parent_id, domain, args)
        made: dict[str, str] = {}
        for row in plan_rows(args):
            artifact = model_for(row, domain, args, home, registry, parent_id, made)
            key, speed_key = (f"{artifact.id}:{domain}:{suffix}" for suffix in (inputs.settings_key, SPEED_KEY))
            if key not in cache and key + LEGACY_GEN_SUFFIX in cache:
                cache[key] = from_legacy(cache[key + LEGACY_GEN_SUFFIX], *vocab_and_hidden(registry, parent_id))
            if key not in cache:
                cache[key] = evaluate_quality(artifact, registry, inputs)
                save(args, cache)
            if speed_key not in cache or (args.retime and speed_key not in retimed):
                retimed.add(speed_key)
                cache[speed_key] = time_generation(artifact, inputs)
                save(args, cache)
            entry = {**cache[key], **cache[speed_key]}
            rows.append({**entry, "flops_per_token": served_flops(entry), "label": row.label, "domain": domain,
                         "strategy": row.strategy, "int8": row.quant == "int8",
                         "quant": row.quant})
        del inputs  # the parent held for timing
        parent = next(r for r in rows if r["domain"] == domain and r["label"] == "parent")
        for entry in (r for r in rows if r["domain"] == domain):
            add_ratios(entry, parent)
    return rows


def vocab_and_hidden(registry, parent_id: str) -> tuple[int, int]:
    """The parent's vocabulary and width, which every child here shares (a width-pruned child keeps d_model)."""
    config = json.loads((registry.get(parent_id).path / "config.json").read_text())
    return config["vocab_size"], config["hidden_size"]


def add_ratios(row: dict, parent: dict) -> None:
    """Quality and size ratios to the parent's row (the speed ratio was timed in pairs already)."""
    row["domain_accuracy_ratio"] = row["domain_accuracy"] / parent["domain_accuracy"]
    row["general_ppl_ratio"] = row["general_ppl"] / parent["general_ppl"]
    row["ratio_nonembed"] = row["nonembed_parameters"] / parent["nonembed_parameters"]
    row["ratio_all"] = row["parameters"] / parent["parameters"]
    row["flops_ratio"] = row["flops_per_token"] / parent["flops_per_token"]


def table(rows: list[dict]) -> Table:
    out = Table(title="Stage 1: children vs the fp32 parent (ratios are child / parent, same run, same machine)")
    columns = ("domain", "model", "params", "p (non-emb / all)", "GFLOP/tok", "gen tok/s", "gen ratio",
               "acc", "acc ratio", "domain PPL", "general PPL", "gen PPL ratio", "utility", "train tok",
               "breed CPU s")
    for column in columns:
        out.add_column(column, justify="left" if column in ("domain", "model") else "right")
    for r in rows:
        out.add_row(r["domain"], r["label"], f"{r['parameters'] / 1e6:.1f}M",
                    f"{r['ratio_nonembed']:.2f} / {r['ratio_all']:.2f}", f"{r['flops_per_token'] / 1e9:.3f}",
                    f"{r['gen_tok_s']:.1f}", f"{r['gen_tok_s_ratio']:.2f}", f"{r['domain_accuracy']:.4f}",
                    f"{r['domain_accuracy_ratio']:.3f}", f"{r['domain_ppl']:.2f}", f"{r['general_ppl']:.2f}",
                    f"{r['general_ppl_ratio']:.2f}", f"{r['utility']:.3f}", f"{r['train_tokens']:,}",
                    f"{r['breed_cpu_seconds']:.0f}")
    return out


def all_domains(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["domain"] for r in rows))


def verdicts(rows: list[dict], args, domains: list[str] | None = None) -> list[str]:
    lines = []
    for domain in domains or args.domains:
        mine = [r for r in rows if r["domain"] == domain and r["strategy"] != "parent"]
        hits = [r for r in mine if r["gen_tok_s_ratio"] >= 1.6 and r["domain_accuracy_ratio"] >= 0.95
                and r["general_ppl_ratio"] <= 1.20 and r["breed_cpu_seconds"] <= 45 * 60]
        fast = [r for r in mine if r["gen_tok_s_ratio"] >= 1.6]
        best = (max(fast, key=lambda r: r["domain_accuracy_ratio"]) if fast
                else max(mine, key=lambda r: r["gen_tok_s_ratio"], default=None))
        if hits:
            lines.append(f"{domain}: target MET by {', '.join(r['label'] for r in hits)}")
        elif best is not None:
            lines.append(f"{domain}: target (>=1.6x gen tok/s, >=95% acc, general PPL <=1.20x, <=45 CPU-min) "
                         f"NOT MET; closest ({'best accuracy at >=1.6x' if fast else 'fastest'}): "
                         f"{best['label']} (gen {best['gen_tok_s_ratio']:.2f}x, acc "
                         f"{best['domain_accuracy_ratio']:.1%}, general PPL {best['general_ppl_ratio']:.2f}x, "
                         f"{best['breed_cpu_seconds'] / 60:.0f} CPU-min)")
        paper = next((r for r in mine if r["label"] == "paper p=0.3"), None)
        if paper is not None:
            parent = next(r for r in rows if r["domain"] == domain and r["label"] == "parent")
            regression = paper["general_ppl"] - parent["general_ppl"]
            met = paper["domain_accuracy_ratio"] > 0.9 and regression < 2.0
            lines.append(f"{domain}: Stage 1 hypothesis (paper p=0.3 keeps >90% accuracy with <2 PPL general "
                         f"regression): {'MET' if met else 'NOT MET'} ({paper['domain_accuracy_ratio']:.1%}, "
                         f"{regression:+.1f} PPL)")
    return lines


def save(args, cache: dict, rows: list[dict] | None = None) -> dict:
    out = args.out.with_suffix(".json")
    record = json.loads(out.read_text()) if out.is_file() else {}
    # Only the measured rows survive from an earlier run (keyed by artifact and settings); the rest
    # of the record describes this run.
    record = {"rows": record.get("rows", []), "verdicts": record.get("verdicts", [])}
    record.update({"command": "python benchmarks/stage1.py " + " ".join(sys.argv[1:]),
                   "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                              f"{args.threads} torch threads, torch {torch.__version__}",
                   "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cache": cache})
    if rows is not None:
        # Rows accumulate over runs of a few rows each: a row measured now replaces the earlier one
        # with the same domain and label; the verdicts are recomputed over all of them.
        fresh = {(r["domain"], r["label"]) for r in rows}
        rows = [r for r in record["rows"] if (r["domain"], r["label"]) not in fresh] + rows
        record.update({"rows": rows, "verdicts": verdicts(rows, args, all_domains(rows)),
                       "args": {k: str(v) for k, v in vars(args).items()}})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(out)
    return record


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--domains", nargs="+", default=["code", "medical"])
    parser.add_argument("--rows", nargs="*", default=[],
                        help="only rows whose label matches one of these (fnmatch: 'compact*')")
    parser.add_argument("--budget", type=int, default=98_304, help="training tokens of most children")
    parser.add_argument("--pool", type=int, default=65_536, help="domain tokens the parent is cached on")
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.6, 0.7, 0.8])
    parser.add_argument("--paper-ratios", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--curve-size", type=float, default=0.8)
    parser.add_argument("--curve", type=int, nargs="+", default=[49_152, 196_608, 1_048_576])
    parser.add_argument("--grandchild-ratio", type=float, default=0.5)
    parser.add_argument("--retime", action="store_true",
                        help="time the selected rows' speed again (on this host, side by side) even if cached")
    parser.add_argument("--eval-tokens", type=int, default=16_384, help="held-out tokens per split")
    parser.add_argument("--cloze-cases", type=int, default=60)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="recipe overrides for every bred row (a variant; JSON values): rehearsal_pool_tokens=65536")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="pico lab instead of SmolLM2 (smoke test)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/stage1"))
    args = parser.parse_args(argv)
    args.base = {}
    args.set = dict(_override(item) for item in args.set)
    if args.quick:
        args.base = {"batch_size": 4, "seq_len": 64, "profile_tokens": 1024, "proxy_tokens": 512,
                     "rehearsal_pool_tokens": 1024, "warmup_steps": 2}
        args.budget, args.pool, args.curve, args.eval_tokens, args.cloze_cases = 2048, 2048, [1024], 1024, 8
        args.sizes, args.curve_size, args.domains = [0.5], 0.5, ["code"]
    return args


def _override(item: str) -> tuple[str, object]:
    field_name, sep, value = item.partition("=")
    if not sep:
        raise SystemExit(f"--set takes FIELD=VALUE, got {item!r}")
    try:
        return field_name, json.loads(value)
    except json.JSONDecodeError:
        return field_name, value  # a bare string (strategy=width)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    home = Home.resolve(args.home)
    registry = Registry.open(home.registry_dir)
    if args.quick:
        from breedlab.lab.pico_home import build_pico_lab

        parent_id = build_pico_lab(registry, home.cache_dir).parent.id
    else:
        parent_id = registry.find(kind="parent", name="smollm2-135m-instruct")[0].id
    out = args.out.with_suffix(".json")
    cache = json.loads(out.read_text()).get("cache", {}) if out.is_file() else {}
    rows = measure(args, home, registry, parent_id, cache)
    console.print(table(rows))
    record = save(args, cache, rows)
    for line in record["verdicts"]:
        console.print(f"- {line}")
    with open(args.out.with_suffix(".md"), "w") as stream:  # every row measured so far
        Console(file=stream, width=240, color_system=None).print(table(record["rows"]))
        stream.write("\n" + "\n".join(f"- {line}" for line in record["verdicts"]) + "\n")


if __name__ == "__main__":
    main()
