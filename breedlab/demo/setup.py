"""Setting the demo's ecosystem up: its profile, parent, corpora, router, monitor and detector.

A profile (``configs/demo.yaml``) is the recipe of a demo run: which parent,
which domains, the trace's phases, and the few settings that differ from the
shipped ecosystem configuration for a trace of minutes rather than months.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from breedlab.home import Home
from breedlab.registry import Artifact, Registry
from breedlab.typed_config import expect_mapping, from_mapping, read_yaml, with_overrides

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
    return from_mapping(DemoProfile, profiles[name], f"{path}: profile {name!r}", fixed={"name": name})


def overridden(config, overrides: dict):
    """``config`` (a frozen dataclass) with the profile's overrides; unknown fields and wrong types are errors."""
    return with_overrides(config, overrides, "profile overrides", keys=f"{type(config).__name__} fields")


def parent_and_data(console: Console, home: Home, registry: Registry, profile: DemoProfile) -> Artifact:
    """The champion parent and every domain's splits (pico: built here; real: imported and built)."""
    from breedlab.demo.run import crown_parent, ensure_parent_and_data

    if profile.parent != "pico":
        return ensure_parent_and_data(console, home, registry, domains=profile.data_domains,
                                      parent_source=profile.parent)
    found = registry.find(kind="parent", name="pico-parent")
    if found and all(registry.find(kind="dataset", name=f"{d}/test") for d in profile.domains):
        return crown_parent(registry, found[0])
    from breedlab.lab.pico_home import build_pico_lab

    pico = build_pico_lab(registry, home.cache_dir, domains=tuple(profile.domains), seed=profile.seed)
    return crown_parent(registry, pico.parent)


def labelled_snippets(registry: Registry, domains, split: str, *, seed: int, limit: int = 200,
                      max_docs: int = 400) -> dict:
    """Query-sized snippets per domain from ``<domain>/<split>`` (train to fit, validation to calibrate)."""
    from breedlab.ecosystem.trace import domain_pools

    pools = domain_pools(registry, list(domains), seed=seed, split=split, max_docs=max_docs)
    return {d: texts[:limit] for d, texts in pools.items()}


def fit_router(home: Home, registry: Registry, profile: DemoProfile, embedder, *, console: Console):
    """The champion router policy over the profile's niches (its own domains are parent classes):
    the parent writes the synthetic queries first, then ``ensure_champion`` fits, judges and crowns."""
    from breedlab.ecosystem.router.candidates import FitRecipe, ensure_champion
    from breedlab.governance.config import load_governance

    write_queries(home, registry, profile, console)
    governance = load_governance(None)
    recipe = FitRecipe(profile.router.get("policy", _default_policy()), tuple(profile.niches),
                       profile.router_parent_domains, seed=profile.seed, **profile.router_fit())
    policy, artifact, packet = ensure_champion(registry, governance, recipe, embedder,
                                               approver=governance.approvers[0])
    if artifact is None:
        console.print(f"[yellow]router: the fitted policy failed its routing evidence ({packet[:12]}); "
                      "the parent serves every query[/]")
    return policy, artifact


def write_queries(home: Home, registry: Registry, profile: DemoProfile, console: Console) -> None:
    """Synthetic queries for every profile domain: train and validation to fit, test for the trace."""
    from breedlab.ecosystem.query_synth import QuerySynthRecipe
    from breedlab.cli.views import synthesize_queries

    if not profile.queries:
        return
    plan = {"train": profile.queries.get("train_docs", 100), "validation": profile.queries.get("heldout_docs", 40),
            "test": profile.queries.get("heldout_docs", 40)}
    for split, docs in plan.items():
        recipe = QuerySynthRecipe(docs=docs, seed=profile.seed)
        synthesize_queries(console, home, registry, profile.data_domains, [split], recipe,
                           topic_domains=tuple(profile.parent_domains) if split != "test" else ())


def _default_policy() -> str:
    from breedlab.ecosystem.router.base import DEFAULT_POLICY

    return DEFAULT_POLICY


