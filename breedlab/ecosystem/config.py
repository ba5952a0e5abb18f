"""The ecosystem's configuration file (``configs/ecosystem.yaml``): one typed section per part.

Each part (monitor, detector, rollout, lifecycle, merge, router, server, population) reads
its own section into its own frozen dataclass with ``load_section``; unknown keys and wrong
types are errors that name the file and the section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from breedlab.typed_config import from_mapping, layered_section

SHIPPED = Path(__file__).resolve().parent.parent / "configs" / "ecosystem.yaml"


def load_section(cls, section: str, path: Path = SHIPPED):
    """The dataclass ``cls`` from ``section`` of an ecosystem YAML file, with the home's overrides
    (``<home>/configs/ecosystem.yaml``); unknown keys and wrong types are errors."""
    values, _ = layered_section(cls, path, section, keys=f"{section} keys")
    return from_mapping(cls, values, f"{path}: {section}", keys=f"{section} keys")


@dataclass(frozen=True)
class PopulationConfig:
    """What the population is for, beyond its niches: read by the server when it must fit a router itself."""

    parent_domains: tuple[str, ...] = ("general",)
    """Domains the parent itself serves: never a niche, always a class the router keeps on the parent."""
    router_policy: str = "hybrid"
    """The router policy kind these fit settings are for."""
    router_fit: dict = field(default_factory=dict)
    """``FitRecipe`` fields (train_snippets, params, ...) used when fitting ``router_policy``."""


def load_population_config(path: Path = SHIPPED) -> PopulationConfig:
    return load_section(PopulationConfig, "population", path)
