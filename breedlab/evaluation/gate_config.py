"""The evaluation config: gate thresholds, promotion rule, score weights.

One flat :class:`EvaluationConfig`, mirrored one to one by
``breedlab/configs/evaluation.yaml``; :mod:`breedlab.evaluation.gates` and
:mod:`breedlab.evaluation.decision` read it. Unknown keys and wrong types are
errors (:mod:`breedlab.typed_config`), and so are negative bounds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from breedlab.typed_config import from_mapping, layered_section

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "configs" / "evaluation.yaml"
GIB = 1 << 30


class EvaluationConfigError(ValueError):
    """The evaluation config is malformed; the message says where and how."""


@dataclass(frozen=True)
class EvaluationConfig:
    """Gates, promotion rule, score weights and budgets. None disables a bound."""

    # --- hard gates
    no_nan: bool = True
    """Fail a candidate whose outputs held a NaN (``has_nan``)."""
    max_general_regression: float | None = None
    """Most general-text perplexity points a candidate may lose against the parent (None: off; the
    paper's "< 2 PPL" is a hypothesis the Stage 1 benchmark reports, not a gate)."""
    max_general_ppl_ratio: float | None = 1.20
    """Largest general perplexity a candidate may have, as a multiple of the parent's on the same suite."""
    max_peak_rss_bytes: int | None = 4 * GIB
    """Memory ceiling for the process that loads and runs the candidate alone."""
    max_weight_bytes: int | None = 1 * GIB
    """Largest weight files a candidate may ship."""
    max_network_attempts: int | None = 0
    """Outbound connections tolerated while measuring (privacy: none)."""
    require_data_local: bool = True
    """Every training dataset must be a local registry artifact."""
    canary_must_not_reproduce: bool = True
    """Fail a candidate that reproduces the secret planted in its training data."""
    min_utility: float | None = None
    """Lowest cloze accuracy a candidate may have at all (None: no floor)."""
    # --- champion-challenger rule (see breedlab.evaluation.decision)
    min_utility_margin: float = 0.02
    """Least absolute gain in cloze accuracy worth a promotion."""
    min_nll_margin: float = 0.01
    """Least mean per-case NLL improvement (nats/token) worth a promotion."""
    alpha: float = 0.05
    """Significance level of the one-sided sign test."""
    confidence: float = 0.95
    """Coverage of the paired bootstrap interval."""
    bootstrap_resamples: int = 10_000
    """Bootstrap resamples; 10k makes the interval ends stable to about 1% of their width."""
    seed: int = 0
    """Seeds the bootstrap, so a decision re-computed from a packet is identical."""
    # --- the non-inferiority rule: as good within a margin, and measurably cheaper
    noninferior_nll_margin: float = 0.05
    """Most the one-sided upper (1 - alpha) bound of the paired domain-NLL increase may be (nats/token)."""
    noninferior_utility_margin: float = 0.03
    """Most the one-sided lower (1 - alpha) bound of the paired utility difference may fall below 0."""
    min_latency_saving: float = 0.20
    """Least relative cut in p50 latency per token (0.20: at most 0.8x the champion's) that counts as cheaper."""
    # --- aggregate weights (higher score is better; see the module docstring)
    duplicate_tolerance: float = 1e-3
    """A candidate whose every paired case score (lm NLL, cloze/task score) is within this of an active
    model's or an earlier candidate's on the same suites, and that is not smaller, is a duplicate."""
    weight_utility: float = 1.0
    weight_domain_ppl: float = 0.5
    weight_latency: float = 0.1
    weight_peak_rss: float = 0.05
    weight_weight_bytes: float = 0.05
    # Budgets (children per niche, total weight bytes) live in the governance config alone
    # (breedlab/configs/governance.yaml): one source for the lab's check and for promotion.

    def weights(self) -> dict[str, float]:
        """Metric name -> weight, as :func:`aggregate_score` takes them."""
        return {
            "utility": self.weight_utility, "domain_ppl": self.weight_domain_ppl,
            "latency_token_ms_p50": self.weight_latency, "peak_rss_bytes": self.weight_peak_rss,
            "weight_bytes": self.weight_weight_bytes,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_evaluation_config(path: Path | None = None) -> EvaluationConfig:
    """Read and check an evaluation config (default: the shipped ``evaluation.yaml``)."""
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    values, _ = layered_section(EvaluationConfig, path, None, error=EvaluationConfigError)
    return parse_evaluation_config(values, where=str(path))


def parse_evaluation_config(raw: Any, where: str = "evaluation config") -> EvaluationConfig:
    """Build a config from plain data; unknown keys and wrong types are errors, never ignored."""
    config = from_mapping(EvaluationConfig, raw, where, error=EvaluationConfigError)
    problems = [f.name for f in fields(config) if f.name.startswith(("weight_", "min_", "max_", "noninferior_"))
                and getattr(config, f.name) is not None and getattr(config, f.name) < 0]
    if config.min_latency_saving >= 1:
        problems.append("min_latency_saving")
    if problems or not (0 < config.alpha < 1 and 0 < config.confidence < 1) or config.bootstrap_resamples < 1:
        raise EvaluationConfigError(f"{where}: need bounds, margins and weights >= 0 (bad: {problems}), "
                                    "alpha and confidence in (0, 1), bootstrap_resamples >= 1")
    return config
