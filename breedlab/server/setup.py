"""Finding what the server runs with in a home: its parent, its router policy, its task monitor.

The router policy is the champion ``router-policy`` (niche ``router``): a candidate
never routes. Only a registry with no champion gets one fitted here, over the registered
domains with the ``population`` section of ``configs/ecosystem.yaml`` (its parent domains
are the router's parent classes; its fit settings are the full demo's), judged on the
frozen routing suite and crowned by the approver on passing evidence, so the next start
loads it. The monitor is built from the ecosystem's parts (``ecosystem/setup.py``):
centroids of the policy's domains, thresholds calibrated on their validation snippets.
"""

from __future__ import annotations

import json
import logging
import os

from breedlab.registry import Artifact, Registry, RegistryError
from breedlab.registry.canonical import sha256_json
from breedlab.server.config import ServerConfig

log = logging.getLogger("breedlab.server")
MONITOR_FILE = "serve-queries.sqlite"


def check_servable(home) -> None:
    """Refuse, before any server starts, a folder that is not a breedlab home with a parent in it.

    ``Registry.open`` would create an empty registry in a mistyped folder; the server
    must not, and the user deserves one line, not a lifespan traceback.
    """
    if not (home.registry_dir / "manifests").is_dir():
        raise RegistryError(f"{home.root} is not a breedlab home (it has no registry/); serve a home or a demo run "
                            "folder, e.g. --home ~/.cache/breedlab/demo/quick/latest")
    choose_parent(Registry.open(home.registry_dir))


def signing_report(home, lifecycle_actor: str) -> list[str]:
    """In a signed home, who the server can sign as: each approver or breeder token's identity and its
    own lifecycle actor, with or without a private key at hand. Without one that identity's writes are
    refused with a clear 409, never made unsigned. An unsigned home: nothing to report."""
    from breedlab.registry.keys import available_keys, key_dir
    from breedlab.server.tokens import read_book

    if not Registry.open(home.registry_dir).adopted():
        return []
    writers = {e.identity for e in read_book(home.root).entries if e.role != "inference"} | {lifecycle_actor}
    held = available_keys()
    lines = [f"signed home: keys from {key_dir()}"]
    for identity in sorted(writers):
        lines.append(f"  {identity}: " + ("signs its writes" if identity in held
                                          else "[bold red]no private key here: its writes will be refused[/]"))
    return lines


def choose_parent(registry: Registry) -> Artifact:
    """The champion parent, else the newest parent."""
    from breedlab.governance.niche import champion_parent

    parent = champion_parent(registry)
    if parent is None:
        raise RegistryError("no parent registered in this home; import one (breedlab parent import) or run "
                            "breedlab demo --quick and serve its run folder")
    return parent


def load_router_policy(registry: Registry, config: ServerConfig, governance=None):
    """(policy, its artifact) of the champion router policy; (None, None) when there is none and none
    can be had. A home without a champion gets one fitted, judged on the frozen routing suite against
    the parent-only route and, on passing evidence, promoted by the approver (``ensure_champion``)."""
    from breedlab.ecosystem.router.base import load_policy
    from breedlab.ecosystem.router.candidates import champion_policy

    artifact = champion_policy(registry)
    if artifact is None:
        return _fit_policy(registry, config.fit_policy, governance)
    return load_policy(artifact, embedder=policy_embedder(artifact)), artifact


def policy_embedder(artifact: Artifact):
    """The query embedding cache shared with the monitor if the policy's kind embeds, else None."""
    from breedlab.ecosystem.router.policies import policy_class

    if not policy_class(artifact.manifest.recipe["policy"]).uses_embeddings:
        return None
    from breedlab.ecosystem.embed import query_embedder

    return query_embedder()


