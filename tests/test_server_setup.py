"""What a server finds in its home: a router policy is loaded, or fitted once and registered.

A home whose only router policy was retired (or that never had one) still has
its niches' corpora: the server fits the default policy on them the way the
demo does, registers it with its data lineage, and loads that artifact from
then on instead of fitting again.
"""

from __future__ import annotations

import pytest

from breedlab.demo_setup import labelled_snippets
from breedlab.registry import Registry, RegistryError
from breedlab.server.config import load_server_config
from breedlab.server.setup import load_router_policy
from tests.server_fixture import quick_home


@pytest.fixture()
def retired_policy_home(tmp_path_factory):
    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    for policy in registry.find(kind="router-policy"):
        registry.transition(policy.id, "retired", event_type="retired", actor="approver", reason="test: refit")
    return home, registry


def test_a_home_without_a_router_policy_gets_one_fitted_registered_and_reused(retired_policy_home):
    home, registry = retired_policy_home
    config = load_server_config()
    policy, artifact = load_router_policy(registry, config)
    assert artifact is not None and artifact.state not in ("retired", "rejected")
    recipe = artifact.manifest.recipe
    assert recipe["fitted_by"] == "serve" and recipe["policy"] == config.fit_policy
    assert set(recipe["niches"]) == {"code", "medical"} and recipe["out_of_domain"] == ["general"]
    trained_on = {registry.get(d).manifest.name for d in artifact.manifest.data}
    assert {"code/train", "medical/train", "general/validation"} <= trained_on
    held_out = labelled_snippets(registry, ["code", "medical", "general"], "test", seed=1, limit=40)
    served = {d: [r.target for r in policy.route(texts, {"code": "C", "medical": "M"})] for d, texts in held_out.items()}
    assert served["code"].count("C") >= 36 and served["medical"].count("M") >= 36
    assert served["general"].count(None) >= 36  # the parent keeps its own domain
    demo_policy = registry.find(kind="router-policy", state="retired")[0]
    assert recipe["threshold"] == demo_policy.manifest.recipe["threshold"]  # fitted exactly as the demo fits

    _, same = load_router_policy(registry, config)
    assert same.id == artifact.id  # loaded, not fitted a second time
    assert len([p for p in registry.find(kind="router-policy") if p.state != "retired"]) == 1


def test_a_named_router_policy_that_does_not_exist_is_a_clear_error(retired_policy_home):
    _, registry = retired_policy_home
    from dataclasses import replace

    with pytest.raises(RegistryError, match="no router-policy artifact matches 'router/nope'"):
        load_router_policy(registry, replace(load_server_config(), router_policy="router/nope"))


def test_serving_a_folder_that_is_not_a_home_is_one_clear_line_and_creates_nothing(tmp_path):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "breedlab.cli", "serve", "--home", str(tmp_path), "--port", "1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "is not a breedlab home" in run.stdout and "Traceback" not in run.stdout + run.stderr
    assert list(tmp_path.iterdir()) == []  # no registry was created in the wrong folder
