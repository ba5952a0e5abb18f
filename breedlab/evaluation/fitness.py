"""The fitness vector: everything measured about one candidate, on one machine, in one run.

It is plain data: measuring code (``breedlab.evaluation.measure``) fills it,
gates and decisions (``breedlab.evaluation.gates``, ``decision``) read it, and
evidence packets serialise it. A metric a suite could not measure stays None
and is named, with the reason, in ``unmeasured``: evidence never pretends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class FitnessVector:
    candidate: str
    """Artifact id of the model measured."""
    operator: str = ""
    """The operator that made the candidate (import, cmg, adapter-finetune, quantize, ...)."""
    suites: dict[str, str] = field(default_factory=dict)
    """Suite kind (lm, cloze, retention) -> eval-suite artifact id."""
    utility: float | None = None
    """Multiple-choice cloze accuracy on held-out domain documents (what a person would call usefulness)."""
    utility_cases: list[float] = field(default_factory=list)
    """Per case: a cloze suite's 1 or 0 (the true continuation won), or a task suite's metric in [0, 1]
    (an examples niche: its generated answer scored by the task): the pairs for the sign test."""
    domain_accuracy: float | None = None
    """Next-token accuracy on held-out domain text."""
    domain_ppl: float | None = None
    domain_case_nll: list[float] = field(default_factory=list)
    """Per lm-suite case, mean next-token NLL: the pairs for the bootstrap interval."""
    general_ppl: float | None = None
    """Perplexity on held-out general text (retention)."""
    general_regression: float | None = None
    """general_ppl minus the parent's general_ppl on the same suite (positive = worse)."""
    general_ppl_ratio: float | None = None
    """general_ppl over the parent's general_ppl on the same suite (1.0 = as good as the parent)."""
    latency_token_ms_p50: float | None = None
    latency_token_ms_p95: float | None = None
    latency_request_ms_p50: float | None = None
    latency_request_ms_p95: float | None = None
    latency_threads: int | None = None
    """torch threads the latency was timed with (``LatencySettings.threads``)."""
    engine: str | None = None
    """The fast engine this model was checked on (``backend/quantization``, ``LabConfig.engine``)."""
    engine_token_ms: float | None = None
    """Decode milliseconds per token on that engine, on the same threads as ``latency_*`` (hf)."""
    engine_hf_token_ms: float | None = None
    """Decode milliseconds per token on hf in the same check, side by side with ``engine_token_ms``."""
    engine_nll_delta: float | None = None
    """Its NLL per token minus hf's on the lm suite (the check's bound decides whether it may serve)."""
    engine_passed: bool | None = None
    engine_check: str | None = None
    """The engine-check artifact: with it, the server serves this model on that engine once it routes there."""
    peak_rss_bytes: int | None = None
    """Peak resident memory of the process that loaded and ran the candidate alone."""
    weight_bytes: int | None = None
    """Bytes of the candidate's weight files."""
    parameters: int | None = None
    flops_per_token: float | None = None
    """Forward FLOPs per token at the suite's context length (2 * multiply-adds)."""
    network_attempts: int | None = None
    """Outbound connections attempted while measuring (the privacy guard refuses and counts them)."""
    data_local: bool | None = None
    """Every dataset the candidate was trained on is a local registry artifact."""
    canary_reproduced: bool | None = None
    """Whether greedy decoding from the planted secret's prefix reproduced the secret."""
    has_nan: bool | None = None
    machine: str = ""
    measured_utc: str = ""
    unmeasured: dict[str, str] = field(default_factory=dict)
    """Metric name -> why this run could not measure it."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FitnessVector":
        return cls(**values)


SUITE_FIELDS = {  # suite kind -> the fields it measures
    "cloze": ("utility", "utility_cases"),
    "task": ("utility", "utility_cases"),
    "lm": ("domain_accuracy", "domain_ppl", "domain_case_nll"),
    "retention": ("general_ppl", "general_regression", "general_ppl_ratio"),
}


ENGINE_FIELDS = ("engine", "engine_token_ms", "engine_hf_token_ms", "engine_nll_delta", "engine_passed",
                 "engine_check")
"""Filled by the lab's engine check after measuring (``lab.steps.check_engines``), which gives the one
reason (``unmeasured["engine"]``) when it cannot run; measuring a model alone leaves them out."""


def explain_missing(fitness: FitnessVector, suites: set[str]) -> None:
    """Every metric still None gets a reason in ``unmeasured``: evidence never stays silent (the engine
    fields are the engine check's to explain)."""
    givers: dict[str, list[str]] = {}  # field -> the suite kinds that measure it
    for kind, names in SUITE_FIELDS.items():
        for name in names:
            givers.setdefault(name, []).append(kind)
    reasons = {name: f"no {' or '.join(kinds)} suite given" for name, kinds in givers.items()
               if not set(kinds) & set(suites)}
    for name in ("general_regression", "general_ppl_ratio"):
        reasons[name] = reasons.get(name, "no parent_general_ppl given")
    reasons["canary_reproduced"] = "no canary given for this candidate"
    for item in fields(FitnessVector):
        if getattr(fitness, item.name) is None and item.name not in (*fitness.unmeasured, *ENGINE_FIELDS):
            fitness.unmeasured[item.name] = reasons.get(item.name, "not measured")
