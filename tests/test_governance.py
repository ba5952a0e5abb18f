"""Promotion needs evidence and separate authority; rollback restores; budgets refuse; history shows all."""

from __future__ import annotations

from dataclasses import replace

import pytest
from registry_helpers import register_weights, write_file
from typer.testing import CliRunner

from breedlab.cli.app import app
from breedlab.evaluation.decision import Decision
from breedlab.evaluation.fitness import FitnessVector
from breedlab.evaluation.gates import GateResult
from breedlab.evaluation.packets import write_evidence_packet
from breedlab.governance.config import GovernanceConfig, load_governance
from breedlab.governance.niche import current_champion, niche_events
from breedlab.governance.promotion import (
    AuthorityError,
    BudgetError,
    EvidenceError,
    promote,
    rollback,
)
from breedlab.home import Home
from breedlab.registry import Registry, RegistryError
from breedlab.registry.lifecycle import Move

CONFIG = GovernanceConfig(breeder="breeder", approvers=("approver",), max_children_per_niche=2,
                          max_total_weight_bytes=10**9, lease_days=30)


@pytest.fixture()
def world(tmp_path):
    home = Home.resolve(tmp_path / "home")
    reg = Registry.open(home.registry_dir)
    parent = register_weights(reg, tmp_path, name="parent", content=b"p" * 64)
    reg.transition(parent.id, "champion", event_type="promoted", actor="approver", reason="the root parent")
    suite = reg.register("eval-suite", "code/cloze", {"cases.jsonl": write_file(tmp_path, "c.jsonl", b"{}\n")},
                         operator="suite", recipe={})
    children = [_child(reg, tmp_path, name, actor="breeder") for name in ("child-a", "child-b", "child-c")]
    return home, reg, parent, suite, children


def _child(reg, tmp_path, name, actor):
    weights = write_file(tmp_path / name, "model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return reg.register("child", name, {"model.safetensors": weights}, operator="cmg", recipe={"name": name},
                        actor=actor)


def evidence(reg, parent, suite, child, *, outcome="promote", passed=True, niche="code"):
    champion = FitnessVector(candidate=parent.id, suites={"cloze": suite.id}, utility=0.5)
    challenger = FitnessVector(candidate=child.id, suites={"cloze": suite.id}, utility=0.7)
    gates = [GateResult("general-regression", passed, 0.5, 2.0, "within bound" if passed else "over bound")]
    return write_evidence_packet(reg, champion, challenger, gates, Decision(outcome, ["test evidence"]), niche=niche)


def test_promotion_without_a_passing_packet_is_refused(world):
    _, reg, parent, suite, (a, *_) = world
    with pytest.raises(EvidenceError, match="no passing evidence"):
        promote(reg, CONFIG, a.id, "champion", niche="code", approver="approver", reason="hunch")
    evidence(reg, parent, suite, a, outcome="no-op")
    evidence(reg, parent, suite, a, outcome="promote", passed=False)
    evidence(reg, parent, suite, a, outcome="promote", niche="legal")
    with pytest.raises(EvidenceError):
        promote(reg, CONFIG, a.id, "champion", niche="code", approver="approver", reason="wrong evidence")
    assert reg.get(a.id).state == "candidate"


def test_the_breeding_identity_cannot_promote(world, tmp_path):
    _, reg, parent, suite, (a, *_) = world
    evidence(reg, parent, suite, a)
    with pytest.raises(AuthorityError, match="not an approver"):
        promote(reg, CONFIG, a.id, "champion", niche="code", approver="breeder", reason="mine")
    self_bred = _child(reg, tmp_path, "approver-bred", actor="approver")
    evidence(reg, parent, suite, self_bred)
    with pytest.raises(AuthorityError, match="cannot promote its own work"):
        promote(reg, CONFIG, self_bred.id, "champion", niche="code", approver="approver", reason="mine")
    with pytest.raises(ValueError, match="must not also be an approver"):
        GovernanceConfig(breeder="approver", approvers=("approver",))


def test_promote_then_rollback_restores_the_previous_champion(world):
    _, reg, parent, suite, (a, b, _) = world
    for child in (a, b):
        evidence(reg, parent, suite, child)
    first = promote(reg, CONFIG, a.id, "champion", niche="code", approver="approver", reason="won on cloze")
    assert first[0].data["lease_until"].endswith("Z") and first[0].data["evidence"]
    assert current_champion(reg, "code").id == a.id
    second = promote(reg, CONFIG, b.id, "champion", niche="code", approver="approver", reason="beat a")
    assert [e.type for e in second] == ["promoted", "retired"] and reg.get(a.id).state == "retired"
    events = rollback(reg, CONFIG, "code", approver="approver", reason="b regressed in canary")
    assert [e.type for e in events] == ["rolled-back", "rolled-back"]
    assert reg.get(a.id).state == "champion" and reg.get(b.id).state == "retired"
    history = niche_events(reg, "code")
    assert [(e.type, e.artifact) for e in history][-2:] == [("rolled-back", b.id), ("rolled-back", a.id)]
    assert all(e.actor == "approver" and e.reason for e in history)
    assert reg.get(parent.id).state == "champion"  # the parent is never retired: it is the no-op route


