"""Measuring one candidate: every field of its FitnessVector, on this machine, in one run.

``measure_candidate`` verifies the frozen suites, then (``isolate=True``) runs
the measurement in a fresh ``python -m breedlab.evaluation.measure`` process
that loads only this candidate, so its peak RSS belongs to the candidate
alone. Request and result cross the process boundary as JSON files, never
pickles. Inside, everything (loading included) runs under the network guard,
and a forward hook watches every logit tensor for NaN/inf.

A stage that model code breaks by touching the network (NetworkBlocked) or
that cannot apply (a per-token suite with another tokenizer) leaves its
metrics None with the reason in ``unmeasured``; the attempt itself is counted
in ``network_attempts``, which is what fails the privacy gate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from breedlab.cmg.domain_head import attach_domain_head, greedy_head
from breedlab.evaluation.cost import flops_per_token, weight_bytes
from breedlab.evaluation.fitness import SUITE_FIELDS, FitnessVector, explain_missing
from breedlab.evaluation.latency import LatencySettings, measure_latency
from breedlab.evaluation.machine import machine_description, peak_rss_bytes
from breedlab.evaluation.privacy import (
    NetworkBlocked,
    NetworkGuard,
    canary_reproduced,
    data_local,
    network_guard,
)
from breedlab.evaluation.suites import Suite, TokenizerMismatch, load_suite, run_suite
from breedlab.models.io import count_parameters, load_model, verify_files
from breedlab.registry import MODEL_KINDS, Artifact, Registry
from breedlab.registry.events import utc_now

LATENCY_FIELDS = ("latency_token_ms_p50", "latency_token_ms_p95", "latency_request_ms_p50", "latency_request_ms_p95")
MODEL_FIELDS = (*dict.fromkeys(n for names in SUITE_FIELDS.values() for n in names), *LATENCY_FIELDS,
                "canary_reproduced", "has_nan", "parameters", "flops_per_token")
"""Everything that needs the model loaded: left unmeasured, with the reason, if loading fails."""


class MeasurementFailed(RuntimeError):
    """The isolated measuring process did not produce a result."""


@dataclass
class FiniteWatch:
    seen: bool = False
    """Some forward pass produced a NaN or infinite logit."""


@contextmanager
def finite_watch(model) -> Iterator[FiniteWatch]:
    """Check the logits of every forward pass (suites, latency, canary) while the block runs."""
    import torch

    watch = FiniteWatch()

    def hook(module, args, output) -> None:
        logits = getattr(output, "logits", None)
        if logits is not None and not watch.seen and not bool(torch.isfinite(logits).all()):
            watch.seen = True

    handle = model.register_forward_hook(hook)
    try:
        yield watch
    finally:
        handle.remove()


def load_candidate(artifact: Artifact):
    """(model, tokenizer) of a model artifact, every file re-hashed against its manifest first."""
    if artifact.manifest.kind not in MODEL_KINDS:
        raise ValueError(f"{artifact.id[:12]} is a {artifact.manifest.kind}, not a model")
    expected = {name: entry.sha256 for name, entry in artifact.manifest.files.items()}
    if artifact.manifest.kind == "quantized":
        from breedlab.operators.quantize import load_quantized  # int8 and fp16 weights need their own loader

        verify_files(artifact.path, expected)
        model, tokenizer = load_quantized(artifact.path)
    else:
        model, tokenizer = load_model(artifact.path, expected_files=expected)
    attach_domain_head(model, artifact.path)  # a no-op for a model without one
    return model, tokenizer


def load_suites(registry: Registry, suites: dict[str, str]) -> dict[str, Suite]:
    """Verify every suite (SuiteTampered / UnknownScorer propagate) and that each sits under its own kind."""
    loaded = {}
    for kind, suite_id in suites.items():
        suite = load_suite(registry, suite_id)
        if suite.kind != kind:
            raise ValueError(f"suite {suite.id[:12]} is a {suite.kind!r} suite, given as {kind!r}")
        loaded[kind] = suite
    return loaded


def measure_candidate(registry: Registry, candidate_id: str, suites: dict[str, str], *,
                      parent_general_ppl: float | None = None, canary: dict[str, str] | None = None,
                      latency: LatencySettings | None = None, isolate: bool = True,
                      before_scoring: Callable[[Any], None] | None = None) -> FitnessVector:
    """The fitness vector of ``candidate_id`` on ``suites`` (suite kind -> eval-suite id).

    ``parent_general_ppl`` (the parent's general_ppl on the same retention suite) gives
    general_regression; ``canary`` = {"prefix", "secret"} gives canary_reproduced.
    ``before_scoring(model)`` runs inside the guard before any scoring (tests, probes); it
    needs ``isolate=False``, since a callable cannot cross into the child process as JSON.
    """
    loaded = load_suites(registry, suites)  # refused here, before any process is started
    latency = latency or LatencySettings()
    if canary is not None and set(canary) != {"prefix", "secret"}:
        raise ValueError("canary must be {'prefix': ..., 'secret': ...}")
    if isolate:
        if before_scoring is not None:
            raise ValueError("before_scoring cannot run in an isolated measurement; use isolate=False")
        return _measure_isolated(registry, candidate_id, suites, parent_general_ppl, canary, latency)
    return measure_here(registry, candidate_id, loaded, parent_general_ppl=parent_general_ppl, canary=canary,
                        latency=latency, before_scoring=before_scoring, isolated=False)


def measure_here(registry: Registry, candidate_id: str, suites: dict[str, Suite], *,
                 parent_general_ppl: float | None, canary: dict[str, str] | None, latency: LatencySettings,
                 before_scoring: Callable[[Any], None] | None, isolated: bool) -> FitnessVector:
    """Measure in this process (the body of both the isolated child and ``isolate=False``)."""
    artifact = registry.get(candidate_id)
    fitness = FitnessVector(candidate=artifact.id, suites={kind: s.id for kind, s in suites.items()})
    with network_guard() as guard:
        loaded = _stage(fitness, guard, MODEL_FIELDS, lambda: load_candidate(artifact))
        if loaded is not None:
            model, tokenizer = loaded
            with finite_watch(model) as watch:
                if before_scoring is not None:
                    _stage(fitness, guard, (), lambda: before_scoring(model))  # its attempts count all the same
                for kind, suite in suites.items():
                    _stage(fitness, guard, SUITE_FIELDS[kind],
                           lambda s=suite: _score(fitness, s, model, tokenizer, parent_general_ppl))
                _stage(fitness, guard, LATENCY_FIELDS, lambda: _latency(fitness, model, tokenizer, latency))
                if canary is not None:
                    _stage(fitness, guard, ("canary_reproduced",), lambda: setattr(
                        fitness, "canary_reproduced", canary_reproduced(model, tokenizer, **canary)))
            fitness.has_nan = watch.seen or bool(fitness.has_nan)
            _model_costs(fitness, model, suites)
        fitness.weight_bytes = weight_bytes(artifact.manifest)
        fitness.data_local, reason = data_local(registry, artifact)
        if not fitness.data_local:
            fitness.unmeasured["data_local"] = reason  # the value is measured (False); this says why
    fitness.network_attempts = guard.count
    fitness.peak_rss_bytes = peak_rss_bytes()
    if not isolated:
        fitness.unmeasured["peak_rss_bytes"] = ("not isolated: the peak of the whole evaluating process, "
                                                "other models it loaded included; use isolate=True")
    fitness.machine, fitness.measured_utc = machine_description(), utc_now(seconds=True)
    explain_missing(fitness, set(suites))
    return fitness


def _stage(fitness: FitnessVector, guard: NetworkGuard, names: tuple[str, ...], run: Callable[[], Any]) -> Any:
    """Run one measuring stage and return its result; if it fails, leave ``names`` unmeasured.

    A failure is recorded (not raised) when it is a blocked network call, a tokenizer
    mismatch, or any error after a network attempt (model code may wrap NetworkBlocked in
    its own exception): a run that touched the network must still yield a vector whose
    privacy gate fails. Any other error is a bug and propagates.
    """
    try:
        return run()
    except Exception as exc:
        if not isinstance(exc, (NetworkBlocked, TokenizerMismatch)) and guard.count == 0:
            raise
        for name in names:
            setattr(fitness, name, [] if isinstance(getattr(fitness, name), list) else None)
            fitness.unmeasured[name] = f"{type(exc).__name__}: {exc}"
        return None


def _score(fitness: FitnessVector, suite: Suite, model, tokenizer, parent_general_ppl: float | None) -> None:
    result = run_suite(suite, model, tokenizer)
    if result.nonfinite:
        fitness.has_nan = True
        for name in SUITE_FIELDS[suite.kind]:
            fitness.unmeasured[name] = f"non-finite logits on suite {suite.id[:12]}"
        return  # NaN numbers cannot go into JSON evidence; has_nan fails the gate instead
    if suite.kind == "cloze":
        fitness.utility, fitness.utility_cases = result.accuracy, [int(v) for v in result.case_scores]
    elif suite.kind == "task":  # an examples niche: its task's metric is the utility (no cloze suite beside it)
        fitness.utility, fitness.utility_cases = result.accuracy, list(result.case_scores)
    elif suite.kind == "lm":
        fitness.domain_accuracy, fitness.domain_ppl = result.accuracy, result.perplexity
        fitness.domain_case_nll = list(result.case_scores)
    else:
        fitness.general_ppl = result.perplexity
        if parent_general_ppl is not None:
            set_general_baseline(fitness, parent_general_ppl)


def set_general_baseline(fitness: FitnessVector, parent_general_ppl: float) -> None:
    """The general regression against the parent's general PPL on the same retention suite (also when
    the two were measured apart, as a population's tasks measure them)."""
    fitness.general_regression = fitness.general_ppl - parent_general_ppl
    fitness.general_ppl_ratio = fitness.general_ppl / parent_general_ppl


def _latency(fitness: FitnessVector, model, tokenizer, settings: LatencySettings) -> None:
    import torch

    with greedy_head(model):  # latency is timed on greedy decoding, the only place a domain head's fast path runs
        timed = measure_latency(model, tokenizer, settings)
    fitness.latency_token_ms_p50, fitness.latency_token_ms_p95 = timed.token_ms_p50, timed.token_ms_p95
    fitness.latency_request_ms_p50, fitness.latency_request_ms_p95 = timed.request_ms_p50, timed.request_ms_p95
    fitness.latency_threads = settings.threads or torch.get_num_threads()


def _model_costs(fitness: FitnessVector, model, suites: dict[str, Suite]) -> None:
    """Parameter count and analytical FLOPs per token, from the loaded model and its config."""
    fitness.parameters = count_parameters(model)
    context = context_length(suites)
    try:
        if context is None:
            fitness.unmeasured["flops_per_token"] = "no suite gives a context length"
        else:
            fitness.flops_per_token = flops_per_token(model.config, context)
    except AttributeError as exc:  # not a Llama-family config
        fitness.unmeasured["flops_per_token"] = f"config lacks a field the formula needs ({exc})"


def context_length(suites: dict[str, Suite]) -> int | None:
    """The context length FLOPs are quoted at: the lm passage, else the cloze context + option."""
    for kind in ("lm", "retention"):
        if kind in suites:
            return int(suites[kind].settings["tokens"])
    if "cloze" in suites:
        settings = suites["cloze"].settings
        return int(settings["context_tokens"]) + int(settings["continuation_tokens"])
    return None


def _measure_isolated(registry: Registry, candidate_id: str, suites: dict[str, str], parent_general_ppl,
                      canary, latency: LatencySettings) -> FitnessVector:
    """Run ``measure_here`` in a fresh interpreter that loads only this candidate; JSON both ways."""
    import torch

    request = {"registry": str(registry.root), "candidate": candidate_id, "suites": suites,
               "parent_general_ppl": parent_general_ppl, "canary": canary,
               "latency": {**asdict(latency), "prompts": list(latency.prompts)},
               "threads": torch.get_num_threads()}
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="breedlab-measure-") as scratch:
        request_path, result_path = Path(scratch) / "request.json", Path(scratch) / "result.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "breedlab.evaluation.measure", str(request_path),
                               str(result_path)], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not result_path.is_file():
            raise MeasurementFailed(f"measuring {candidate_id[:12]} failed (exit {done.returncode}):\n"
                                    f"{done.stderr[-4000:]}")
        return FitnessVector.from_dict(json.loads(result_path.read_text(encoding="utf-8")))


def main(argv: list[str]) -> int:
    """Child entry point: ``python -m breedlab.evaluation.measure REQUEST.json RESULT.json``."""
    import torch

    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    torch.set_num_threads(int(request["threads"]))  # the same threads as the parent asked for
    registry = Registry.open(Path(request["registry"]))
    settings = request["latency"]
    fitness = measure_here(
        registry, request["candidate"], load_suites(registry, request["suites"]),
        parent_general_ppl=request["parent_general_ppl"], canary=request["canary"],
        latency=LatencySettings(tuple(settings["prompts"]), settings["new_tokens"], settings["repeats"],
                                settings.get("threads")),
        before_scoring=None, isolated=True)
    Path(argv[1]).write_text(json.dumps(fitness.to_dict(), allow_nan=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
