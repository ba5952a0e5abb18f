"""The specialisation detector fires on crossing tau_spawn, respects cooldowns and existing specialists."""

from __future__ import annotations

from dataclasses import replace

import pytest

from breedlab.ecosystem.config import load_section
from breedlab.ecosystem.detector import (
    Detector,
    DetectorConfig,
    child_flops_per_token,
    load_detector_config,
    registered_specialist,
    savings_share,
)
from breedlab.ecosystem.monitor import DomainStats, MonitorConfig
from tests.registry_helpers import register_weights, safetensors_bytes, write_file

CONFIG = DetectorConfig(w_volume=0.5, w_gap=0.3, w_savings=0.2, gap_reference=5.0, tau_spawn=0.4,
                        cooldown_s=100.0, ratio=0.5, min_queries=10)
PARENT_FLOPS, HEAD_FLOPS = 1000.0, 200.0


def stats(domain: str, share: float, gap: float | None = 2.0, window: int = 0, total: int = 100) -> DomainStats:
    queries = int(share * total)
    return DomainStats(domain, window, queries, share, 0.2, gap, tokens=queries * 50, window_tokens=total * 50)


@pytest.fixture()
def parent(registry, tmp_path):
    return register_weights(registry, tmp_path)


def make(registry, parent, has_specialist=lambda d: False, config=CONFIG) -> Detector:
    return Detector(config, registry, parent.id, parent_flops_per_token=PARENT_FLOPS,
                    head_flops_per_token=HEAD_FLOPS, has_specialist=has_specialist)


def test_shipped_config_loads_and_unknown_keys_are_rejected(tmp_path):
    assert isinstance(load_detector_config(), DetectorConfig)
    assert isinstance(load_section(MonitorConfig, "monitor"), MonitorConfig)
    bad = tmp_path / "eco.yaml"
    bad.write_text("detector:\n  tau_spawn: 0.3\n  tau_spwan: 0.2\n")
    with pytest.raises(ValueError, match="unknown detector keys"):
        load_detector_config(bad)
    with pytest.raises(ValueError, match="ratio"):
        replace(CONFIG, ratio=0.0)


def test_savings_follow_the_cost_model():
    # child at p=0.5: 0.5 * (1000 - 200) + 200 = 600 FLOPs/token, so 40% of D's compute is saved
    assert child_flops_per_token(PARENT_FLOPS, HEAD_FLOPS, 0.5) == 600.0
    assert savings_share(stats("code", 0.4), PARENT_FLOPS, HEAD_FLOPS, 0.5) == pytest.approx(0.4 * 0.4)


def test_fires_on_crossing_then_only_after_cooldown(registry, parent):
    detector = make(registry, parent)
    assert detector.observe([stats("code", 0.1), stats("general", 0.15)], now=0.0) == []
    fired = detector.observe([stats("code", 0.5), stats("general", 0.15)], now=10.0)
    assert [r.domain for r in fired] == ["code"] and fired[0].sigma >= CONFIG.tau_spawn
    assert detector.observe([stats("code", 0.5)], now=50.0) == []  # inside the cooldown
    assert [r.domain for r in detector.observe([stats("code", 0.5)], now=111.0)] == ["code"]
    # general stayed below tau_spawn throughout and never fired
    assert detector.observe([stats("general", 0.15)], now=500.0) == []
    events = [e for e in registry.events(parent.id) if e.type == "spawn-requested"]
    assert [e.data["domain"] for e in events] == ["code", "code"]


def test_spawn_event_carries_every_input_of_sigma(registry, parent):
    [request] = make(registry, parent).observe([stats("code", 0.6, gap=2.5, window=3)], now=0.0)
    [event] = [e for e in registry.events(parent.id) if e.type == "spawn-requested"]
    data = event.data
    assert data["volume_share"] == 0.6 and data["parent_gap"] == 2.5 and data["gap_normalised"] == 0.5
    assert data["weights"] == {"volume": 0.5, "gap": 0.3, "savings": 0.2}
    assert data["tau_spawn"] == 0.4 and data["window"] == 3 and data["ratio"] == 0.5
    expected = 0.5 * 0.6 + 0.3 * 0.5 + 0.2 * data["savings"]
    assert data["sigma"] == pytest.approx(expected) == pytest.approx(request.sigma)


def test_too_few_queries_never_fire(registry, parent):
    assert make(registry, parent).observe([stats("code", 0.9, total=10)], now=0.0) == []


def test_never_fires_when_a_specialist_is_registered(registry, parent, tmp_path):
    assert make(registry, parent, has_specialist=lambda d: d == "code").observe([stats("code", 0.6)], 0.0) == []
    weights = write_file(tmp_path / "child", "model.safetensors", safetensors_bytes(b"c" * 512))
    child = registry.register("child", "code-child", {"model.safetensors": weights}, operator="cmg",
                              recipe={"domain": "medical"}, parents=[parent.id])
    detector = Detector(CONFIG, registry, parent.id, parent_flops_per_token=PARENT_FLOPS,
                        head_flops_per_token=HEAD_FLOPS)  # default: the registry's active children
    assert not registered_specialist(registry)("medical")  # a candidate is not yet adequate
    registry.transition(child.id, "shadow", event_type="promoted", actor="approver", reason="test")
    assert registered_specialist(registry)("medical")
    assert [r.domain for r in detector.observe([stats("medical", 0.6), stats("code", 0.6)], 0.0)] == ["code"]


def test_parent_nll_gap_scores_real_text_with_the_pico_parent(pico):
    from breedlab.ecosystem.detector import parent_nll_gap
    from breedlab.lab.pico_home import synthetic_documents

    gap = parent_nll_gap(*pico, seq_len=16, max_blocks=4)
    texts = synthetic_documents("medical", 4, seed=1)
    value = gap("medical", texts)
    assert 0.0 < value < 20.0 and value == gap("medical", texts)  # finite nats, deterministic
    assert gap("medical", ["hi"]) == 0.0  # too little text for one block
