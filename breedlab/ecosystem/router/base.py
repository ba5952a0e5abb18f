"""The router: fit a policy on labelled queries, calibrate its threshold, store it as
a versioned ``router-policy`` artifact and load it back.

Policies themselves live in ``policies.py`` (one abstract ``scores``, a
name -> class table, a random baseline); evaluation lives in ``evaluate.py``.

Calibration rule (stored in the policy as ``calibration``):
  1. precision: the lowest threshold t such that, among validation queries with
     confidence >= t, at least ``target`` (default 95%) are routed to their true
     domain (the largest confident set meeting the target), counting only sets of at
     least ``min_support`` queries (10% of validation, >= 10): a handful of lucky
     top scores must not certify a policy (the random baseline would pass);
  2. out-of-domain: if out-of-domain queries are given, t must also exceed the
     ``1 - ood_leak`` quantile of their confidences, so at most ``ood_leak`` (5%)
     of them leave the parent.
  threshold = max(1, 2). When no threshold meets the target, it is UNREACHABLE
  (2.0; every score is <= 1), and the policy sends everything to the parent.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from breedlab.ecosystem.router.policies import POLICIES, Policy, Route, policy_class
from breedlab.registry import Artifact, Registry

UNREACHABLE = 2.0  # above every score: all policies score on [0, 1]

# The policy the ecosystem uses unless told otherwise: "linear" (hashed n-gram logistic
# regression) is the most accurate on the real corpora and needs no embedding per query,
# so it alone meets both issue 5 targets (docs/results/routing-issue5.md).
DEFAULT_POLICY = "linear"

__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "UNREACHABLE",
    "Policy",
    "Route",
    "calibrate",
    "fit",
    "load_policy",
    "register_policy",
]


def fit(policy_name: str, labelled: dict[str, list[str]], *, embedder: Any = None, seed: int = 0,
        params: dict | None = None, parent_domains: list[str] | tuple = (),
        query_texts: frozenset = frozenset()) -> Policy:
    """Fit ``policy_name`` on ``labelled`` (domain -> texts); threshold starts at 0.

    ``parent_domains`` (keys of ``labelled``) are learnt as classes that always route to the
    parent. ``query_texts``: the rows that are query-shaped (the hybrid's shape gate learns from
    them). Domains are sorted so that column order, and so the saved policy, is deterministic.
    """
    cls = policy_class(policy_name)
    domains = sorted(labelled)
    params = dict(params or {})
    common = {"embedder": embedder if cls.uses_embeddings else None,
              "embedder_name": getattr(embedder, "name", "") if cls.uses_embeddings else "",
              "parent_domains": list(parent_domains)}
    if policy_name == "random":
        return cls(domains, seed=params.get("seed", seed), **common)
    if hasattr(cls, "fit_parts"):  # composite policies (hybrid) fit their parts themselves
        return cls.fit_parts(domains, labelled, params, embedder=embedder, parent_domains=list(parent_domains),
                             query_texts=frozenset(query_texts))
    if not cls.uses_embeddings:  # text policies (keyword, linear) fit on the texts themselves
        return cls.fit_texts(domains, labelled, params, **common)
    if embedder is None:
        raise ValueError(f"policy {policy_name!r} needs an embedder")
    vectors = {d: embedder.embed(labelled[d]) for d in domains}  # domain -> (n_d, 384)
    return cls.fit(domains, vectors, params, **common)


def calibrate(policy: Policy, validation: dict[str, list[str]], *,
              out_of_domain: list[str] | dict[str, list[str]] | None = None, target: float = 0.95,
              ood_leak: float = 0.05, min_support: int | None = None) -> float:
    """Set ``policy.threshold`` by the rule in the module docstring; return it.

    A confidence is the policy's ``leak_scores``: a query whose argmax is a parent domain is
    not confident (it stays on the parent whatever the threshold). ``out_of_domain`` may be
    several named sets (book snippets, everyday questions): each may leak at most ``ood_leak``,
    so question-shaped text is not outvoted by a larger set of snippets."""
    if hasattr(policy, "calibrate_parts"):  # composite policies (hybrid) calibrate each part
        return policy.calibrate_parts(calibrate, validation, out_of_domain=out_of_domain, target=target,
                                      ood_leak=ood_leak, min_support=min_support)
    texts, truth = _flatten(validation, policy.domains)
    scores = policy.scores(texts)  # (N, D)
    confidence, correct = policy.leak_scores(scores), scores.argmax(axis=1) == truth
    support = min_support if min_support is not None else max(10, len(texts) // 10)
    t_precision = precision_threshold(confidence, correct, target, support)
    ood_sets = out_of_domain if isinstance(out_of_domain, dict) else {"out-of-domain": out_of_domain or []}
    t_ood_by = {}
    for name, ood in ood_sets.items():
        if ood:
            ood_conf = policy.leak_scores(policy.scores(ood))
            # strictly above the quantile: at most ood_leak of OOD queries are confident
            t_ood_by[name] = float(np.nextafter(np.quantile(ood_conf, 1.0 - ood_leak), np.float32(np.inf)))
    t_ood = max(t_ood_by.values(), default=0.0)
    policy.threshold = max(t_precision, t_ood)
    policy.calibration = {"rule": "max(precision, out-of-domain)", "target": target,
                          "ood_leak": ood_leak, "t_precision": t_precision, "t_ood": t_ood,
                          "min_support": support, "validation_queries": len(texts),
                          "ood_queries": sum(len(v or []) for v in ood_sets.values()),
                          **({"t_ood_by_set": t_ood_by} if isinstance(out_of_domain, dict) else {})}
    return policy.threshold


def precision_threshold(confidence: np.ndarray, correct: np.ndarray, target: float,
                        min_support: int = 1) -> float:
    """Lowest confidence whose "at least this confident" set (of >= ``min_support``
    queries) is >= ``target`` correct."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    precision = hits / np.arange(1, len(order) + 1)  # accuracy of the top-n most confident
    meets = np.nonzero((precision >= target) & (np.arange(1, len(order) + 1) >= min_support))[0]
    if len(meets) == 0:
        return UNREACHABLE
    return float(confidence[order][meets[-1]])


