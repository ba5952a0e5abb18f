"""Demo profiles (``configs/demo.yaml``): the recipe of a demo run.

A profile says which parent, which domains, the trace's phases, and the few settings
that differ from the shipped ecosystem configuration for a trace of minutes rather than months.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from breedlab.typed_config import expect_mapping, from_mapping, layered_section, read_yaml, with_overrides

PROFILES = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


@dataclass(frozen=True)
class DemoProfile:
    name: str
    parent: str
    """``pico`` (built here, synthetic domains) or a parent source for ``import_parent`` (``smollm2``)."""
    domains: tuple[str, ...]
    parent_domains: tuple[str, ...]
    queries_per_window: int
    window_seconds: float
    seed: int
    phases: tuple[dict, ...]
    lab: dict = field(default_factory=dict)
    detector: dict = field(default_factory=dict)
    rollout: dict = field(default_factory=dict)
    lifecycle: dict = field(default_factory=dict)
    max_query_tokens: int = 64
    router: dict = field(default_factory=dict)
    """``policy`` and the ``FitRecipe`` fields (query_share, train_snippets, params, target) of the router, and
    ``parent_classes``: domains outside the trace the router learns as classes that stay on the parent."""
    merge: dict = field(default_factory=dict)
    """Overrides of ecosystem.yaml's ``merge`` section (``MergeConfig``): the steward's merge reviews."""
    adaptation: dict = field(default_factory=dict)
    """Overrides of ecosystem.yaml's ``router`` section (``RouterConfig``): online adaptation's schedule."""
    queries: dict = field(default_factory=dict)
    """Synthetic queries: ``train_docs`` and ``heldout_docs`` (one query each, by the parent) and
    ``trace_share``, the share of each domain's trace that is query-shaped (from test documents only)."""

    def router_fit(self) -> dict:
        """The router's ``FitRecipe`` fields set by this profile."""
        fields = ("query_share", "train_snippets", "params", "target", "suite_questions")
        return {k: v for k, v in self.router.items() if k in fields}

    def lab_config(self, niche: str):
        """The ``LabConfig`` each spawn of this profile runs (YAML lists become the config's tuples)."""
        from breedlab.lab.run import LabConfig

        return overridden(LabConfig(niche=niche), self.lab)

    @property
    def router_parent_domains(self) -> tuple[str, ...]:
        """What the router keeps on the parent: the parent's domains and the ``parent_classes`` it learns."""
        return (*self.parent_domains, *[d for d in self.router.get("parent_classes", ()) if d not in self.domains])

    @property
    def data_domains(self) -> list[str]:
        """Every domain whose corpora and synthetic queries the demo needs: the trace's and the router's."""
        return [*self.domains, *[d for d in self.router_parent_domains if d not in self.domains]]

    @property
    def niches(self) -> list[str]:
        """Domains a child may be bred for: the traffic domains the parent is not for."""
        return [d for d in self.domains if d not in self.parent_domains]


def load_profile(name: str, path: Path = PROFILES) -> DemoProfile:
    profiles = expect_mapping(read_yaml(path) or {}, str(path))
    if name not in profiles:
        raise ValueError(f"no demo profile {name!r} in {path}; profiles: {', '.join(sorted(profiles))}")
    values, _ = layered_section(DemoProfile, path, name, keys="profile keys")  # the home's demo.yaml over it
    return from_mapping(DemoProfile, values, f"{path}: profile {name!r}", fixed={"name": name})


def overridden(config, overrides: dict):
    """``config`` (a frozen dataclass) with the profile's overrides; unknown fields and wrong types are errors."""
    return with_overrides(config, overrides, "profile overrides", keys=f"{type(config).__name__} fields")