def build_parts(home: Home, registry: Registry, profile: DemoProfile, parent: Artifact, console: Console):
    """Every part the ecosystem runs with, configured from the shipped files and the profile."""
    from breedlab.ecosystem.detector import Detector, load_detector_config, parent_nll_gap, registered_specialist
    from breedlab.ecosystem.embed import query_embedder
    from breedlab.ecosystem.labels import LabelStore
    from breedlab.ecosystem.lifecycle import load_lifecycle_config
    from breedlab.ecosystem.monitor import load_section
    from breedlab.ecosystem.router.evidence import RouterConfig
    from breedlab.ecosystem.rollout import load_rollout_config
    from breedlab.ecosystem.runner import EcosystemParts
    from breedlab.ecosystem.serving import ModelPool

    embedder = query_embedder()  # one embedding per query, for the router and the monitor
    policy, policy_artifact = fit_router(home, registry, profile, embedder, console=console)
    if policy_artifact is not None:
        console.print(f"router: champion {policy.name} policy {policy_artifact.id[:12]}")
    pool = ModelPool(registry, max_tokens=profile.max_query_tokens)
    model, tokenizer = pool.load(parent.id)
    monitor = build_monitor(home.logs_dir / f"demo-{profile.name}-queries.sqlite", registry, profile, embedder,
                            gap_fn=parent_nll_gap(model, tokenizer), console=console)
    specialist = registered_specialist(registry)
    detector_config = overridden(load_detector_config(), profile.detector)
    head = 2.0 * model.config.hidden_size * model.config.vocab_size
    detector = Detector(detector_config, registry, parent.id, actor="detector",
                        parent_flops_per_token=pool.flops_per_token(parent.id, profile.max_query_tokens),
                        head_flops_per_token=head,
                        has_specialist=lambda d: d in profile.parent_domains or specialist(d))
    return EcosystemParts(registry, parent.id, pool, policy, monitor, detector,
                          overridden(load_rollout_config(), profile.rollout),
                          overridden(load_lifecycle_config(), profile.lifecycle),
                          labels=LabelStore(home.logs_dir / f"demo-{profile.name}-labels.sqlite"),
                          router_config=overridden(load_section(RouterConfig, "router"), profile.adaptation),
                          router_log=home.logs_dir / f"demo-{profile.name}-router-shadow.sqlite")


def build_monitor(path, registry: Registry, profile: DemoProfile, embedder, *, gap_fn, console: Console):
    """The demo's task monitor at ``path``: calibrated centroids of the profile's domains, the shipped
    monitor section, ``gap_fn`` measuring the parent."""
    from breedlab.ecosystem.monitor import MonitorConfig, TaskMonitor, load_section

    monitor_config = load_section(MonitorConfig, "monitor")
    centroids = calibrated_centroids(registry, list(profile.domains), embedder, monitor_config, seed=profile.seed)
    console.print("monitor thresholds: " + ", ".join(f"{d} {t:.3f}" for d, t in centroids.per_domain.items()))
    return TaskMonitor(path, embedder, centroids=centroids, config=monitor_config, gap_fn=gap_fn)


def calibrated_centroids(registry: Registry, domains: list[str], embedder, monitor_config, *, seed: int):
    """Centroids of ``domains`` (their train documents) with per-domain thresholds calibrated on
    held-out validation snippets (domains without a validation split keep the global threshold).
    The demo and the server (``server.setup``, which caches the result) both build them here."""
    from breedlab.ecosystem.monitor import DomainCentroids

    centroids = DomainCentroids.from_datasets(registry, domains, embedder,
                                              docs_per_domain=monitor_config.docs_per_domain,
                                              threshold=monitor_config.known_threshold)
    calibrated = [d for d in domains if registry.find(kind="dataset", name=f"{d}/validation")]
    held_out = labelled_snippets(registry, calibrated, "validation", seed=seed, limit=100)
    centroids.calibrate({d: embedder.embed(t) for d, t in held_out.items()}, monitor_config.known_quantile)
    return centroids