def _fit_policy(registry: Registry, policy_name: str, governance):
    """Fit, judge and (on passing evidence) crown ``policy_name`` (``ecosystem.setup.fit_champion_router``)."""
    from breedlab.ecosystem.config import load_population_config
    from breedlab.ecosystem.embed import query_embedder
    from breedlab.ecosystem.setup import fit_champion_router
    from breedlab.governance.config import load_governance

    governance = governance or load_governance(None)
    domains = _domains_with(registry, ("train", "validation"))
    population = load_population_config()
    parent_domains = [d for d in population.parent_domains if d in domains]
    niches = [d for d in domains if d not in parent_domains]
    if not niches:
        log.warning("no router policy and no niche datasets: the parent serves every request")
        return None, None
    fit = dict(population.router_fit) if policy_name == population.router_policy else {}  # params are per kind
    policy, artifact, packet = fit_champion_router(registry, governance, policy_name, niches, parent_domains,
                                                   query_embedder(), seed=0, fit=fit, extra={"fitted_by": "serve"})
    if artifact is None:
        log.warning("the fitted router policy failed its routing evidence (%s): the parent serves every request",
                    packet[:12])
        return None, None
    log.warning("no champion router policy: fitted %s %s, crowned on evidence %s", policy_name, artifact.id[:12],
                (packet or "-")[:12])
    return policy, artifact


def _domains_with(registry: Registry, splits: tuple[str, ...]) -> list[str]:
    names = {a.manifest.name for a in registry.find(kind="dataset")}
    domains = {n.split("/")[0] for n in names if "/" in n}
    return sorted(d for d in domains if all(f"{d}/{s}" in names for s in splits))


def open_monitor(home, registry: Registry, policy_artifact: Artifact | None, parent, config: ServerConfig):
    """The server's task monitor (its own SQLite file under the home's logs)."""
    from breedlab.ecosystem.config import load_section
    from breedlab.ecosystem.detector import parent_nll_gap
    from breedlab.ecosystem.embed import query_embedder
    from breedlab.ecosystem.monitor import MonitorConfig, TaskMonitor

    embedder = query_embedder()  # the router's embedding of a query is the monitor's
    monitor_config = load_section(MonitorConfig, "monitor")
    recipe = policy_artifact.manifest.recipe if policy_artifact else {}
    trained = _domains_with(registry, ("train",))
    wanted = list(recipe.get("niches", [])) + list(recipe.get("out_of_domain", []))
    domains = [d for d in (wanted or trained) if d in trained]
    centroids = calibrated_centroids(home, registry, domains, embedder, monitor_config) if domains else None
    return TaskMonitor(home.logs_dir / MONITOR_FILE, embedder, store_text=config.store_query_text,
                       centroids=centroids, config=monitor_config,
                       gap_fn=parent_nll_gap(parent.model, parent.tokenizer))


def calibrated_centroids(home, registry: Registry, domains: list[str], embedder, monitor_config):
    """Domain centroids with calibrated thresholds, as the demo builds them; cached in the home's cache.

    Embedding the centroid documents and the calibration snippets takes seconds to tens
    of seconds on CPU, on every start; the result depends only on the datasets, the
    embedder and the monitor settings, which name the cache file.
    """
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from breedlab.ecosystem.monitor import DomainCentroids
    from breedlab.ecosystem.setup import calibrated_centroids as fit_centroids

    datasets = {d: [a.id for split in ("train", "validation")
                    for a in registry.find(kind="dataset", name=f"{d}/{split}")[:1]] for d in domains}
    key = sha256_json({"datasets": datasets, "embedder": embedder.name, "docs": monitor_config.docs_per_domain,
                       "quantile": monitor_config.known_quantile, "threshold": monitor_config.known_threshold})
    path = home.cache_dir / "serve" / f"centroids-{key[:16]}.safetensors"
    if path.is_file():
        with safe_open(str(path), framework="numpy") as stored:
            meta = json.loads(stored.metadata()["centroids"])
            return DomainCentroids(meta["names"], stored.get_tensor("matrix"), meta["threshold"], meta["per_domain"])
    centroids = fit_centroids(registry, domains, embedder, monitor_config, seed=0)
    meta = {"names": centroids.names, "threshold": centroids.threshold, "per_domain": centroids.per_domain}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({"matrix": np.ascontiguousarray(centroids.matrix)}, str(tmp), metadata={"centroids": json.dumps(meta)})
    os.replace(tmp, path)  # atomic: a concurrent start reads the whole file or computes its own
    return centroids
