"""Evidence and release packets: registered, round-tripped, rendered, and refused when malformed."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from registry_helpers import register_weights, write_file

from breedlab.evaluation.decision import decide, select_population
from breedlab.evaluation.fitness import FitnessVector
from breedlab.evaluation.gates import EvaluationConfig, evaluate_gates
from breedlab.evaluation.packets import (
    PacketError,
    load_packet,
    render_markdown,
    validate_packet,
    write_evidence_packet,
    write_release_packet,
)

CONFIG = replace(EvaluationConfig(), bootstrap_resamples=500)


@pytest.fixture()
def lab(registry, tmp_path):
    """A registry holding a champion, a challenger and two suites, with fitness vectors naming them."""
    champion = register_weights(registry, tmp_path, "champ", b"c" * 512)
    challenger = register_weights(registry, tmp_path, "chal", b"d" * 512, kind="child", parents=[champion.id])
    suites = {}
    for kind in ("cloze", "lm"):
        cases = write_file(tmp_path / kind, "cases.json", json.dumps({"kind": kind}).encode())
        suites[kind] = registry.register("eval-suite", f"code/{kind}", {"cases.json": cases},
                                         operator="suite", recipe={"kind": kind}).id

    def vector(artifact_id: str, correct: int, shift: float) -> FitnessVector:
        return FitnessVector(
            candidate=artifact_id, suites=suites, utility=correct / 100,
            utility_cases=[1] * correct + [0] * (100 - correct),
            domain_case_nll=[2.0 + shift + 0.01 * (i % 7) for i in range(50)], domain_ppl=math.exp(2.03 + shift),
            general_regression=0.4, general_ppl_ratio=1.01, latency_token_ms_p50=5.0, peak_rss_bytes=1 << 29,
            weight_bytes=512,
            network_attempts=0, data_local=True, canary_reproduced=False, has_nan=False,
            machine="test machine", measured_utc="2026-01-01T00:00:00Z",
            unmeasured={"flops_per_token": "no profiler in this test"},
        )

    return registry, vector(champion.id, 60, 0.0), vector(challenger.id, 75, -0.1)


def evidence(registry, champion, challenger, niche="code"):
    gates = evaluate_gates(challenger, CONFIG)
    decision = decide(champion, challenger, CONFIG)
    return write_evidence_packet(registry, champion, challenger, gates, decision, niche=niche), gates, decision


def test_evidence_packet_round_trips_every_metric_and_links_its_sources(lab):
    registry, champion, challenger = lab
    artifact, gates, decision = evidence(registry, champion, challenger)
    assert artifact.manifest.kind == "packet" and artifact.manifest.parents == (challenger.candidate,)
    assert set(artifact.manifest.data) == set(challenger.suites.values())
    body = load_packet(registry, artifact.id)
    assert body["created_utc"].endswith("Z") and body["candidate"] == challenger.candidate
    assert FitnessVector.from_dict(body["fitness"]["candidate"]) == challenger
    assert FitnessVector.from_dict(body["fitness"]["champion"]) == champion
    assert body["decision"] == {"outcome": decision.outcome, "reasons": decision.reasons}
    assert [g["name"] for g in body["gates"]] == [g.name for g in gates]
    assert body["statistics"]["utility"]["discordant_challenger_wins"] == 15
    missing = body["unmeasured"]["candidate"]
    assert missing["flops_per_token"] == "no profiler in this test" and "latency_request_ms_p95" in missing


def test_evidence_markdown_shows_the_decision_and_every_gate(lab):
    registry, champion, challenger = lab
    artifact, gates, decision = evidence(registry, champion, challenger)
    text = (artifact.path / "packet.md").read_text(encoding="utf-8")
    assert f"**Decision: {decision.outcome}**" in text and decision.outcome == "promote"
    for result in gates:
        assert f"| {result.name} | pass |" in text
    assert "| utility_cases | 100 cases | 100 cases |" in text and "## Not measured" in text


def test_a_rejected_candidate_names_its_failed_gate_and_nan_survives_as_a_string(lab):
    registry, champion, challenger = lab
    bad = replace(challenger, general_ppl_ratio=math.nan, network_attempts=1)
    artifact, _, _ = evidence(registry, champion, bad)
    body = load_packet(registry, artifact.id)
    assert body["decision"]["outcome"] == "reject"
    assert body["fitness"]["candidate"]["general_ppl_ratio"] == "NaN"
    text = (artifact.path / "packet.md").read_text(encoding="utf-8")
    assert "| general-ppl-ratio | FAIL |" in text and "| network | FAIL |" in text


def test_packets_are_deterministic_apart_from_the_timestamp(lab):
    registry, champion, challenger = lab
    first, _, _ = evidence(registry, champion, challenger)
    second, _, _ = evidence(registry, champion, challenger)
    bodies = [load_packet(registry, a.id) for a in (first, second)]
    for body in bodies:
        body.pop("created_utc")
    assert bodies[0] == bodies[1]


def test_release_packet_names_population_rollback_and_evidence(lab):
    registry, champion, challenger = lab
    packet, _, _ = evidence(registry, champion, challenger)
    selection = select_population(champion, [challenger], CONFIG)
    release = write_release_packet(registry, selection, [packet.id], niche="code", rollback_target=champion.candidate)
    body = load_packet(registry, release.id)
    assert body["type"] == "release" and body["decision"] == "promote" and body["no_op"] is False
    assert body["population"][:2] == [{"role": "champion", "id": champion.candidate},
                                      {"role": "useful_specialist", "id": challenger.candidate}]
    assert body["rollback_target"] == champion.candidate and body["evidence"] == [packet.id]
    assert release.manifest.parents == (packet.id,)
    text = (release.path / "packet.md").read_text(encoding="utf-8")
    assert "**Decision: promote**" in text and f"`{champion.candidate}`" in text and packet.id in text


def test_release_packet_must_rest_on_evidence_packets(lab):
    registry, champion, challenger = lab
    selection = select_population(champion, [challenger], CONFIG)
    with pytest.raises(PacketError, match="at least one evidence"):
        write_release_packet(registry, selection, [], niche="code", rollback_target=champion.candidate)
    with pytest.raises(PacketError, match="not a packet"):
        write_release_packet(registry, selection, [challenger.candidate], niche="code",
                             rollback_target=champion.candidate)


@pytest.mark.parametrize("content, match", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"schema": 2, "type": "evidence"}', "schema"),
    (b'{"schema": 1, "type": "evidence", "created_utc": "2026-01-01T00:00:00Z", "niche": "code"}', "missing keys"),
])
def test_load_packet_refuses_malformed_json(lab, tmp_path, content, match):
    registry, _, _ = lab
    path = write_file(tmp_path / "bad", "packet.json", content)
    bad = registry.register("packet", "evidence/code/bad", {"packet.json": path}, operator="evaluate", recipe={})
    with pytest.raises(PacketError, match=match):
        load_packet(registry, bad.id)


def test_validate_packet_checks_types_and_timestamps(lab):
    registry, champion, challenger = lab
    artifact, _, _ = evidence(registry, champion, challenger)
    body = load_packet(registry, artifact.id)
    with pytest.raises(PacketError, match="UTC"):
        validate_packet({**body, "created_utc": "2026-01-01 00:00:00"})
    with pytest.raises(PacketError, match="wrong types"):
        validate_packet({**body, "gates": {}})
    assert render_markdown(body) == (artifact.path / "packet.md").read_text(encoding="utf-8")
