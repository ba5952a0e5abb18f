"""One writer of the crash drill (``crash_drill.py``): repeats one kind of registry write until killed.

    python benchmarks/drill_worker.py PHASE HOME TAG [COUNT]

Every operation is numbered and deterministic (the same number makes the same bytes), carries its
number in its event (``data["op"]``) where the operation writes one, skips what an earlier, killed run
already committed, and prints ``committed TAG N`` only after its commit returned: so the drill can
check that nothing printed is missing from the log (lost) and no number is in it twice (doubled).
Private keys come from ``$BREEDLAB_KEYS`` (the drill's home is signed).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from breedlab.registry import Registry

ACTORS = {"register": "breeder", "transition": "approver", "packet": "evaluator", "gc": "lifecycle",
          "breed": "breeder", "server": "breeder"}


def committed(tag: str, number: int) -> None:
    print(f"committed {tag} {number}", flush=True)
    time.sleep(STEADY_PACE_S if tag.startswith("steady") else PACE_S)


def weights_file(folder: Path, name: str, size: int) -> Path:
    """A valid one-tensor safetensors file of ``size`` bytes derived from ``name``."""
    import json

    payload = random.Random(name).randbytes(size)
    header = json.dumps({"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}).encode()
    path = folder / f"{name}.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + payload)
    return path


def model(reg: Registry, scratch: Path, tag: str, number: int):
    name = f"{tag}-{number}"
    found = reg.find(kind="child", name=name)
    if found:
        return found[0]
    return reg.register("child", name, {"model.safetensors": weights_file(scratch, name, 16 * 1024)},
                        operator="drill", recipe={"tag": tag, "op": number}, actor="breeder")


STEADY_PACE_S = 2.0
"""The steady writers (tags ``steady``, ``steady-server``) write one operation every 2 seconds: writing
all along, not filling the home over a long drill (every kill's verify re-reads all of it)."""
PACE_S = 0.05
"""A killed writer rests this long between operations, so a kill lands at a random moment among a few
operations rather than after hundreds: the home (and each kill's verify) stays small enough for 1,000."""


def register_loop(reg: Registry, scratch: Path, tag: str, count: int) -> None:
    steady = tag.startswith("steady")
    for number in range(count):
        name = f"{tag}-{number}"
        if not reg.find(kind="dataset", name=name):
            files = {f"shard-{p}.jsonl": _shard(scratch, f"{name}-{p}", 4096 if steady else 32 * 1024)
                     for p in range(3)}
            reg.register("dataset", name, files, operator="drill", recipe={"tag": tag, "op": number},
                         actor="breeder")
        committed(tag, number)


def _shard(scratch: Path, name: str, size: int) -> Path:
    path = scratch / f"{name}.jsonl"
    path.write_bytes(random.Random(name).randbytes(size))
    return path


def transition_loop(reg: Registry, scratch: Path, tag: str, count: int) -> None:
    """Each model goes candidate -> shadow -> canary -> champion -> retired: four events, each numbered."""
    moves = (("shadow", "promoted"), ("canary", "promoted"), ("champion", "promoted"), ("retired", "retired"))
    for number in range(count):
        child = model(reg, scratch, tag, number // len(moves))
        to, event_type = moves[number % len(moves)]
        done = {e.data.get("op") for e in reg.events(child.id)}
        if number not in done:
            reg.transition(child.id, to, event_type=event_type, actor="approver", reason="drill",
                           data={"niche": f"drill-{tag}", "op": number})
        committed(tag, number)


def packet_loop(reg: Registry, scratch: Path, tag: str, count: int) -> None:
    from breedlab.evaluation.decision import Decision
    from breedlab.evaluation.fitness import FitnessVector
    from breedlab.evaluation.gates import GateResult
    from breedlab.evaluation.packets import write_evidence_packet

    parent = model(reg, scratch, f"{tag}-champion", 0)
    for number in range(count):
        child = model(reg, scratch, tag, number)
        if not reg.children(child.id, kind="packet"):
            write_evidence_packet(reg, FitnessVector(candidate=parent.id, utility=0.5),
                                  FitnessVector(candidate=child.id, utility=0.5 + number / 1e6),
                                  [GateResult("drill", True, 1, 1, "drill")], Decision("no-op", [f"op {number}"]),
                                  niche=f"drill-{tag}")
        committed(tag, number)


def gc_loop(reg: Registry, scratch: Path, tag: str, count: int) -> None:
    """Models crowned and retired in turn; a gc keeping one after every retirement."""
    from breedlab.governance.archive import collect

    for number in range(count):
        child = model(reg, scratch, tag, number)
        if child.state == "candidate":
            reg.transition(child.id, "rejected", event_type="rejected", actor="approver", reason="drill",
                           data={"op": number})
        collect(reg, keep_retired=1, actor="lifecycle")
        committed(tag, number)


def breed_loop(reg: Registry, scratch: Path, tag: str, count: int) -> None:
    """One pico adapter breed of ``count`` steps, checkpointed every step; prints the id it registers."""
    from breedlab.cmg.recipe import RunOptions
    from breedlab.home import Home
    from breedlab.operators.adapter_finetune import AdapterFinetuneRecipe, adapter_finetune

    home = Home.resolve(reg.root.parent)
    recipe = AdapterFinetuneRecipe(domain="code", steps=count, batch_size=2, seq_len=32, warmup_steps=1,
                                   lora_rank=4, lora_alpha=8, pool_tokens=1024, rehearsal_pool_tokens=256)
    parent = reg.find(kind="parent")[0]
    outcome = adapter_finetune(reg, home, parent.id, recipe,
                               RunOptions(progress=False, threads=1, checkpoint_every=1, actor="breeder"))
    print(f"bred {outcome.child.id}", flush=True)


SERVER_MOVES = ("shadow", "canary", "champion")
STATE_ORDER = {"candidate": 0, "shadow": 1, "canary": 2, "champion": 3, "retired": 4}


def server_loop(reg: Registry, scratch: Path, tag: str, count: int) -> None:
    """Promotions through a running server (``$DRILL_SERVER``, an approver token in ``$DRILL_TOKEN``):
    candidate after candidate to shadow, canary and champion of niche ``drill-<tag>``, each crowning
    retiring the champion before it. Candidates and their packets are written here (breeder, evaluator),
    so this is a CLI writer too; the server writes every promotion."""
    import os

    import httpx

    source = demo_source(reg)
    headers = {"Authorization": f"Bearer {os.environ['DRILL_TOKEN']}"}
    with httpx.Client(base_url=os.environ["DRILL_SERVER"], timeout=60, headers=headers) as http:
        for number in range(count):
            candidate = server_candidate(Registry.open(reg.root, actor="breeder"), source, tag,
                                         number // len(SERVER_MOVES))
            target = SERVER_MOVES[number % len(SERVER_MOVES)]
            state = Registry.open(reg.root).get(candidate.id).state  # opened afresh: the server wrote since
            if STATE_ORDER[state] < STATE_ORDER[target]:
                answer = http.post("/admin/promote", json={"candidate": candidate.id, "to": target,
                                                           "niche": f"drill-{tag}", "reason": f"drill op {number}"})
                if answer.status_code != 200:
                    sys.exit(f"op {number} refused: {answer.status_code} {answer.text}")
            committed(tag, number)


def demo_source(reg: Registry) -> tuple:
    """(one of the demo's children with its evidence packet's body): what every candidate copies. The
    champion when there is one; never a child whose weights a gc collected."""
    from breedlab.evaluation.packets import load_packet

    packets = {p.manifest.recipe.get("candidate"): p for p in reg.find(kind="packet")}
    source = min((c for c in reg.find(kind="child") if c.id in packets and not reg.collected(c.id)
                  and c.manifest.operator != "drill" and "drill" not in c.manifest.recipe),
                 key=lambda c: (c.state != "champion", c.id))
    return source, load_packet(reg, packets[source.id].id)


def server_candidate(reg: Registry, source: tuple, tag: str, number: int):
    """A copy of the demo child under a new name, with a passing packet the evaluator signs."""
    from breedlab.evaluation.decision import Decision
    from breedlab.evaluation.fitness import FitnessVector
    from breedlab.evaluation.gates import GateResult
    from breedlab.evaluation.packets import write_evidence_packet

    (model, body), name = source, f"{tag}-{number}"
    found = reg.find(kind="child", name=name)
    child = found[0] if found else reg.register(
        "child", name, {n: model.path / n for n in model.manifest.files if n != "README.md"}, operator="cmg",
        recipe={**model.manifest.recipe, "drill": name}, parents=model.manifest.parents, actor="breeder")
    if not reg.children(child.id, kind="packet"):
        suites = body["suites"]["candidate"]
        write_evidence_packet(reg, FitnessVector(candidate=body["champion"], suites=suites, utility=0.5),
                              FitnessVector(candidate=child.id, suites=suites, utility=0.7),
                              [GateResult("drill", True, 0.1, 2.0, "drill")], Decision("promote", [name]),
                              niche=f"drill-{tag}")
    return child


LOOPS = {"server": server_loop, "register": register_loop, "breed": breed_loop, "transition": transition_loop, "packet": packet_loop, "gc": gc_loop}


def main(phase: str, home: str, tag: str, count: int) -> None:
    reg = Registry.open(Path(home), actor=ACTORS[phase])  # what it registers without naming an actor
    scratch = Path(tempfile.mkdtemp(prefix=f"drill-{tag}-"))
    LOOPS[phase](reg, scratch, tag, count)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1_000_000)
