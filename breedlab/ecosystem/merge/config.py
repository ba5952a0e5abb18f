"""The ``merge`` section of ``configs/ecosystem.yaml``: when two specialists merge, how, and what the
merged model must show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from breedlab import typed_config
from breedlab.ecosystem.config import SHIPPED, load_section


@dataclass(frozen=True)
class MergeConfig:
    """When two specialists merge, how, and what the merged model must show."""

    review_every_windows: int = 3
    """The steward reviews every pair of champion children at the close of every this many windows
    (``steward.close_window``; each review leaves its events, "not converged" included). 0: never."""
    min_centroid_similarity: float = 0.85
    """Cosine similarity of the two domains' centroids at or above which they may have converged."""
    min_cross_ratio: float = 0.9
    """Each specialist's score on the other's suite, as a share of the other's own score, at least this."""
    cross_metric: str = "utility"
    """utility (cloze accuracy) | inverse_ppl (1 / domain perplexity): the cross-evaluation score."""
    method: str = "ties"
    """Weight-merge method: linear | ties | dare."""
    density: float = 0.2
    """TIES: share of each task vector kept, by magnitude."""
    scaling: float = 1.0
    """TIES: lambda, the merged task vector's scale."""
    allow_distill: bool = True
    """Distil both into one child when the weights cannot be merged; False refuses instead."""
    distill: dict = field(default_factory=dict)
    """Overrides of ``MergeDistillRecipe`` fields (ratio, tokens, seq_len, teacher, ...)."""
    ensemble_baseline: bool = True
    """Measure the two specialists' logit ensemble beside every merge; the merged model must be not
    significantly worse than it (on the same margins) at less than its cost."""
    max_nll_loss: float = 0.01
    """NLL (nats/token) the merged model may lose to a specialist: worse when the CI's low end is above it.
    The size of decide()'s min_nll_margin: a loss smaller than a gain worth promoting counts as none."""
    max_utility_loss: float = 0.02
    """Cloze accuracy the merged model may lose (significantly) to a specialist; decide()'s min_utility_margin."""
    lm_cases: int = 32
    cloze_cases: int = 60
    retention_cases: int = 24
    passage_tokens: int = 128
    """Sizes of the frozen suites built when the caller gives none."""
    seed: int = 0

    def __post_init__(self) -> None:
        from breedlab.operators.merge_distill import MergeDistillRecipe
        from breedlab.operators.merge_methods import merge_method

        if self.cross_metric not in ("utility", "inverse_ppl"):
            raise ValueError(f"cross_metric must be utility or inverse_ppl, got {self.cross_metric!r}")
        merge_method(self.method)  # an unknown method is refused with the known ones
        # The recipe checks the overrides now, not mid-merge; the models are the merge's own.
        typed_config.from_mapping(MergeDistillRecipe, self.distill, "distill", keys="distill keys",
                                  fixed={"models": ("a", "b")})
        if not 0 < self.density <= 1 or self.min_cross_ratio < 0:
            raise ValueError("density must be in (0, 1] and min_cross_ratio >= 0")

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> MergeConfig:
        """A config from plain data (the ``merge:`` section of ecosystem.yaml); unknown keys are errors."""
        return typed_config.from_mapping(cls, values or {}, "merge", keys="merge keys")


def load_merge_config(path=None) -> MergeConfig:
    """The ``merge`` section of ``ecosystem.yaml`` (the shipped one by default)."""
    return load_section(MergeConfig, "merge", path or SHIPPED)
