"""Evidence under signature (issue 15): only an evaluator's unaltered packet, measured under the
evaluation config in force, supports a promotion; each refusal names its reason."""

from __future__ import annotations

import json
import os

import pytest
from registry_helpers import register_weights, write_file

from breedlab.evaluation.decision import Decision
from breedlab.evaluation.fitness import FitnessVector
from breedlab.evaluation.gates import GateResult
from breedlab.evaluation.packet_authority import SIGNATURE_FILE, evaluation_config_sha256
from breedlab.evaluation.packets import write_evidence_packet
from breedlab.governance.config import GovernanceConfig
from breedlab.governance.identities import adopt_home
from breedlab.governance.promotion import AuthorityError, EvidenceError, promote
from breedlab.registry import Registry, verify
from breedlab.registry.keys import load_key
from breedlab.typed_config import use_home_configs

CONFIG = GovernanceConfig()


@pytest.fixture()
def signed(tmp_path):
    keys = tmp_path / "keys"
    reg = Registry.open(tmp_path / "home" / "registry", signers={})
    adopt_home(reg, keys)
    reg.signers = {name: load_key(name, keys) for name in ("approver", "breeder", "evaluator", "lifecycle")}
    parent = register_weights(reg, tmp_path, name="parent", content=b"p" * 64, actor="breeder")
    reg.transition(parent.id, "champion", event_type="promoted", actor="approver", reason="the root parent")
    suite = reg.register("eval-suite", "code/cloze", {"cases.jsonl": write_file(tmp_path, "c.jsonl", b"{}\n")},
                         operator="suite", recipe={}, actor="evaluator")
    child = register_weights(reg, tmp_path, name="child", content=b"c" * 64, kind="child", actor="breeder")
    return reg, parent, suite, child


def evidence(reg, parent, suite, child, evaluator="evaluator"):
    champion = FitnessVector(candidate=parent.id, suites={"cloze": suite.id}, utility=0.5)
    challenger = FitnessVector(candidate=child.id, suites={"cloze": suite.id}, utility=0.7)
    gates = [GateResult("general-regression", True, 0.5, 2.0, "within bound")]
    return write_evidence_packet(reg, champion, challenger, gates, Decision("promote", ["better"]), niche="code",
                                 evaluator=evaluator)


def test_an_evaluators_signed_packet_supports_the_promotion_and_verify_passes(signed):
    reg, parent, suite, child = signed
    packet = evidence(reg, parent, suite, child)
    body = json.loads((packet.path / "packet.json").read_text())
    assert body["evaluator"] == "evaluator" and body["evaluation_config_sha256"] == evaluation_config_sha256()
    assert (packet.path / SIGNATURE_FILE).is_file()
    promote(reg, CONFIG, child.id, "champion", niche="code", approver="approver", reason="evidence")
    assert [f.message for f in verify(reg.root) if f.level == "problem"] == []


def test_a_packet_written_by_a_breeder_key_is_refused_at_promotion(signed):
    reg, parent, suite, child = signed
    evidence(reg, parent, suite, child, evaluator="breeder")
    with pytest.raises(EvidenceError, match="both bred the candidate and evaluated it"):
        promote(reg, CONFIG, child.id, "champion", niche="code", approver="approver", reason="self-graded")
    assert any("a breeder may not write 'registered'" in f.message for f in verify(reg.root))


def test_a_packet_with_a_flipped_byte_is_refused_at_promotion(signed):
    reg, parent, suite, child = signed
    packet = evidence(reg, parent, suite, child)
    path = packet.path / "packet.json"
    raw = bytearray(path.read_bytes())
    raw[raw.index(b'"better"') + 1] ^= 0x01  # "better" -> "cetter": still valid JSON
    os.chmod(path, 0o644)
    path.unlink()  # the artifact file is a hard link to the read-only object: replace it, as an editor would
    path.write_bytes(bytes(raw))
    with pytest.raises(EvidenceError, match="differs from the bytes registered"):
        promote(reg, CONFIG, child.id, "champion", niche="code", approver="approver", reason="altered")


def test_a_packet_under_a_changed_evaluation_config_is_refused_at_promotion(signed, tmp_path):
    reg, parent, suite, child = signed
    evidence(reg, parent, suite, child)
    home = tmp_path / "home"
    (home / "configs").mkdir(parents=True)
    (home / "configs" / "evaluation.yaml").write_text("noninferior_utility_margin: 0.5\n")
    use_home_configs(home)
    try:
        with pytest.raises(EvidenceError, match="not the one in force"):
            promote(reg, CONFIG, child.id, "champion", niche="code", approver="approver", reason="old gates")
    finally:
        use_home_configs(None)


def test_approver_equal_to_breeder_is_refused(signed, tmp_path):
    reg, parent, suite, _ = signed
    own = register_weights(reg, tmp_path, name="own", content=b"o" * 64, kind="child", actor="approver")
    evidence(reg, parent, suite, own)
    with pytest.raises(AuthorityError, match="cannot promote its own work"):
        promote(reg, CONFIG, own.id, "champion", niche="code", approver="approver", reason="mine")


def test_the_cli_acts_as_an_approver_only_with_its_key_file(signed, tmp_path):
    from typer.testing import CliRunner

    from breedlab.cli.app import app

    reg, parent, suite, child = signed
    evidence(reg, parent, suite, child)
    home, args = tmp_path / "home", ["promote", child.id, "--to", "champion", "--niche", "code", "--as", "approver"]
    keyless = CliRunner().invoke(app, [*args, "--keys", str(tmp_path / "nowhere"), "--home", str(home)])
    assert keyless.exit_code == 1 and "acts only with its key" in keyless.output
    assert reg.get(child.id).state == "candidate"
    keyed = CliRunner().invoke(app, [*args, "--keys", str(tmp_path / "keys"), "--home", str(home)])
    assert keyed.exit_code == 0, keyed.output
    assert reg.get(child.id).state == "champion"
    assert [f.message for f in verify(reg.root) if f.level == "problem"] == []
