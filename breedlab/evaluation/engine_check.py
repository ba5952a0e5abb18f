"""Exactness before speed: a backend serves a model only after a recorded check against ``hf``.

A check runs the model twice on its frozen lm suite, once on the ``hf``
reference (float32 transformers, exactly what the lab evaluated) and once on
the candidate engine, and compares:

- the NLL per token over every passage: the mean difference must lie within
  ``nll_bound`` (default 0.01 nats/token);
- greedy continuations of ``prompts`` fixed prompts (each passage's first
  ``prompt_tokens`` tokens): at an exact quantization (f32, float32) every one
  must be identical; at a lossy one the share that is identical and the share
  of tokens before the first divergence are reported, and the NLL bound alone
  decides, since one flipped near-tie sends the rest of a greedy answer elsewhere.

Decode and prefill speed are measured on the same prompts for both engines, so
the check also says how much faster the candidate is on this machine. The check
is a registry artifact (kind ``engine-check``, registered by the evaluator)
whose parent is the model and whose data is the suite; its recipe names the
backend and its version, the quantization and the sha256 of every converted
file, so a check says exactly which bytes it vouches for. A failed check is
registered too: it is the recorded reason a quantization is refused.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from breedlab.engines import Engine, Sampling, get_backend
from breedlab.engines.hf import folder_quantization
from breedlab.engines.loading import folder_engine, model_folder
from breedlab.evaluation.passages import case_blocks
from breedlab.evaluation.suites import load_suite
from breedlab.registry import Artifact, Registry

CHECK_KIND = "engine-check"
CHECK_FILE = "check.json"
EXACT_QUANTIZATIONS = ("fp32", "f32", "float32")


@dataclass(frozen=True)
class CheckSettings:
    nll_bound: float = 0.01
    """Largest |mean NLL difference| (nats/token) against hf at which the engine may serve."""
    prompts: int = 8
    prompt_tokens: int = 32
    new_tokens: int = 32
    threads: int = 2


@dataclass(frozen=True)
class Speed:
    """One engine's timing on the check's prompts."""

    prefill_tok_s: float
    decode_tok_s: float


def timed_greedy(engine: Engine, prompt_ids: list[int], new_tokens: int) -> tuple[list[int], float, float]:
    """(greedy ids, prefill seconds (to the first token), decode seconds for the rest)."""
    cancel, ids = threading.Event(), []
    start = time.perf_counter()
    first = None
    for token in engine.token_ids(prompt_ids, Sampling(max_new_tokens=new_tokens), cancel):
        ids.append(token)
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return ids, (first or end) - start, end - (first or end)


def greedy_runs(engine: Engine, prompts: list[list[int]], new_tokens: int) -> tuple[list[list[int]], Speed]:
    """Greedy continuations of every prompt and the engine's prefill and decode speed over them."""
    outputs, prefill_s, decode_s, prompt_tokens = [], 0.0, 0.0, 0
    for prompt in prompts:
        ids, prefill, decode = timed_greedy(engine, prompt, new_tokens)
        outputs.append(ids)
        prefill_s, decode_s, prompt_tokens = prefill_s + prefill, decode_s + decode, prompt_tokens + len(prompt)
    decoded = sum(max(0, len(ids) - 1) for ids in outputs)
    return outputs, Speed(prompt_tokens / max(prefill_s, 1e-9), decoded / max(decode_s, 1e-9))


def agreement(reference: list[list[int]], candidate: list[list[int]]) -> dict[str, float]:
    """Share of identical continuations, and of reference tokens before the first divergence."""
    identical = sum(r == c for r, c in zip(reference, candidate))
    prefix = 0
    for r, c in zip(reference, candidate):
        prefix += next((i for i, (a, b) in enumerate(zip(r, c)) if a != b), min(len(r), len(c)))
    total = sum(len(r) for r in reference)
    return {"greedy_identical": identical / max(1, len(reference)), "greedy_prefix_share": prefix / max(1, total)}


def default_suite(registry: Registry, artifact: Artifact) -> str:
    """The model's own niche's lm suite (its recipe's domain), else the general retention suite."""
    domain = artifact.manifest.recipe.get("domain") or artifact.manifest.recipe.get("niche")
    for name in ([f"{domain}/lm"] if domain else []) + ["general/retention"]:
        found = registry.find(kind="eval-suite", name=name)
        if found:
            return found[0].id
    raise ValueError(f"no lm suite to check {artifact.id[:12]} on: give --suite")


