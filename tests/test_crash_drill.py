"""The fast crash drill (issue 15; ``benchmarks/crash_drill.py`` runs the 1,000-kill one): writers of
every phase SIGKILLed at random moments in a signed home while a second writer runs throughout, a
breed killed mid-training and resumed, and a full disk. After each: verify passes, nothing committed
is lost, nothing is doubled, and the resumed breed has the uninterrupted breed's id."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import crash_drill  # noqa: E402  (a benchmark module: its folder is put on the path above)
from server_fixture import quick_home  # noqa: E402


def test_fifteen_kills_across_the_phases_with_a_cli_and_a_server_writing_throughout_corrupt_nothing(
        tmp_path, tmp_path_factory):
    demo = quick_home(tmp_path_factory).root
    rows, steady = crash_drill.kill_drill(tmp_path, 15, random.Random(20261206), lambda *args: None, demo)
    assert [r["problems"] for r in rows] == [[]] * 15
    assert steady["final_problems"] == [] and steady["steady_ops"] > 0 and steady["steady_server_ops"] > 0
    assert {r["phase"] for r in rows} == set(crash_drill.PHASES) and all(r["landed"] for r in rows)
    assert sum(r["ops"] for r in rows) > 0  # kills landed after commits, not only before the first


def test_a_breed_killed_mid_training_resumes_to_the_uninterrupted_id(tmp_path):
    breed = crash_drill.breed_drill(tmp_path, 1, random.Random(7), steps=20)
    assert breed["problems"] == [] and breed["same_id"], breed


def test_a_full_disk_gives_a_clear_error_and_a_verifiable_home(tmp_path):
    disk = crash_drill.enospc_drill(tmp_path)
    if "skipped" in disk:  # no privilege to mount a tmpfs here: the drill says so; nothing to check
        return
    assert disk["exit"] != 0 and disk["clear_error"] and disk["problems"] == []


def test_the_checks_catch_a_lost_op_and_two_champions(tmp_path):
    """The drill's checks are not vacuous: each failure it looks for is reported when it is there."""
    from registry_helpers import register_weights

    from breedlab.registry import Registry

    reg = Registry.open(tmp_path / "registry")
    datasets = {"d.jsonl": tmp_path / "d.jsonl"}
    datasets["d.jsonl"].write_bytes(b"{}\n")
    reg.register("dataset", "register-0-0", datasets, operator="drill", recipe={"op": 0})
    assert crash_drill.checked(reg.root, {"register-0": {0}}) == []
    assert crash_drill.checked(reg.root, {"register-0": {0, 1}}) == ["register-0: committed op 1 is missing from the log"]
    a, b = (register_weights(reg, tmp_path, name=n, content=n.encode() * 64, kind="child") for n in ("a", "b"))
    for child in (a, b):
        reg.transition(child.id, "champion", event_type="promoted", actor="approver", reason="r",
                       data={"niche": "drill-x"})
    found = crash_drill.checked(reg.root, {})
    assert found == ["niche drill-x has 2 champions"]