def _flatten(labelled: dict[str, list[str]], domains: list[str]) -> tuple[list[str], np.ndarray]:
    """Texts and their true column indices; domains the policy does not know are refused."""
    unknown = set(labelled) - set(domains)
    if unknown:
        raise ValueError(f"labels outside the policy's domains: {sorted(unknown)}")
    texts = [t for d in domains for t in labelled.get(d, [])]
    truth = np.array([i for i, d in enumerate(domains) for _ in labelled.get(d, [])], dtype=np.int64)
    return texts, truth


# ----- the registry ---------------------------------------------------------------------

def register_policy(registry: Registry, policy: Policy, *, name: str, data_ids: list[str] | tuple = (),
                    recipe: dict | None = None, operator: str = "router-fit",
                    parents: tuple[str, ...] = ()) -> Artifact:
    """Store ``policy`` as a ``router-policy`` artifact: policy.json + <tensors>.safetensors."""
    with tempfile.TemporaryDirectory(prefix="router-policy-") as tmp:
        files = _write_policy(policy, Path(tmp))
        return registry.register(
            "router-policy", name, files, operator=operator, parents=tuple(parents),
            recipe={**(recipe or {}), "policy": policy.name, "params": policy.params(),
                    "threshold": policy.threshold, "embedder": policy.embedder_name,
                    "parent_domains": policy.parent_domains},
            data=tuple(data_ids), metrics={"calibration": policy.calibration},
        )


def _write_policy(policy: Policy, folder: Path) -> dict[str, Path]:
    """Write the policy's files; the tensor file is named for its first tensor."""
    document = {"policy": policy.name, "domains": policy.domains, "threshold": policy.threshold,
                "calibration": policy.calibration, "params": policy.params(),
                "embedder": policy.embedder_name, "parent_domains": policy.parent_domains}
    files = {"policy.json": folder / "policy.json"}
    files["policy.json"].write_text(json.dumps(document, sort_keys=True, indent=2) + "\n")
    tensors = policy.tensors()
    if tensors:
        rel = f"{next(iter(tensors))}.safetensors"
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(folder / rel))
        files[rel] = folder / rel
    return files


def load_policy(artifact: Artifact, *, embedder: Any = None) -> Policy:
    """Re-read a ``router-policy`` artifact's files into a Policy (hashes: registry verify)."""
    if artifact.manifest.kind != "router-policy":
        raise ValueError(f"{artifact.id} is a {artifact.manifest.kind}, not a router-policy")
    document = json.loads((artifact.path / "policy.json").read_text())
    cls = policy_class(document["policy"])
    tensors: dict[str, np.ndarray] = {}
    for rel in artifact.manifest.files:
        if rel.endswith(".safetensors"):
            tensors.update(load_file(str(artifact.path / rel)))
    params = {k: v for k, v in document["params"].items() if k != "top_terms"}
    policy = cls(document["domains"], **tensors, **params, threshold=document["threshold"],
                 embedder=embedder if cls.uses_embeddings else None,
                 embedder_name=document["embedder"], calibration=document["calibration"],
                 parent_domains=document.get("parent_domains", []))
    if cls.uses_embeddings and embedder is not None and embedder.name != document["embedder"]:
        raise ValueError(f"policy was fitted with {document['embedder']!r}, got {embedder.name!r}")
    return policy
