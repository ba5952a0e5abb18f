"""A user's niche is a niche like any other, end to end on a pico parent: examples -> the lab breeds and
judges -> the approver crowns the useful specialist -> the server's router learns the niche and routes a
question from it to that champion, and the task monitor assigns it to the niche."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
import torch
from rich.console import Console

from breedlab.data.niche import add_niche
from breedlab.governance.config import load_governance
from breedlab.governance.promotion import promote
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.lab.run import LabConfig, run_lab
from breedlab.lab.setup import LAB_ACTOR, crown_parent
from breedlab.registry import Registry
from breedlab.server.config import load_server_config
from tests.niche_fixture import question, write_licence_examples
from tests.server_fixture import running_server

CONFIG = LabConfig(niche="licences", pico=True, ratio=0.5, distill_tokens=2048, finetune_tokens=2048, lm_cases=6,
                   task_cases=12, retention_cases=4, passage_tokens=32, max_new_tokens=4,
                   candidates=("adapter-finetune",))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("user-niche"))
    registry = Registry.open(home.registry_dir)
    crown_parent(registry, build_pico_lab(registry, home.cache_dir).parent, actor=LAB_ACTOR)
    path = write_licence_examples(tmp_path_factory.mktemp("ex") / "licences.jsonl")
    add_niche(home, registry, "licences", examples=path, task="classify")
    result = run_lab(registry, home, CONFIG, Console(record=True, width=200))
    child = result.selection.useful_specialist
    assert child, result.selection.reasons
    governance = load_governance(home.root)
    for stage in ("shadow", "canary", "champion"):
        promote(registry, governance, child, stage, niche="licences", approver=governance.approvers[0],
                reason=f"test: {stage} on the lab's evidence")
    return home, registry, child


def test_the_server_routes_a_question_of_the_niche_to_its_champion(served):
    home, registry, child = served
    config = replace(load_server_config(), fit_policy="linear", shadow=False)
    text = question("GPL", 3)
    with running_server(home, config) as base_url:
        answer = httpx.post(f"{base_url}/v1/chat/completions", timeout=120, json={
            "model": "auto", "max_tokens": 4, "messages": [{"role": "user", "content": text}]}).json()
        models = httpx.get(f"{base_url}/v1/models").json()["data"]
    assert answer["breedlab"]["route"] == "licences" and answer["breedlab"]["artifact_id"] == child
    assert any(m["breedlab"]["artifact_id"] == child for m in models)
    policy = registry.find(kind="router-policy", state="champion")[0]
    assert "licences" in policy.manifest.recipe["niches"]


def test_the_task_monitor_knows_the_niche(served):
    home, registry, _ = served
    from breedlab.ecosystem.config import load_section
    from breedlab.ecosystem.embed import query_embedder
    from breedlab.ecosystem.monitor import MonitorConfig
    from breedlab.ecosystem.setup import calibrated_centroids

    embedder = query_embedder()
    centroids = calibrated_centroids(registry, ["code", "medical", "licences"], embedder,
                                     load_section(MonitorConfig, "monitor"), seed=0)
    vectors = embedder.embed([question("MIT", 7)])
    assert centroids.assign(vectors) == ["licences"]
