"""Do two demo runs tell the same story? Compare their registries and timelines, ignoring what must differ.

    python benchmarks/compare_demo_runs.py RUN_A RUN_B

RUN_A and RUN_B are demo run folders (``<home>/demo/quick/latest``). Printed, with a line per
difference: the artifacts (kind, name, id) outside packets; the event sequence (type, artifact, actor);
the models that served each window and how many queries each served; and the timeline's events with
ids shortened. Packet ids are left out: a packet records when it was written (``created_utc``), so
two runs never share them. Exit status 1 when anything else differs. Used for issue 13's re-layout:
the same child, dataset and router-policy ids before and after the move, the merge reviews the only
new events.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from pathlib import Path

ID = re.compile(r"[0-9a-f]{12,64}")


def story(run: Path) -> dict[str, list[str]]:
    registry = run / "registry"
    kinds = {}
    artifacts = []
    for manifest in sorted((registry / "manifests").glob("*.json")):
        body = json.loads(manifest.read_text())
        kinds[manifest.stem] = body["kind"]
        if body["kind"] != "packet":
            artifacts.append(f"{body['kind']} {body['name']} {manifest.stem[:16]}")
    events = []
    for line in (registry / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if kinds.get(event["artifact"]) != "packet":
            events.append(f"{event['type']} {event['artifact'][:16]} {event['actor']}")
    timeline = json.loads((run / "timeline.json").read_text())
    served = [f"window {w['index']}: {sorted(w['served'].items())}" for w in timeline["windows"]]
    told = [f"window {e['window']}: {e['type']} {e['artifact'][:12]} by {e['actor']}: {ID.sub('<id>', e['reason'])}"
            for e in timeline["events"]]
    return {"artifacts": sorted(artifacts), "events": events, "served": served, "timeline events": told}


def main(a: str, b: str) -> int:
    first, second = story(Path(a)), story(Path(b))
    differ = False
    for part in first:
        lines = list(difflib.unified_diff(first[part], second[part], lineterm="", n=0))[2:]
        print(f"{part}: {'the same' if not lines else f'{len(lines)} line(s) differ'}")
        for line in lines:
            print("   ", line[:200])
        differ |= bool(lines)
    return int(differ)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
