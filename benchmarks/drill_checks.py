"""What the crash drill (``crash_drill.py``) checks after every kill: ``registry verify`` finds no problem,
nothing a writer printed as committed is missing from the log (lost), nothing is in it twice (doubled),
and no niche has two champions.

The log is read once per check into a ``Ledger`` of sets, so a check costs one pass over the log and
the artifacts however many operations the drill has printed (thousands, over 1,000 kills).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SERVER_MOVES = ("shadow", "canary", "champion")


def committed_ops(out: str) -> set[int]:
    return {int(line.split()[2]) for line in out.splitlines() if line.startswith("committed ")}


DRILL_NAMES = ("register-", "steady", "transition-", "packet-", "gc-", "server-")
"""How the names of what the drill made begin (the demo's own names may repeat; the drill's must not)."""
_PACKET_PARENTS: dict[str, tuple[str, ...]] = {}
"""A packet's parents by its id, read once: a manifest never changes under its id (verify re-hashes it)."""


@dataclass
class Ledger:
    made: dict[str, str]
    """Artifact id of what the drill made, by name."""
    state: dict[str, str]
    ops: set[tuple[str, int]]
    """(niche, op) of every numbered state event."""
    promotions: set[tuple[str, str]]
    """(artifact, state) of every promotion."""
    packet_parents: set[str]
    problems: list[str]


def read_ledger(reg) -> Ledger:
    """One pass over the log (and each packet's manifest once): what is there, and what is there twice."""
    names, made, kind, state = Counter(), {}, {}, {}
    ops, promotions, niche_of = Counter(), Counter(), {}
    for event in reg.events():
        if event.type == "registered":
            kind[event.artifact] = event.data.get("kind")
            if event.data.get("name", "").startswith(DRILL_NAMES):
                names[event.data["name"]] += 1
                made[event.data["name"]] = event.artifact
        if "to" in event.data:
            state[event.artifact] = event.data["to"]
        if "op" in event.data and event.type != "registered":
            ops[event.data.get("niche") or event.artifact, event.data["op"]] += 1
        if event.type == "promoted":
            promotions[event.artifact, event.data.get("to")] += 1
        if event.data.get("to") == "champion":
            niche_of[event.artifact] = event.data.get("niche")
    problems = [f"{name} registered {n} times" for name, n in names.items() if n > 1]
    problems += [f"{key}: op {op} recorded {n} times" for (key, op), n in ops.items() if n > 1]
    problems += [f"{a[:12]} promoted to {to} {n} times" for (a, to), n in promotions.items() if n > 1]
    champions = Counter(niche for a, niche in niche_of.items() if state.get(a) == "champion" and kind.get(a) != "parent")
    problems += [f"niche {niche} has {n} champions" for niche, n in champions.items() if n > 1]
    for packet in (a for a, k in kind.items() if k == "packet" and a not in _PACKET_PARENTS):
        _PACKET_PARENTS[packet] = reg.load_manifest(packet).parents
    parents = {parent for packet, k in kind.items() if k == "packet" for parent in _PACKET_PARENTS[packet]}
    return Ledger(made, state, set(ops), set(promotions), parents, problems)


def in_log(ledger: Ledger, tag: str, number: int) -> bool:
    """Whether operation ``number`` that writer ``tag`` printed as committed is in the log."""
    phase = tag.split("-")[1] if tag.startswith("steady-") else tag.split("-")[0]
    if phase == "server":  # the candidate of op ``number`` was promoted to its target by the server
        child = ledger.made.get(f"{tag}-{number // len(SERVER_MOVES)}")
        return child is not None and (child, SERVER_MOVES[number % len(SERVER_MOVES)]) in ledger.promotions
    if phase in ("register", "steady"):
        return f"{tag}-{number}" in ledger.made
    if phase == "transition":
        return (f"drill-{tag}", number) in ledger.ops
    child = ledger.made.get(f"{tag}-{number}")
    if phase == "packet":
        return child is not None and child in ledger.packet_parents
    return child is not None and ledger.state.get(child) == "rejected"  # gc: rejected (and maybe collected)


def ledger_problems(reg, printed: dict[str, set[int]]) -> list[str]:
    """Operations lost (printed as committed, not in the log) or doubled (in it twice); two champions."""
    ledger = read_ledger(reg)
    lost = [f"{tag}: committed op {n} is missing from the log" for tag, numbers in printed.items()
            for n in sorted(numbers) if not in_log(ledger, tag, n)]
    return ledger.problems + lost


def checked(root: Path, printed: dict[str, set[int]]) -> list[str]:
    """Everything wrong with the record: verify's problems (under the writer lock, so the second writer
    is never caught between its event and its HEAD), then operations lost or doubled."""
    from breedlab.registry import Registry, verify

    reg = Registry.open(root)
    with reg.writing():
        found = [f"{f.subject}: {f.message}" for f in verify(root) if f.level == "problem"]
    return found + ledger_problems(reg, printed)