def run_check(registry: Registry, home_cache: Path, model_id: str, backend: str, quantization: str,
              suite_id: str | None = None, settings: CheckSettings = CheckSettings(), *,
              actor: str | None = None, progress=None) -> Artifact:
    """Check ``backend`` at ``quantization`` against hf on ``model_id`` and register the check (pass or fail)."""
    from transformers import AutoTokenizer

    artifact = registry.get(model_id)
    suite = load_suite(registry, suite_id or default_suite(registry, artifact))
    tokenizer = AutoTokenizer.from_pretrained(artifact.path, local_files_only=True)
    blocks = case_blocks(tokenizer, suite.cases, int(suite.settings["tokens"])).tolist()  # N x tokens
    folder = model_folder(artifact)  # verified once for both engines
    reference = folder_engine(folder, "hf", folder_quantization(folder), home_cache, threads=settings.threads)
    candidate = folder_engine(folder, backend, quantization, home_cache, threads=settings.threads)
    try:
        body = compare(reference, candidate, blocks, settings, progress)
    finally:
        candidate.close()
    body["passed"], body["reason"] = verdict(body, quantization, settings)
    return _register(registry, artifact, suite.id, backend, quantization, candidate.files, settings, body, actor)


def compare(reference: Engine, candidate: Engine, blocks: list[list[int]], settings: CheckSettings,
            progress=None) -> dict:
    """Per-passage NLL on both engines, greedy agreement and both engines' speed."""
    rows = []
    for number, block in enumerate(blocks):
        ref, cand = reference.nll(block), candidate.nll(block)
        rows.append({"case": number, "hf_nll": sum(ref) / len(ref), "nll": sum(cand) / len(cand)})
        if progress:
            progress(number + 1, len(blocks))
    prompts = [block[:settings.prompt_tokens] for block in blocks[:settings.prompts]]
    ref_out, ref_speed = greedy_runs(reference, prompts, settings.new_tokens)
    cand_out, cand_speed = greedy_runs(candidate, prompts, settings.new_tokens)
    delta = sum(r["nll"] - r["hf_nll"] for r in rows) / len(rows)  # passages are equal length: a per-token mean
    return {"nll_delta": delta, "hf_nll": sum(r["hf_nll"] for r in rows) / len(rows), "cases": rows,
            **agreement(ref_out, cand_out), "speed": asdict(cand_speed), "hf_speed": asdict(ref_speed),
            "decode_ratio_vs_hf": cand_speed.decode_tok_s / max(ref_speed.decode_tok_s, 1e-9)}


def verdict(body: dict, quantization: str, settings: CheckSettings) -> tuple[bool, str]:
    if abs(body["nll_delta"]) > settings.nll_bound:
        return False, (f"NLL moved by {body['nll_delta']:+.4f} nats/token against hf fp32, "
                       f"beyond the bound of {settings.nll_bound}")
    if quantization in EXACT_QUANTIZATIONS and body["greedy_identical"] < 1.0:
        return False, (f"an exact ({quantization}) engine changed {1 - body['greedy_identical']:.0%} of the "
                       "greedy continuations")
    return True, (f"NLL within {settings.nll_bound} ({body['nll_delta']:+.4f}); "
                  f"{body['greedy_identical']:.0%} of greedy continuations identical")


def _register(registry, artifact, suite_id, backend, quantization, files, settings, body, actor) -> Artifact:
    recipe = {"backend": backend, "backend_version": get_backend(backend).version(), "quantization": quantization,
              "engine_files": dict(files), **asdict(settings)}
    metrics = {key: body[key] for key in ("passed", "reason", "nll_delta", "greedy_identical",
                                          "greedy_prefix_share", "decode_ratio_vs_hf")}
    metrics.update(decode_tok_s=body["speed"]["decode_tok_s"], prefill_tok_s=body["speed"]["prefill_tok_s"],
                   hf_decode_tok_s=body["hf_speed"]["decode_tok_s"])
    # timings vary run to run: they are record fields (metrics), not part of the check's identity
    stored = {key: value for key, value in body.items() if key not in ("speed", "hf_speed", "decode_ratio_vs_hf")}
    with tempfile.TemporaryDirectory(prefix="breedlab-check-") as scratch:
        path = Path(scratch) / CHECK_FILE
        path.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
        return registry.register(CHECK_KIND, f"engine-check/{artifact.manifest.name}/{backend}-{quantization}",
                                 {CHECK_FILE: path}, operator="engine-check", recipe=recipe,
                                 parents=(artifact.id,), data=(suite_id,), metrics=metrics, actor=actor)
