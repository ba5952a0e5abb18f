"""The live dashboard on the quick demo's ecosystem: rendered in headless Chromium, self-contained, refreshing.

The screenshot is saved by the test (and copied to $BREEDLAB_TEST_ARTIFACTS
when set) so a person can see what the DOM assertions checked.
"""

from __future__ import annotations

import os
import re
import shutil

import browser
import httpx
import pytest
from browser import dump_dom, png_is_blank, png_size, screenshot
from server_fixture import quick_home, running_server

from breedlab.data.read import iter_documents
from breedlab.governance.niche import current_champion
from breedlab.registry import Registry
from breedlab.report.style import short_id

ARTIFACTS_ENV = "BREEDLAB_TEST_ARTIFACTS"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, registry) of the real app on a quick-demo copy, after real routed traffic."""
    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    with running_server(home) as base_url:
        for domain in ("general", "medical"):
            dataset = registry.find(kind="dataset", name=f"{domain}/test")[0]
            for _, doc in zip(range(6), iter_documents(dataset.path)):
                reply = httpx.post(base_url + "/v1/completions", timeout=120,
                                   json={"model": "auto", "prompt": doc["text"][:200], "max_tokens": 4})
                assert reply.status_code == 200, reply.text
        yield base_url, registry


def test_the_dashboard_shows_the_quick_demo_lineage_in_chromium(served, tmp_path):
    base_url, registry = served
    png = screenshot(base_url + "/", tmp_path / "dashboard.png", width=1280, height=1800)
    artifacts = os.environ.get(ARTIFACTS_ENV)
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        shutil.copy(png, os.path.join(artifacts, "server-dashboard.png"))
    assert png_size(png) == (1280, 1800) and not png_is_blank(png)
    dom = dump_dom(base_url + "/")
    lineage = dom[dom.index('<svg xmlns="http://www.w3.org/2000/svg" class="lineage"'):]
    lineage = lineage[:lineage.index("</svg>")]
    parent = registry.find(kind="parent")[0]
    children = registry.find(kind="child")
    assert len(children) >= 2
    for model in [parent, *children]:
        assert model.id[:12] in lineage and model.manifest.name in lineage, model.manifest.name
        assert f'data-id="{model.id}" data-state="{"parent" if model is parent else model.state}"' in lineage
    assert lineage.count('class="edge"') == len(children)  # one edge from the parent to each child


def test_the_page_is_self_contained_and_reads_without_javascript(served):
    base_url, registry = served
    html = httpx.get(base_url + "/").text
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)  # nothing fetched
    assert not re.search(r"url\((?!#)|@import", html)  # url(#arrow) is an in-page SVG marker
    without_script = re.sub(r"<script>.*?</script>", "", html, flags=re.DOTALL)
    for child in registry.find(kind="child"):
        assert f'<tr data-id="{child.id}">' in without_script  # the state and fitness row, server-rendered
    assert 'aria-label="routing share per minute"' in without_script
    assert "champion" in without_script and "pass" in without_script


def test_the_json_follows_the_registry_and_the_page_polls_it(served):
    base_url, registry = served
    first = httpx.get(base_url + "/dashboard/state.json").json()
    assert set(first["html"]) == {"lineage", "routing", "models", "router", "approval", "events"}
    router = registry.find(kind="router-policy", state="champion")[0]  # crowned with evidence at set-up
    assert [r["id"] for r in first["router"] if r["state"] == "champion"] == [router.id]
    assert short_id(router.id) in first["html"]["router"]
    medical, parent = current_champion(registry, "medical"), registry.find(kind="parent")[0]
    served = [(k, n) for m in first["routing"] for k, n in m["served"].items()]
    assert sum(n for _, n in served) == 12  # the fixture's 12 requests
    assert {k for k, _ in served} <= {parent.id, medical.id}  # counted by public name, reported by id
    assert next(m for m in first["models"] if m["id"] == medical.id)["fitness"]["gates"] == "pass"
    registry.transition(medical.id, "retired", event_type="retired", actor="approver", reason="dashboard test",
                        data={"niche": "medical"})
    second = httpx.get(base_url + "/dashboard/state.json").json()
    assert second["version"] != first["version"] and second["events"][0]["reason"] == "dashboard test"
    assert 'data-state="retired"' in second["html"]["lineage"].split(f'data-id="{medical.id}"')[1][:40]
    # Chromium with virtual time: the page's timer fires, fetches the JSON and marks itself live.
    done = browser._run(["--virtual-time-budget=8000", "--dump-dom", base_url + "/"], browser.TIMEOUT_S)
    assert 'data-live="ok"' in done.stdout and "live \u00b7 " in done.stdout
