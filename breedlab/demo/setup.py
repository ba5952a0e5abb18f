"""Setting the demo's ecosystem up from its profile: parent, corpora, queries, router, monitor, detector.

The parts are the ecosystem's own (``ecosystem/setup.py``); the profile (``profiles.py``) only
chooses the domains and the few settings a trace of minutes needs.
"""

from __future__ import annotations

from rich.console import Console

from breedlab.demo.profiles import DemoProfile, overridden
from breedlab.home import Home
from breedlab.registry import Artifact, Registry

DEMO_ACTOR = "breedlab-demo"
"""The identity the demo crowns its imported parent as."""


def write_lab_settings(home: Home, profile: DemoProfile) -> None:
    """The profile's lab overrides as the run home's ``lab.yaml``: a server on this home breeds as the demo did."""
    import yaml

    from breedlab.lab.run import HOME_LAB_FILE
    from breedlab.registry.atomic import atomic_write_bytes

    atomic_write_bytes(home.root / HOME_LAB_FILE, yaml.safe_dump(dict(profile.lab), sort_keys=True).encode())


def parent_and_data(console: Console, home: Home, registry: Registry, profile: DemoProfile) -> Artifact:
    """The champion parent and every domain's splits (pico: built here; real: imported and built)."""
    write_lab_settings(home, profile)
    from breedlab.lab.setup import crown_parent, ensure_parent_and_data

    if profile.parent != "pico":
        return ensure_parent_and_data(console, home, registry, actor=DEMO_ACTOR, domains=profile.data_domains,
                                      parent_source=profile.parent)
    found = registry.find(kind="parent", name="pico-parent")
    if found and all(registry.find(kind="dataset", name=f"{d}/test") for d in profile.domains):
        return crown_parent(registry, found[0], actor=DEMO_ACTOR)
    from breedlab.lab.pico_home import build_pico_lab

    pico = build_pico_lab(registry, home.cache_dir, domains=tuple(profile.domains), seed=profile.seed)
    return crown_parent(registry, pico.parent, actor=DEMO_ACTOR)


def fit_router(home: Home, registry: Registry, profile: DemoProfile, embedder, *, console: Console):
    """The champion router policy over the profile's niches (its own domains are parent classes):
    the parent writes the synthetic queries first, then ``ensure_champion`` fits, judges and crowns."""
    from breedlab.ecosystem.router.base import DEFAULT_POLICY
    from breedlab.ecosystem.setup import fit_champion_router
    from breedlab.governance.config import load_governance

    write_queries(home, registry, profile, console)
    policy, artifact, packet = fit_champion_router(
        registry, load_governance(None), profile.router.get("policy", DEFAULT_POLICY), profile.niches,
        profile.router_parent_domains, embedder, seed=profile.seed, fit=profile.router_fit())
    if artifact is None:
        console.print(f"[yellow]router: the fitted policy failed its routing evidence ({packet[:12]}); "
                      "the parent serves every query[/]")
    return policy, artifact


def write_queries(home: Home, registry: Registry, profile: DemoProfile, console: Console) -> None:
    """Synthetic queries for every profile domain: train and validation to fit, test for the trace."""
    from breedlab.ecosystem.query_synth import QuerySynthRecipe
    from breedlab.ecosystem.query_writing import synthesize_queries

    if not profile.queries:
        return
    plan = {"train": profile.queries.get("train_docs", 100), "validation": profile.queries.get("heldout_docs", 40),
            "test": profile.queries.get("heldout_docs", 40)}
    for split, docs in plan.items():
        recipe = QuerySynthRecipe(docs=docs, seed=profile.seed)
        synthesize_queries(console, home, registry, profile.data_domains, [split], recipe,
                           topic_domains=tuple(profile.parent_domains) if split != "test" else ())


def build_parts(home: Home, registry: Registry, profile: DemoProfile, parent: Artifact, console: Console):
    """Every part the ecosystem runs with, configured from the shipped files and the profile."""
    from breedlab.ecosystem.config import load_section
    from breedlab.ecosystem.detector import Detector, load_detector_config, parent_nll_gap, registered_specialist
    from breedlab.ecosystem.embed import query_embedder
    from breedlab.ecosystem.labels import LabelStore
    from breedlab.ecosystem.lifecycle import load_lifecycle_config
    from breedlab.ecosystem.merge.config import load_merge_config
    from breedlab.ecosystem.rollout import load_rollout_config
    from breedlab.ecosystem.router.evidence import RouterConfig
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
                          router_log=home.logs_dir / f"demo-{profile.name}-router-shadow.sqlite",
                          merge=overridden(load_merge_config(), profile.merge))


def build_monitor(path, registry: Registry, profile: DemoProfile, embedder, *, gap_fn, console: Console):
    """The demo's task monitor at ``path``: calibrated centroids of the profile's domains, the shipped
    monitor section, ``gap_fn`` measuring the parent."""
    from breedlab.ecosystem.config import load_section
    from breedlab.ecosystem.monitor import MonitorConfig, TaskMonitor
    from breedlab.ecosystem.setup import calibrated_centroids

    monitor_config = load_section(MonitorConfig, "monitor")
    centroids = calibrated_centroids(registry, list(profile.domains), embedder, monitor_config, seed=profile.seed)
    console.print("monitor thresholds: " + ", ".join(f"{d} {t:.3f}" for d, t in centroids.per_domain.items()))
    return TaskMonitor(path, embedder, centroids=centroids, config=monitor_config, gap_fn=gap_fn)
