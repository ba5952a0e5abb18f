"""`breedlab demo --quick` end to end: the phased story happens, the log says why, the report renders.

The demo runs once per module (about 1.5 minutes on 2 cores) through the real CLI
entry point; every assertion below reads what it left behind: the registry's
event log and states, timeline.json, and report.html rendered by headless Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from browser import dump_dom, png_is_blank, png_size, screenshot

from breedlab.demo.profiles import load_profile
from breedlab.evaluation.packets import load_packet
from breedlab.governance.promotion import passing_evidence
from breedlab.registry import Registry, verify


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo-home")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "breedlab.cli.app", "demo", "--quick", "--home", str(home)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folder = (home / "demo" / "quick" / "latest").resolve()
    registry = Registry.open(folder / "registry")
    timeline = json.loads((folder / "timeline.json").read_text())
    return folder, registry, timeline, run.stdout


def _children(registry: Registry) -> dict[str, object]:
    return {c.manifest.recipe["domain"]: c for c in registry.find(kind="child")}


def test_the_detector_fires_for_code_then_medical_and_never_for_general(demo_run):
    _, registry, timeline, _ = demo_run
    spawns = [e for e in registry.events() if e.type == "spawn-requested"]
    assert [e.data["domain"] for e in spawns] == ["code", "medical"]
    assert all(e.data["sigma"] >= e.data["tau_spawn"] and e.actor == "detector" for e in spawns)
    first_code_phase = min(w["index"] for w in timeline["windows"] if w["phase"] == "code rises")
    assert min(e["window"] for e in timeline["events"] if e["type"] == "spawn-requested") >= first_code_phase


def test_each_child_goes_shadow_canary_champion_by_the_approver(demo_run):
    _, registry, _, _ = demo_run
    for domain, child in _children(registry).items():
        promotions = [e for e in registry.events(child.id) if e.type == "promoted"]
        assert [e.data["to"] for e in promotions] == ["shadow", "canary", "champion"], domain
        assert {e.actor for e in promotions} == {"approver"}
        assert all(e.data["evidence"] for e in promotions)
        registered = next(e for e in registry.events(child.id) if e.type == "registered")
        assert registered.actor == "breeder"


def test_the_faded_code_child_is_pruned_and_medical_still_serves(demo_run):
    _, registry, timeline, _ = demo_run
    children = _children(registry)
    assert children["code"].state == "retired" and children["medical"].state == "champion"
    prune = next(e for e in registry.events(children["code"].id) if e.type == "retired")
    assert prune.data["action"] == "prune" and "pruned" in prune.reason and prune.actor == "ecosystem"
    last = timeline["windows"][-1]
    assert children["code"].id not in last["served"]  # its traffic went back to the parent
    assert last["served"].get(children["medical"].id, 0) > 0
    assert [f for f in verify(registry.root) if f.level == "problem"] == []


def test_the_steward_reviews_the_champions_for_a_merge_and_records_not_converged(demo_run):
    """Code and medical are both champions at day 9's close (merge.review_every_windows = 3): their
    centroids are far apart, so each gets a merge-skipped event naming the other, by the approver."""
    _, registry, timeline, _ = demo_run
    children = _children(registry)
    reviews = [w for w in timeline["windows"] if "merges" in w]
    assert reviews and all((w["index"] + 1) % 3 == 0 for w in reviews)
    assert reviews[0]["merges"][0]["niches"] == ["code", "medical"]
    assert reviews[0]["merges"][0]["outcome"] == "skipped"
    skipped = [e for e in timeline["events"] if e["type"] == "merge-skipped"]
    assert {e["artifact"] for e in skipped} == {children["code"].id, children["medical"].id}
    assert all(e["actor"] == "approver" and "centroid similarity" in e["reason"] for e in skipped)
    assert registry.get(children["medical"].id).state == "champion"  # a review that skips changes nothing


def test_routing_share_and_measured_saving_follow_the_story(demo_run):
    _, registry, timeline, _ = demo_run
    first = timeline["windows"][0]
    assert set(first["served"]) == {"parent"}  # general use: everything on the parent
    compute = timeline["compute"]
    assert compute["coverage"] > 0.6 and compute["saving_flops"] > 1.2
    assert compute["paper_table3"] is not None and compute["ratio"] == 0.3
    for window in timeline["windows"]:
        assert window["flops"]["served"] <= window["flops"]["parent_only"] * 1.0001


def test_the_steward_adapts_the_router_on_its_schedule_and_never_without_evidence(demo_run):
    folder, registry, timeline, _ = demo_run
    every = load_profile("quick").adaptation["refit_every_windows"]
    steps = [w["router"] for w in timeline["windows"] if w.get("router")]
    refits = [r for r in steps if r["router"] == "refit"]
    assert refits, "the quick demo's steward never refitted the router"
    assert all((w["index"] + 1) % every == 0 for w in timeline["windows"] if w.get("router", {}).get("router") == "refit")
    for refit in refits:
        body = load_packet(registry, refit["packet"])
        assert body["type"] == "routing" and body["candidate"] == refit["candidate"]
        assert body["decision"]["outcome"] == refit["outcome"]
        candidate = registry.get(refit["candidate"])
        assert candidate.manifest.operator == "router-variant" and candidate.manifest.recipe["labels"] == refit["labels"]
        if refit["outcome"] != "promote":
            assert candidate.state == "rejected"  # never routes
    for policy in registry.find(kind="router-policy"):  # every policy that ever routed had passing evidence
        if any(e.type == "promoted" for e in registry.events(policy.id)):
            assert passing_evidence(registry, policy.id, "router")
    provenances = sqlite3.connect(folder / "logs" / "demo-quick-labels.sqlite").execute(
        "SELECT DISTINCT provenance FROM labels").fetchall()
    assert provenances == [("monitor",)]


def test_part_of_the_trace_is_query_shaped_and_its_routing_is_reported(demo_run):
    _, _, timeline, _ = demo_run
    shapes = [w["routing"] for w in timeline["windows"]]
    assert all(s["query"]["queries"] > 0 and s["snippet"]["queries"] > 0 for s in shapes)
    asked = sum(s["query"]["queries"] for s in shapes) / sum(n["queries"] for s in shapes for n in s.values())
    assert 0.1 < asked < 0.35  # the quick profile's trace_share is 0.2


def test_the_timeline_printed_says_what_happened(demo_run):
    _, _, _, stdout = demo_run
    for needle in ("spawn-requested", "shadow on", "canary on", "pruned", "report.html"):
        assert needle in stdout, needle


def test_a_lab_inside_the_demo_shows_its_progress_on_the_console(demo_run):
    """Not minutes of silence while a child breeds: the lab's steps and the breed's bars, as plain lines
    here (the console is a pipe), with tokens/s and an ETA, prefixed by the niche's lab."""
    _, _, _, stdout = demo_run
    lines = stdout.splitlines()
    assert any("code lab: 3/6 candidates" in line for line in lines)
    assert any("code lab: breeding cmg" in line for line in lines)
    training = [line for line in lines if "code lab: 3/4 distilling" in line]
    assert training and all("tok/s" in line and "ETA" in line for line in training)
    assert any("medical lab: measuring" in line for line in lines)


