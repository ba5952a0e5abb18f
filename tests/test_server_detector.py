"""Live traffic drives the detector: requests served by the server close monitor windows and fire it."""

from __future__ import annotations

from dataclasses import replace

from openai import OpenAI

from breedlab.demo_setup import labelled_snippets
from breedlab.registry import Registry
from breedlab.server.app import create_app
from breedlab.server.config import load_server_config

from server_fixture import quick_home, serve_app


def test_code_traffic_through_the_server_makes_the_detector_request_a_code_child(tmp_path_factory):
    home = quick_home(tmp_path_factory)  # the quick demo pruned its code child: code has no specialist
    before = len(Registry.open(home.registry_dir).events())  # the demo's own spawns are not live traffic
    app = create_app(home, replace(load_server_config(), detector_window_queries=25))
    with serve_app(app) as base_url:
        state = app.state.breedlab
        client = OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
        code = labelled_snippets(state.registry, ["code"], "test", seed=3, limit=25)["code"]
        for text in code:
            client.completions.create(model="auto", prompt=text, max_tokens=1)
        state.monitor.flush(timeout=60)
    live = [e for e in Registry.open(home.registry_dir).events()[before:] if e.type == "spawn-requested"]
    assert [e.data["domain"] for e in live] == ["code"]  # never general (the parent's), never medical (served)
    assert live[0].actor == "detector" and live[0].data["volume_share"] > 0.8 and live[0].data["queries"] <= 25
