"""Setting the demo's ecosystem up: its profile, parent, corpora, router, monitor and detector.

A profile (``configs/demo.yaml``) is the recipe of a demo run: which parent,
which domains, the trace's phases, and the few settings that differ from the
shipped ecosystem configuration for a trace of minutes rather than months.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from .home import Home
from .registry import Artifact, Registry
from .typed_config import expect_mapping, from_mapping, read_yaml, with_overrides

PROFILES = Path(__file__).resolve().parent / "configs" / "demo.yaml"


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

    def lab_config(self, niche: str):
        """The ``LabConfig`` each spawn of this profile runs (YAML lists become the config's tuples)."""
        from .lab import LabConfig

        return overridden(LabConfig(niche=niche), self.lab)

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
    from .demo import crown_parent, ensure_parent_and_data

    if profile.parent != "pico":
        return ensure_parent_and_data(console, home, registry, domains=list(profile.domains),
                                      parent_source=profile.parent)
    found = registry.find(kind="parent", name="pico-parent")
    if found and all(registry.find(kind="dataset", name=f"{d}/test") for d in profile.domains):
        return crown_parent(registry, found[0])
    from .pico_lab import build_pico_lab

    pico = build_pico_lab(registry, home.cache_dir, domains=tuple(profile.domains), seed=profile.seed)
    return crown_parent(registry, pico.parent)


def labelled_snippets(registry: Registry, domains, split: str, *, seed: int, limit: int = 200,
                      max_docs: int = 400) -> dict:
    """Query-sized snippets per domain from ``<domain>/<split>`` (train to fit, validation to calibrate)."""
    from .ecosystem.trace import domain_pools

    pools = domain_pools(registry, list(domains), seed=seed, split=split, max_docs=max_docs)
    return {d: texts[:limit] for d, texts in pools.items()}


def fit_router(registry: Registry, profile: DemoProfile, embedder):
    """The default router policy over the profile's niches, its own domains as out-of-domain."""
    return fit_and_register_router(registry, profile.niches, profile.parent_domains, embedder,
                                   policy_name=_default_policy(), seed=profile.seed, data_domains=profile.domains)


def fit_and_register_router(registry: Registry, niches, parent_domains, embedder, *, policy_name: str, seed: int,
                            data_domains, recipe: dict | None = None):
    """Fit ``policy_name`` on the niches' train snippets, calibrate it with the parent's domains as
    out-of-domain, register it with the train/validation splits of ``data_domains`` as its data.
    The demo and the server (a home without a router policy) both fit here; ``recipe`` adds fields."""
    from .ecosystem.router import calibrate, fit, register_policy

    # Many training snippets: the default (linear) policy needs thousands, and fits them in seconds.
    train = labelled_snippets(registry, niches, "train", seed=seed, limit=3000, max_docs=3000)
    validation = labelled_snippets(registry, niches, "validation", seed=seed)
    ood = labelled_snippets(registry, parent_domains, "validation", seed=seed)
    policy = fit(policy_name, train, embedder=embedder, seed=seed)
    calibrate(policy, validation, out_of_domain=[t for texts in ood.values() for t in texts])
    data = [registry.find(kind="dataset", name=f"{d}/{s}")[0].id for d in data_domains for s in ("train", "validation")]
    artifact = register_policy(registry, policy, name=f"router/{policy_name}", data_ids=data,
                               recipe={"niches": list(niches), "out_of_domain": list(parent_domains),
                                       **(recipe or {})})
    return policy, artifact


def _default_policy() -> str:
    from .ecosystem import router

    return getattr(router, "DEFAULT_POLICY", "centroid")


def build_parts(home: Home, registry: Registry, profile: DemoProfile, parent: Artifact, console: Console):
    """Every part the ecosystem runs with, configured from the shipped files and the profile."""
    from .ecosystem.detector import Detector, load_detector_config, parent_nll_gap, registered_specialist
    from .ecosystem.embed import shared_embedder
    from .ecosystem.lifecycle import load_lifecycle_config
    from .ecosystem.rollout import load_rollout_config
    from .ecosystem.runner import EcosystemParts
    from .ecosystem.serving import ModelPool

    embedder = shared_embedder()
    policy, policy_artifact = fit_router(registry, profile, embedder)
    console.print(f"router: {policy.name} policy {policy_artifact.id[:12]}, threshold {policy.threshold:.3f}")
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
                          overridden(load_lifecycle_config(), profile.lifecycle))


def build_monitor(path, registry: Registry, profile: DemoProfile, embedder, *, gap_fn, console: Console):
    """The demo's task monitor at ``path``: calibrated centroids of the profile's domains, the shipped
    monitor section, ``gap_fn`` measuring the parent."""
    from .ecosystem.monitor import MonitorConfig, TaskMonitor, load_section

    monitor_config = load_section(MonitorConfig, "monitor")
    centroids = calibrated_centroids(registry, list(profile.domains), embedder, monitor_config, seed=profile.seed)
    console.print("monitor thresholds: " + ", ".join(f"{d} {t:.3f}" for d, t in centroids.per_domain.items()))
    return TaskMonitor(path, embedder, centroids=centroids, config=monitor_config, gap_fn=gap_fn)


def calibrated_centroids(registry: Registry, domains: list[str], embedder, monitor_config, *, seed: int):
    """Centroids of ``domains`` (their train documents) with per-domain thresholds calibrated on
    held-out validation snippets (domains without a validation split keep the global threshold).
    The demo and the server (``server.setup``, which caches the result) both build them here."""
    from .ecosystem.monitor import DomainCentroids

    centroids = DomainCentroids.from_datasets(registry, domains, embedder,
                                              docs_per_domain=monitor_config.docs_per_domain,
                                              threshold=monitor_config.known_threshold)
    calibrated = [d for d in domains if registry.find(kind="dataset", name=f"{d}/validation")]
    held_out = labelled_snippets(registry, calibrated, "validation", seed=seed, limit=100)
    centroids.calibrate({d: embedder.embed(t) for d, t in held_out.items()}, monitor_config.known_quantile)
    return centroids
