"""The linear (hashed n-gram logistic regression) router policy on synthetic pico domains.

No embedder anywhere: the policy must fit, score, calibrate, route and round-trip
through the registry on text alone. A small ``dim`` keeps the fits fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from breedlab.ecosystem.router.base import DEFAULT_POLICY, UNREACHABLE, calibrate, fit, load_policy, register_policy
from breedlab.ecosystem.router.evaluate import evaluate_policy
from breedlab.ecosystem.router.linear import HashedNgrams, LinearPolicy
from breedlab.ecosystem.router.policies import POLICIES
from breedlab.lab.pico_home import synthetic_documents
from breedlab.registry import Registry

DOMAINS = ("code", "medical")  # the synthetic domains pico_lab can generate
SPECIALISTS = {d: f"child-{d}" for d in DOMAINS}
PARAMS = {"dim": 2**14, "max_iter": 100}


def split(seed: int, count: int) -> dict[str, list[str]]:
    return {d: synthetic_documents(d, count, seed) for d in DOMAINS}


@pytest.fixture(scope="module")
def data():
    return {"train": split(0, 30), "validation": split(1, 20), "test": split(2, 30),
            "ood_validation": synthetic_documents("general", 20, 1),
            "ood_test": synthetic_documents("general", 20, 2)}


@pytest.fixture(scope="module")
def linear(data):
    policy = fit("linear", data["train"], seed=0, params=PARAMS)
    calibrate(policy, data["validation"], out_of_domain=data["ood_validation"])
    return policy


def test_default_policy_is_a_registered_plain_name():
    assert isinstance(DEFAULT_POLICY, str) and DEFAULT_POLICY in POLICIES
    assert DEFAULT_POLICY == "linear" and not POLICIES["linear"].uses_embeddings


def test_features_are_stable_and_unit_rows():
    features = HashedNgrams(dim=2**12)
    X = features.transform(["def f(x): return x", "Hypertension, unspecified (I10)", ""])
    assert X.shape == (3, 2**12)
    assert np.allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1[:2], 1.0) and X[2].nnz == 0
    # CRC-32, not the salted built-in hash: the same text lands in the same columns everywhere
    cols, _ = features.columns("def f(x): return x")
    assert cols.tolist() == sorted(set(cols.tolist())) and cols.max() < 2**12
    assert np.array_equal(cols, HashedNgrams(dim=2**12).columns("def f(x): return x")[0])


def test_fit_gives_probabilities_and_is_deterministic(data, linear):
    texts = data["test"]["code"][:4] + data["ood_test"][:3]
    scores = linear.scores(texts)
    assert scores.shape == (7, 2) and scores.dtype == np.float32
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5) and (scores >= 0).all()
    assert linear.weights.shape == (2**14, 2) and linear.bias.shape == (2,)
    again = fit("linear", data["train"], seed=0, params=PARAMS)
    assert np.array_equal(again.weights, linear.weights) and np.array_equal(again.bias, linear.bias)
    assert linear.scores([]).shape == (0, 2)


def test_linear_beats_random_and_routes_in_domain_queries(data, linear):
    rnd = fit("random", data["train"], seed=0)
    calibrate(rnd, data["validation"], out_of_domain=data["ood_validation"])
    mine = evaluate_policy(linear, data["test"], out_of_domain=data["ood_test"], timing_queries=5)
    baseline = evaluate_policy(rnd, data["test"], out_of_domain=data["ood_test"], timing_queries=5)
    assert mine.accuracy >= 0.95 and mine.accuracy > baseline.accuracy + 0.2
    assert mine.ood_parent_share >= 0.8 and mine.overhead_ms_p50 < 5.0
    routes = linear.route(data["test"]["medical"], SPECIALISTS)
    assert sum(r.target == "child-medical" for r in routes) >= 0.8 * len(routes)


def test_low_confidence_goes_to_the_parent(data, linear):
    routes = linear.route(data["ood_test"], SPECIALISTS)
    assert all(r.target is None for r in routes if r.confidence < linear.threshold)
    assert sum(r.target is None for r in routes) >= 0.8 * len(routes)
    saved, linear.threshold = linear.threshold, UNREACHABLE
    try:
        assert all(r.target is None for r in linear.route(data["test"]["code"], SPECIALISTS))
    finally:
        linear.threshold = saved


def test_round_trip_through_the_registry_gives_identical_scores(tmp_path, data, linear):
    registry = Registry.open(tmp_path / "registry")
    artifact = register_policy(registry, linear, name="router-linear", recipe={"train": "synthetic"})
    assert {"policy.json", "weights.safetensors"} <= set(artifact.manifest.files)
    assert not any(rel.endswith((".pkl", ".pt", ".bin")) for rel in artifact.manifest.files)
    loaded = load_policy(registry.get(artifact.id))
    assert isinstance(loaded, LinearPolicy) and loaded.params() == linear.params()
    assert loaded.threshold == linear.threshold and loaded.calibration == linear.calibration
    texts = data["test"]["code"][:5] + data["ood_test"][:5]
    assert np.array_equal(loaded.scores(texts), linear.scores(texts))


def test_bad_params_and_shapes_are_refused(data):
    with pytest.raises(ValueError, match="unknown linear policy params"):
        fit("linear", data["train"], params={"dims": 8})
    with pytest.raises(ValueError, match="do not match"):
        LinearPolicy(["a", "b"], np.zeros((16, 3)), np.zeros(2), dim=16)
