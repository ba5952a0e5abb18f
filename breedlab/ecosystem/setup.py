"""Setting an ecosystem up in a home: its champion router policy, its domain centroids, its task monitor.

The demo (``demo/setup.py``, from a profile) and the server (``server/setup.py``, from the
home and ``configs/ecosystem.yaml``) both build their parts here; neither knows the other.
"""

from __future__ import annotations

from breedlab.registry import Registry


def labelled_snippets(registry: Registry, domains, split: str, *, seed: int, limit: int = 200,
                      max_docs: int = 400) -> dict:
    """Query-sized snippets per domain from ``<domain>/<split>`` (train to fit, validation to calibrate)."""
    from breedlab.ecosystem.trace import domain_pools

    pools = domain_pools(registry, list(domains), seed=seed, split=split, max_docs=max_docs)
    return {d: texts[:limit] for d, texts in pools.items()}


def fit_champion_router(registry: Registry, governance, policy: str, niches, parent_domains, embedder, *,
                        seed: int, fit: dict, extra: dict | None = None):
    """(policy, artifact, packet): a ``policy`` router fitted over ``niches`` (``parent_domains`` are classes
    kept on the parent), judged on the frozen routing suite and crowned by the first approver on passing
    evidence (``router.candidates.ensure_champion``); artifact None when its evidence failed."""
    from breedlab.ecosystem.router.candidates import FitRecipe, ensure_champion

    recipe = FitRecipe(policy, tuple(niches), tuple(parent_domains), seed=seed, **fit)
    return ensure_champion(registry, governance, recipe, embedder, approver=governance.approvers[0], extra=extra)


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
