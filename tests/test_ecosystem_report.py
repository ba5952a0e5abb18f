"""The ecosystem report page: content, escaping, Table 3 lookup, validation, and Chromium rendering.

The fixture is a hand-built timeline shaped like ``breedlab demo``'s: three
domains over twelve windows (general, then code rises, then medical, then
code fades), a code child that is pruned, a medical child that becomes
champion, and a merged child of both (two parents) that is rejected.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil

import pytest
from browser import dump_dom, png_is_blank, png_size, screenshot

from breedlab.governance.costs import CostRow, costs_panel
from breedlab.report.page import render_report, write_report
from breedlab.report.table3 import PAPER_TABLE3, analytic_speedup, paper_table3
from breedlab.report.timeline_schema import validate_timeline

PARENT_FLOPS, TOKENS, CHILD_P = 2.0e9, 64, 0.30
# window: (phase, general, code, medical, served by parent, code child, medical child, merged child)
TRAFFIC = [("general", 200, 0, 0, 200, 0, 0, 0), ("general", 196, 4, 0, 200, 0, 0, 0),
           ("general", 190, 10, 0, 200, 0, 0, 0), ("code rises", 120, 80, 0, 200, 0, 0, 0),
           ("code rises", 110, 90, 0, 150, 50, 0, 0), ("code rises", 100, 100, 0, 104, 96, 0, 0),
           ("medical rises", 40, 100, 60, 100, 100, 0, 0), ("medical rises", 30, 90, 80, 60, 88, 52, 0),
           ("medical rises", 30, 70, 100, 32, 70, 98, 0), ("code fades", 30, 20, 150, 32, 18, 150, 0),
           ("code fades", 30, 6, 164, 36, 0, 154, 10), ("code fades", 30, 4, 166, 34, 0, 166, 0)]


def _id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


PARENT, CODE, MED, MERGED = _id("parent"), _id("code-child"), _id("medical-child"), _id("merged-child")


def _window(index: int, row: tuple) -> dict:
    phase, general, code, medical, on_parent, on_code, on_med, on_merged = row
    queries = general + code + medical
    served = {"parent": on_parent, CODE: on_code, MED: on_med, MERGED: on_merged}
    children = queries - on_parent
    return {"index": index, "phase": phase, "queries": queries,
            "mix": {"general": general, "code": code, "medical": medical},
            "served": {k: v for k, v in served.items() if v},
            "sigma": {"general": round(0.2 * general / queries, 3), "code": round(0.9 * code / queries, 3),
                      "medical": round(0.85 * medical / queries, 3)},
            "flops": {"served": TOKENS * PARENT_FLOPS * (on_parent + CHILD_P * children),
                      "parent_only": TOKENS * PARENT_FLOPS * queries},
            "latency_ms": {"served": 40.0 * on_parent + 15.0 * children, "parent_only": 40.0 * queries}}


def _event(window: int, kind: str, artifact: str, reason: str, actor: str = "lifecycle", **data) -> dict:
    return {"window": window, "ts": f"2026-11-22T20:{window:02d}:{len(data):02d}Z", "type": kind,
            "artifact": artifact, "actor": actor, "reason": reason, "data": data}


EVENTS = [
    _event(0, "registered", PARENT, "frozen parent imported", actor="demo"),
    _event(3, "spawn-requested", PARENT, "sigma(code)=0.36 >= tau_spawn", actor="detector",
           domain="code", sigma=0.36),
    _event(3, "registered", CODE, "bred by CMG distillation", actor="cmg"),
    _event(4, "promoted", CODE, "gates pass", actor="approver", to="shadow", niche="code"),
    _event(4, "promoted", CODE, "shadow agreement 0.94", actor="approver", to="canary", niche="code"),
    _event(5, "promoted", CODE, "canary clean for one window", actor="approver", to="champion", niche="code"),
    _event(6, "spawn-requested", PARENT, "sigma(medical)=0.26 >= tau_spawn", actor="detector",
           domain="medical", sigma=0.26),
    _event(6, "registered", MED, "bred by CMG distillation", actor="cmg"),
    _event(7, "promoted", MED, "gates pass", actor="approver", to="canary", niche="medical"),
    _event(7, "rolled-back", MED, "canary latency p95 over budget", actor="lifecycle"),
    _event(7, "promoted", MED, "re-canaried after cache fix", actor="approver", to="champion", niche="medical"),
    _event(8, "merge-skipped", CODE, "domains not converged: centroid cosine 0.41 < 0.80"),
    _event(8, "flagged", MED, "rolling utility 0.58 < baseline 0.63 - margin", actor="revalidator"),
    _event(9, "revalidated", MED, "re-evaluated: utility 0.66, within margin", actor="revalidator"),
    _event(9, "merge-refused", CODE, "weight merge refused: tokenizer hash differs; distilling instead"),
    _event(9, "registered", MERGED, "distilled from code-child and medical-child", actor="cmg"),
    _event(10, "promoted", MERGED, "gates pass", actor="approver", to="canary", niche="code+medical"),
    _event(10, "pruned", CODE, "usage 0.0% < min 5% over 2 windows <script>alert('x')</script> & co"),
    _event(10, "retired", CODE, "pruned: traffic returns to the parent"),
    _event(11, "demoted", MERGED, "canary error rate 3.1% > 1%", actor="lifecycle", to="shadow"),
    _event(11, "rejected", MERGED, "merge does not beat keeping both (utility 0.61 < 0.64)"),
    _event(11, "budget-checked", PARENT, "2 active children <= budget 4", actor="lifecycle", active=2),
]


def _fitness(utility, ppl, regression, latency, flops, gates="pass", decision="promote") -> dict:
    return {"utility": utility, "domain_ppl": ppl, "general_regression": regression,
            "latency_token_ms_p50": latency, "weight_bytes": 41_000_000, "flops_per_token": flops,
            "gates": gates, "decision": decision}


def make_timeline() -> dict:
    windows = [_window(i, row) for i, row in enumerate(TRAFFIC)]
    served = sum(w["flops"]["served"] for w in windows)
    baseline = sum(w["flops"]["parent_only"] for w in windows)
    last = windows[-1]
    coverage = 1 - last["served"].get("parent", 0) / last["queries"]
    model = {"kind": "child", "operator": "cmg", "ratio": CHILD_P, "parents": [PARENT]}
    return {
        "title": "breedlab demo: a living ecosystem", "profile": "quick", "created_utc": "2026-11-22T20:00:00Z",
        "machine": "x86_64, 2 cores, CPU only", "command": "breedlab demo --quick",
        "parent": {"id": PARENT, "name": "pico-parent", "flops_per_token": PARENT_FLOPS,
                   "weight_bytes": 140_000_000},
        "domains": ["general", "code", "medical"], "windows": windows, "events": EVENTS,
        "models": [
            {**model, "id": CODE, "name": "code-child", "domain": "code", "state": "retired",
             "fitness": _fitness(0.71, 8.4, 0.012, 1.9, 6.1e8)},
            {**model, "id": MED, "name": "medical-child", "domain": "medical", "state": "champion",
             "fitness": _fitness(0.66, 9.8, 0.018, 2.0, 6.1e8)},
            {**model, "id": MERGED, "name": "merged-child", "operator": "distill-merge", "domain": None,
             "state": "rejected", "parents": [CODE, MED],
             "fitness": _fitness(0.61, 10.9, 0.031, 2.0, 6.1e8, gates="FAIL utility < keep-both",
                                 decision="reject")},
        ],
        "compute": {"coverage": coverage, "ratio": CHILD_P, "saving_flops": baseline / served,
                    "saving_time": 1.6, "paper_table3": None, "paper_cell": "",
                    "formula": "sum(parent_only FLOPs) / sum(served FLOPs)",
                    "notes": ["FLOPs per token from the model configs; wall time measured on 2 cores."]},
        "tau_spawn": 0.25,
        "breed_costs": _breed_costs(),
    }


def _breed_costs() -> dict:
    """Equation 1 from two measured breeds, through the same functions the demo calls."""
    rows = [CostRow(CODE, "code-child", "cmg", 1200.0, 3.1e14, 1, CHILD_P),
            CostRow(MED, "medical-adapter", "adapter-finetune", 1800.0, 4.4e14, 2, None)]
    return costs_panel(rows, c_train=3000.0)


@pytest.fixture
def timeline() -> dict:
    return make_timeline()


def _visible_text(page: str) -> str:
    return re.sub(r"<[^>]+>", " ", re.sub(r"<title>.*?</title>", "", page, flags=re.S))


def test_every_section_is_rendered(timeline):
    page = render_report(timeline)
    for anchor in ("summary", "lineage", "routing", "traffic", "fitness", "compute", "costs", "events"):
        assert f'id="{anchor}"' in page
    assert page.count('<g class="node"') == 4  # parent + three models
    assert page.count('class="edge"') == 4  # code, medical from the parent; merged from both
    assert 'class="tau"' in page and page.count("<svg") == 5
    assert page.count('<tr class="ev"') == len(EVENTS)
    assert 'data-type="budget-checked"' in page  # an unknown event type still gets a row
    assert "breedlab demo --quick" in page and "2026-11-22T20:00:00Z" in page


def test_ids_are_shortened_in_visible_text(timeline):
    text = _visible_text(render_report(timeline))
    for full in (PARENT, CODE, MED, MERGED):
        assert full[:12] in text
        assert full not in text


def test_strings_are_escaped_and_page_is_self_contained(timeline):
    page = render_report(timeline)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)
    assert "<link" not in page and "@import" not in page and "@font-face" not in page


def test_compute_panel_shows_measured_and_table3(timeline):
    page = render_report(timeline)
    c = validate_timeline(timeline)["compute"]
    value, cell = paper_table3(c["coverage"], CHILD_P)
    assert (value, cell) == (2.2, "coverage 80%, p=0.30")  # last window: 166 of 200 on children
    assert c["paper_table3"] == 2.2 and c["paper_cell"] == cell
    assert f"{c['saving_flops']:.2f}\u00d7" in page and 'class="n hit"' in page


def test_the_cost_section_shows_equation_one_from_the_measured_breeds(timeline):
    text = _visible_text(render_report(timeline))
    assert "medical-adapter" in text and "1,800.0" in text  # C_finetune: the adapter's measured cost
    assert "C_train + K·p·C_finetune" in text and "~16 at p = 0.10" in text
    assert "5.00" in text  # K*, measured: 3000 / (1800 - 1200)
    del timeline["breed_costs"]
    assert "No breed costs were recorded" in render_report(timeline)


def test_parent_listed_among_models_is_the_reference_row(timeline):
    timeline["models"].insert(0, {"id": PARENT, "name": "pico-parent", "kind": "parent", "operator": "import",
                                  "domain": None, "state": "champion", "parents": [], "ratio": None,
                                  "fitness": _fitness(0.55, 12.3, 0.0, 3.1, PARENT_FLOPS, decision="baseline")})
    page = render_report(timeline)
    assert page.count('<g class="node"') == 4 and page.count('class="edge"') == 4
    assert '<div class="v">3</div>' in page  # models bred: the three children
    assert "12.3" in page and "baseline" in page  # the parent's measured fitness fills the reference row


def test_paper_table3_lookup():
    assert paper_table3(0.8, 0.30) == (2.2, "coverage 80%, p=0.30")
    assert paper_table3(0.9, 0.05) == (4.4, "coverage 90%, p=0.05")
    assert paper_table3(0.72, 0.12)[0] == 2.5  # nearest cell: 70%, p=0.10
    assert paper_table3(0.99, 0.5)[0] == 2.5  # clamps to the table's edge
    value, label = paper_table3(0.5, 0.30)
    assert value is None and "outside" in label
    assert PAPER_TABLE3[0.7][0.15] == 2.3
    assert analytic_speedup(0.8, 0.30) == pytest.approx(1 / 0.44)


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda t: t.pop("windows"), r"timeline\.windows: missing"),
    (lambda t: t["windows"][2]["flops"].update(served="lots"), r"timeline\.windows\[2\]\.flops\.served"),
    (lambda t: t.update(profile="medium"), r"timeline\.profile"),
    (lambda t: t["models"][1].update(parents="abc"), r"timeline\.models\[1\]\.parents"),
    (lambda t: t["events"][4].pop("type"), r"timeline\.events\[4\]\.type: missing"),
    (lambda t: t["compute"].update(coverage=None), r"timeline\.compute\.coverage"),
    (lambda t: t.update(windows=[]), r"at least one window"),
    (lambda t: t["parent"].update(weight_bytes=True), r"timeline\.parent\.weight_bytes"),
    (lambda t: t["breed_costs"]["terms"].append(["K*", "16"]), r"timeline\.breed_costs\.terms"),
    (lambda t: t["breed_costs"]["rows"][0].pop("cpu_seconds"), r"timeline\.breed_costs\.rows\[0\]\.cpu_seconds"),
])
def test_malformed_timeline_names_the_field(timeline, mutate, field):
    bad = copy.deepcopy(timeline)
    mutate(bad)
    with pytest.raises(ValueError, match=field):
        render_report(bad)


def test_write_report_is_atomic(timeline, tmp_path):
    path = write_report(timeline, tmp_path / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left behind


def test_report_renders_in_chromium(timeline, tmp_path):
    path = write_report(timeline, tmp_path / "report.html")
    dom = dump_dom(path)
    assert dom.count('class="node"') == 4 and 'aria-label="lineage graph"' in dom
    assert 'aria-label="routing share per window"' in dom and dom.count('class="bar"') > 20
    png = screenshot(path, tmp_path / "report.png", width=1280, height=2400)
    assert png_size(png) == (1280, 2400)
    assert not png_is_blank(png)
    artifacts = os.environ.get("BREEDLAB_TEST_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        shutil.copy(png, os.path.join(artifacts, "ecosystem_report.png"))
        shutil.copy(path, os.path.join(artifacts, "ecosystem_report.html"))


def test_blank_png_is_detected(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\xff\xff\xff" * 8 for _ in range(4))  # 8x4 white, filter none
    blank = tmp_path / "blank.png"
    blank.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 4, 8, 2, 0, 0, 0))
                      + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    assert png_size(blank) == (8, 4) and png_is_blank(blank)