def test_rolling_back_the_first_child_returns_the_niche_to_the_parent(world):
    _, reg, parent, suite, (a, *_) = world
    evidence(reg, parent, suite, a)
    promote(reg, CONFIG, a.id, "champion", niche="code", approver="approver", reason="first")
    rollback(reg, CONFIG, "code", approver="approver", reason="bad")
    assert current_champion(reg, "code") is None and reg.get(a.id).state == "retired"


def test_budget_overflow_is_refused_with_the_reason(world):
    _, reg, parent, suite, children = world
    for child in children:
        evidence(reg, parent, suite, child)
    promote(reg, CONFIG, children[0].id, "champion", niche="code", approver="approver", reason="one")
    promote(reg, CONFIG, children[1].id, "shadow", niche="code", approver="approver", reason="two")
    with pytest.raises(BudgetError, match="already has 2 active children"):
        promote(reg, CONFIG, children[2].id, "shadow", niche="code", approver="approver", reason="three")
    tiny = replace(CONFIG, max_children_per_niche=5, max_total_weight_bytes=10)
    with pytest.raises(BudgetError, match="active weights would total"):
        promote(reg, tiny, children[2].id, "shadow", niche="code", approver="approver", reason="too big")
    assert reg.get(children[2].id).state == "candidate"


def test_cli_promote_rollback_and_history(world, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich tables wrap words at CliRunner's default 80 columns
    home, reg, parent, suite, (a, *_) = world
    evidence(reg, parent, suite, a)
    runner = CliRunner()
    refused = runner.invoke(app, ["promote", a.id, "--to", "champion", "--niche", "code", "--home", str(home.root)])
    assert refused.exit_code != 0 and "--as" in refused.output
    ok = runner.invoke(app, ["promote", a.id[:10], "--to", "champion", "--niche", "code", "--as", "approver",
                             "--home", str(home.root)])
    assert ok.exit_code == 0, ok.output
    back = runner.invoke(app, ["rollback", "code", "--as", "approver", "--reason", "drill", "--home", str(home.root)])
    assert back.exit_code == 0, back.output
    history = runner.invoke(app, ["registry", "history", "code", "--home", str(home.root)])
    assert history.exit_code == 0 and "promoted" in history.output and "rolled-back" in history.output
    assert "drill" in history.output


def test_shipped_governance_config_loads_and_a_home_can_override_it(tmp_path):
    assert load_governance().approvers == ("approver",)
    (tmp_path / "governance.yaml").write_text("approvers: [alice]\nbreeder: bob\n")
    assert load_governance(tmp_path).approvers == ("alice",)
    (tmp_path / "governance.yaml").write_text("approver: alice\n")
    with pytest.raises(ValueError, match="unknown governance keys"):
        load_governance(tmp_path)


def test_a_refusal_from_the_real_entry_point_is_one_clear_line(world):
    import subprocess
    import sys

    home, reg, parent, suite, (a, *_) = world
    evidence(reg, parent, suite, a)
    result = subprocess.run([sys.executable, "-m", "breedlab", "promote", a.id, "--to", "shadow", "--niche", "code",
                             "--as", "breeder", "--home", str(home.root)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "not an approver" in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_crowning_and_rolling_back_are_each_one_append_so_a_crash_cannot_leave_two_champions(world, monkeypatch):
    from breedlab.registry import events as event_log
    from breedlab.registry.verify import verify

    _, reg, parent, suite, (a, b, _) = world
    for child in (a, b):
        evidence(reg, parent, suite, child)
    promote(reg, CONFIG, a.id, "champion", niche="code", approver="approver", reason="won on cloze")
    writes = []
    real = event_log.append_line_durably
    monkeypatch.setattr(event_log, "append_line_durably", lambda path, lines: (writes.append(lines), real(path, lines)))
    promote(reg, CONFIG, b.id, "champion", niche="code", approver="approver", reason="beat a")
    rollback(reg, CONFIG, "code", approver="approver", reason="b regressed")
    assert [w.count(b"\n") for w in writes] == [2, 2]  # the crowning with its retirement, the rollback's two moves
    assert [f.message for f in verify(reg.root) if f.level == "problem"] == []
    with pytest.raises(RegistryError, match="retired"):  # checked in order: the second move sees the first's state
        reg.transitions([Move(a.id, "retired", "retired", "approver", "r")] * 2)
    assert reg.get(a.id).state == "champion"  # a refused group changes nothing