def test_the_report_renders_in_headless_chromium(demo_run, tmp_path):
    folder, registry, _, _ = demo_run
    report = folder / "report.html"
    dom = dump_dom(report)
    for child in registry.find(kind="child"):
        assert child.id[:12] in dom  # the lineage graph names every child
    assert "<svg" in dom and "Table 3" in dom
    assert "routed right" in dom and "of query-shaped traffic" in dom  # the router on how people ask
    png = screenshot(report, tmp_path / "demo-report.png", width=1280, height=2400)
    assert png_size(png) == (1280, 2400) and not png_is_blank(png)
    keep = os.environ.get("BREEDLAB_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / "demo-report.png")


def test_the_full_profile_breeds_compact_children_and_has_a_phase_for_them():
    """`make demo` (the full profile) breeds the lab's compact recipe stacked in fp16, and its trace has a
    phase whose niche traffic is at least 80%, where issue 11's saving is read."""
    from breedlab.demo.profiles import load_profile

    profile = load_profile("full")
    config = profile.lab_config("code")
    assert config.cmg_preset == "compact" and config.ratio < 1.0
    assert config.candidates.index("cmg") < config.candidates.index("cmg-fp16")
    niche_shares = [sum(share for domain, share in phase["mix"].items() if domain not in profile.parent_domains)
                    for phase in profile.phases]
    assert max(niche_shares) >= 0.8


def test_the_full_profile_router_keeps_the_domains_it_does_not_serve_on_the_parent():
    """The full demo serves code and medical; legal and sysadmin questions are learnt as parent classes
    (their corpora and queries are built for it), and the fitted policy is a hybrid with its kNN fallback."""
    profile = load_profile("full")
    assert profile.niches == ["code", "medical"]
    assert profile.router_parent_domains == ("general", "legal", "sysadmin")
    assert profile.data_domains == ["code", "medical", "general", "legal", "sysadmin"]
    assert profile.router["policy"] == "hybrid" and profile.router_fit()["params"]["fallback"] == "knn"
    assert load_profile("quick").router_parent_domains == ("general",)


def test_the_servers_population_config_is_the_full_demo_profiles():
    """The server fits a router from ecosystem.yaml's population section, never from a demo profile;
    the two files must not drift apart (the server's fit was the full profile's before the split)."""
    from breedlab.demo.profiles import load_profile
    from breedlab.ecosystem.config import load_population_config

    profile, population = load_profile("full"), load_population_config()
    assert population.parent_domains == profile.parent_domains
    assert population.router_policy == profile.router["policy"]
    assert population.router_fit == profile.router_fit()
