"""The hybrid cascade and parent-domain classes, on synthetic pico domains (code, medical, general)."""

from __future__ import annotations

import numpy as np
import pytest

from breedlab.ecosystem.embed import MemoEmbedder, shared_embedder
from breedlab.ecosystem.router.base import calibrate, fit
from breedlab.ecosystem.router.evaluate import evaluate_policy
from breedlab.ecosystem.router.hybrid import common_scale
from breedlab.lab.pico_home import synthetic_documents

SPECIALISTS = {"code": "child-code", "medical": "child-medical"}


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.texts = inner, inner.name, 0

    def embed(self, texts):
        self.texts += len(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def embedder():
    return MemoEmbedder(shared_embedder())


def labelled(seed: int, count: int, domains=("code", "medical", "general")) -> dict[str, list[str]]:
    return {d: synthetic_documents(d, count, seed) for d in domains}


@pytest.fixture(scope="module")
def hybrid(embedder):
    policy = fit("hybrid", labelled(0, 30), embedder=embedder, parent_domains=["general"])
    calibrate(policy, labelled(1, 20, ("code", "medical")), out_of_domain=synthetic_documents("general", 20, 1))
    return policy


def test_common_scale_puts_each_threshold_at_one_half():
    p = np.array([0.0, 0.3, 0.6, 0.6000001, 1.0], dtype=np.float32)
    mapped = common_scale(p, 0.6)
    assert np.all(np.diff(mapped) >= 0) and mapped[2] == pytest.approx(0.5) and mapped[-1] == pytest.approx(1.0)
    assert np.all(common_scale(p, 2.0) < 0.5)  # an unreachable part never decides


def test_hybrid_decision_equals_the_ngram_policy_where_that_one_is_confident(hybrid):
    texts = [t for ts in labelled(2, 20).values() for t in ts] + ["how do i bake bread", "what is a tumour"]
    lexical_scores = hybrid.lexical.scores(texts)
    confident = hybrid.lexical_confident(lexical_scores, texts)
    assert confident.any() and not confident.all()  # both branches are exercised
    ours = hybrid.route(texts, SPECIALISTS)
    theirs = hybrid.lexical.routes_from_scores(lexical_scores, SPECIALISTS)
    for i in np.flatnonzero(confident):
        assert (ours[i].domain, ours[i].target) == (theirs[i].domain, theirs[i].target)
        assert theirs[i].target is not None  # a confident n-gram decision serves its niche


def test_hybrid_embeds_only_what_the_ngram_policy_is_unsure_of(hybrid):
    counting = CountingEmbedder(shared_embedder())
    hybrid.embedder = counting
    texts = [t for ts in labelled(3, 10).values() for t in ts]
    hybrid.scores(texts)
    unsure = int((~hybrid.lexical_confident(hybrid.lexical.scores(texts), texts)).sum())
    assert counting.texts == hybrid.last_embedded == unsure < len(texts)


def asked(seed: int, count: int, domains=("code", "medical", "general")) -> dict[str, list[str]]:
    """Question-shaped rows about each domain's synthetic text (what the parent's queries look like)."""
    return {d: [f"how do i {' '.join(doc.split()[1:4]).lower().strip('.,')}?" for doc in synthetic_documents(d, count, seed)]
            for d in domains}


@pytest.fixture(scope="module")
def gated(embedder):
    """A hybrid whose training rows include queries: it has a shape gate."""
    queries = asked(5, 20)
    rows = {d: texts + queries[d] for d, texts in labelled(0, 30).items()}
    policy = fit("hybrid", rows, embedder=embedder, parent_domains=["general"],
                 query_texts=frozenset(t for q in queries.values() for t in q))
    calibrate(policy, labelled(1, 20, ("code", "medical")), out_of_domain=synthetic_documents("general", 20, 1))
    return policy


def test_the_ngram_part_never_decides_a_question_shaped_text_alone(gated):
    snippets = [t for ts in labelled(2, 20).values() for t in ts]
    questions = [q for qs in asked(6, 10).values() for q in qs]
    texts = snippets + questions
    lexical_scores = gated.lexical.scores(texts)
    sure = gated.lexical.leak_scores(lexical_scores) >= gated.lexical.threshold
    decided = gated.lexical_confident(lexical_scores, texts)
    assert gated.shape is not None and decided[:len(snippets)].any()  # snippets it is sure of: its own
    assert not decided[len(snippets):].any()  # questions go to the embedding part, sure or not
    assert (decided <= sure).all()


def test_a_knn_fallback_hybrid_is_stored_and_loaded_with_its_gate(embedder, tmp_path):
    from breedlab.ecosystem.router.base import load_policy, register_policy
    from breedlab.registry import Registry

    queries = asked(5, 10)
    rows = {d: texts + queries[d] for d, texts in labelled(0, 20).items()}
    policy = fit("hybrid", rows, embedder=embedder, parent_domains=["general"], params={"fallback": "knn"},
                 query_texts=frozenset(t for q in queries.values() for t in q))
    calibrate(policy, labelled(1, 10, ("code", "medical")), out_of_domain=synthetic_documents("general", 10, 1))
    registry = Registry.open(tmp_path / "registry")
    loaded = load_policy(register_policy(registry, policy, name="router/hybrid"), embedder=embedder)
    texts = [t for ts in labelled(2, 5).values() for t in ts] + [q for qs in asked(6, 3).values() for q in qs]
    assert loaded.fallback == "knn" and loaded.shape is not None
    np.testing.assert_allclose(loaded.scores(texts), policy.scores(texts), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown hybrid fallback"):
        fit("hybrid", rows, embedder=embedder, params={"fallback": "centroid"})


def test_a_parent_domain_is_learnt_but_never_served(embedder):
    policy = fit("embed-linear", labelled(0, 30), embedder=embedder, parent_domains=["general"])
    calibrate(policy, labelled(1, 20, ("code", "medical")), out_of_domain=synthetic_documents("general", 20, 1))
    general = synthetic_documents("general", 20, 2)
    routes = policy.route(general, {**SPECIALISTS, "general": "never"})
    assert sum(r.domain == "general" for r in routes) >= 15  # it knows the class...
    assert all(r.target != "never" for r in routes)  # ...and never serves it
    report = evaluate_policy(policy, labelled(2, 20, ("code", "medical")), out_of_domain=general)
    assert report.ood_parent_share >= 0.9 and report.served_accuracy >= 0.8


def test_parent_domains_must_be_known_domains(embedder):
    with pytest.raises(ValueError, match="parent domains outside"):
        fit("linear", labelled(0, 10, ("code", "medical")), parent_domains=["general"])


def test_the_monitor_and_the_router_embed_a_query_once(hybrid, tmp_path):
    from breedlab.ecosystem.embed import QueryEmbeddingCache
    from breedlab.ecosystem.monitor import TaskMonitor

    counting = CountingEmbedder(shared_embedder())
    shared = QueryEmbeddingCache(counting)
    texts = [t for ts in labelled(4, 10).values() for t in ts] + ["how do i bake bread", "what is a tumour"]
    unsure = [t for t, sure in zip(texts, hybrid.lexical_confident(hybrid.lexical.scores(texts), texts)) if not sure]
    assert unsure  # a query the router must embed
    hybrid.embedder = shared
    monitor = TaskMonitor(tmp_path / "queries.sqlite", shared)
    hybrid.route(unsure[:1], SPECIALISTS)
    monitor.log(unsure[0], model="parent", latency_ms=1.0, tokens=1)
    assert counting.texts == shared.computed == 1
