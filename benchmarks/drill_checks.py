"""What the crash drill (``crash_drill.py``) checks after every kill: ``registry verify`` finds no problem,
nothing a writer printed as committed is missing from the log (lost), nothing is in it twice (doubled),
and no niche has two champions."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path


def committed_ops(out: str) -> set[int]:
    return {int(line.split()[2]) for line in out.splitlines() if line.startswith("committed ")}


def ledger_problems(reg, printed: dict[str, set[int]]) -> list[str]:
    """Operations lost (printed as committed, not in the log) or doubled (in it twice)."""
    names = Counter(a.manifest.name for a in reg.find()  # what the drill made (the demo's own names may repeat)
                    if a.manifest.operator == "drill" or "drill" in a.manifest.recipe)
    found = [f"{name} registered {n} times" for name, n in names.items() if n > 1]
    ops = defaultdict(Counter)
    for event in reg.events():
        if "op" in event.data and event.type != "registered":
            ops[event.data.get("niche") or event.artifact][event.data["op"]] += 1
    found += [f"{key}: op {op} recorded {n} times" for key, counter in ops.items() for op, n in counter.items() if n > 1]
    found += promotion_problems(reg)
    for tag, numbers in printed.items():
        found += [f"{tag}: committed op {n} is missing from the log" for n in sorted(numbers) if not _in_log(reg, tag, n)]
    return found


def promotion_problems(reg) -> list[str]:
    """A model promoted to the same state twice (a doubled promotion), or a niche with two champions."""
    promotions, niche_of = Counter(), {}
    for event in reg.events():
        if event.type == "promoted":
            promotions[event.artifact, event.data.get("to")] += 1
        if event.data.get("to") == "champion":
            niche_of[event.artifact] = event.data.get("niche")
    found = [f"{a[:12]} promoted to {to} {n} times" for (a, to), n in promotions.items() if n > 1]
    champions = Counter(niche_of[a.id] for a in reg.find(state="champion")
                        if a.manifest.kind != "parent" and a.id in niche_of)
    return found + [f"niche {niche} has {n} champions" for niche, n in champions.items() if n > 1]


def _in_log(reg, tag: str, number: int) -> bool:
    phase = tag.split("-")[1] if tag.startswith("steady-") else tag.split("-")[0]
    if phase == "server":  # the candidate of op ``number`` was promoted to its target by the server
        child = reg.find(kind="child", name=f"{tag}-{number // 3}")
        target = ("shadow", "canary", "champion")[number % 3]
        return bool(child) and any(e.type == "promoted" and e.data.get("to") == target for e in reg.events(child[0].id))
    if phase in ("register", "steady"):
        return bool(reg.find(kind="dataset", name=f"{tag}-{number}"))
    if phase == "transition":
        return any(e.data.get("op") == number for e in reg.events() if e.data.get("niche") == f"drill-{tag}")
    if phase == "packet":
        child = reg.find(kind="child", name=f"{tag}-{number}")
        return bool(child) and any(child[0].id in p.manifest.parents for p in reg.find(kind="packet"))
    child = reg.find(kind="child", name=f"{tag}-{number}")  # gc: the model was rejected (and maybe collected)
    return bool(child) and child[0].state == "rejected"


def checked(root: Path, printed: dict[str, set[int]]) -> list[str]:
    """Everything wrong with the record: verify's problems (under the writer lock, so the second writer
    is never caught between its event and its HEAD), then operations lost or doubled."""
    from breedlab.registry import Registry, verify

    reg = Registry.open(root)
    with reg.writing():
        found = [f"{f.subject}: {f.message}" for f in verify(root) if f.level == "problem"]
    return found + ledger_problems(reg, printed)
