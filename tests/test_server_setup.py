"""What a server finds in its home: the champion router policy, or one fitted, judged and crowned once.

A home whose router policies were all retired (or that never had one) still has its
niches' corpora: the server fits the configured policy on them the way the demo does,
judges it on the frozen routing suite against the parent-only route, and the approver
crowns it on that evidence; from then on the champion is loaded, not fitted again.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from breedlab.ecosystem.router.evidence import ROUTER_NICHE
from breedlab.ecosystem.setup import labelled_snippets
from breedlab.governance.promotion import passing_evidence
from breedlab.registry import Registry
from breedlab.server.config import load_server_config
from breedlab.server.setup import load_router_policy
from tests.server_fixture import quick_home


@pytest.fixture()
def retired_policy_home(tmp_path_factory):
    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    for policy in registry.find(kind="router-policy"):
        if policy.state not in ("retired", "rejected"):
            registry.transition(policy.id, "retired", event_type="retired", actor="approver", reason="test: refit")
    return home, registry


def test_a_home_without_a_champion_policy_gets_one_fitted_judged_crowned_and_reused(retired_policy_home):
    home, registry = retired_policy_home
    config = replace(load_server_config(), fit_policy="linear")  # the n-gram policy: no MiniLM in this test
    policy, artifact = load_router_policy(registry, config)
    assert artifact is not None and registry.get(artifact.id).state == "champion"
    assert passing_evidence(registry, artifact.id, ROUTER_NICHE)  # crowned on routing evidence
    recipe = artifact.manifest.recipe
    assert recipe["fitted_by"] == "serve" and recipe["policy"] == "linear"
    assert set(recipe["niches"]) == {"code", "medical"} and recipe["out_of_domain"] == ["general"]
    trained_on = {registry.get(d).manifest.name for d in artifact.manifest.data}
    assert {"code/train", "medical/train", "general/train", "general/validation"} <= trained_on
    held_out = labelled_snippets(registry, ["code", "medical", "general"], "test", seed=1, limit=40)
    served = {d: [r.target for r in policy.route(texts, {"code": "C", "medical": "M"})] for d, texts in held_out.items()}
    assert served["code"].count("C") >= 36 and served["medical"].count("M") >= 36
    assert served["general"].count(None) >= 36  # the parent keeps its own domain

    _, same = load_router_policy(registry, config)
    assert same.id == artifact.id  # loaded, not fitted a second time
    assert [p.id for p in registry.find(kind="router-policy", state="champion")] == [artifact.id]


def test_serving_a_folder_that_is_not_a_home_is_one_clear_line_and_creates_nothing(tmp_path):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "breedlab.cli.app", "serve", "--home", str(tmp_path), "--port", "1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "is not a breedlab home" in run.stdout and "Traceback" not in run.stdout + run.stderr
    assert list(tmp_path.iterdir()) == []  # no registry was created in the wrong folder
