"""The two kinds of task a population runs, each in a home of its own: breed one candidate, measure one model.

A task gets a spec of plain values (Ray ships it to any worker): the records it needs, the head's
objects folder (read by content hash, ``transfer.py``), the head's config files as text, and the folder
its own home lives in. That folder is ``<head home>/ray-work/<task key>``: on the shared path, so a
task whose worker died is retried into the same home and resumes from the checkpoints its first attempt
wrote there. A task returns what it registered (records and events); only the head registers them.

A breed's seed never holds a test split or a frozen suite (``breed_seed``): nothing a breed or a search
trial can read can leak the evidence that will judge it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from breedlab.cluster.board import Reporter, call
from breedlab.cluster.transfer import closure, new_since, records_of, register_records
from breedlab.home import Home
from breedlab.registry import Artifact, Registry
from breedlab.registry.atomic import atomic_write_bytes
from breedlab.typed_config import use_home_configs

EVIDENCE_KINDS = ("eval-suite", "packet")


@dataclass(frozen=True)
class TaskSpec:
    key: str
    """sha256 of what the task makes (the breed key, or model + suites): its home's folder name."""
    label: str
    records: list[dict[str, Any]]
    objects_dir: str
    work_root: str
    configs: dict[str, str] = field(default_factory=dict)
    """The head's ``configs/*.yaml`` overrides, by file name."""
    actor: str = "breeder"
    threads: int = 1


@dataclass(frozen=True)
class BreedSpec(TaskSpec):
    operator: str = "cmg"
    recipe: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    checkpoint_every: int = 25


@dataclass(frozen=True)
class MeasureSpec(TaskSpec):
    model: str = ""
    suites: dict[str, str] = field(default_factory=dict)
    canary: dict[str, str] | None = None
    engine: str = ""


def breed_seed(registry: Registry, source: Artifact, niche: str, general: str = "general") -> list[Artifact]:
    """What a breed of ``source`` for ``niche`` may read: the model, the niche's and the general
    training and validation data (the newest of each name, the one the head's own breed would find),
    and the model's profiles and teacher caches of them (reused, not recomputed). Never a test split,
    never an evaluation suite."""
    newest: dict[str, Artifact] = {}
    for artifact in registry.find(kind="dataset"):  # newest first
        name = artifact.manifest.name
        if name.split("/")[0] in (niche, general) and not _is_test(artifact) and not artifact.manifest.parents:
            newest.setdefault(name, artifact)
    ids = [a.id for a in newest.values()]
    derived = [a for kind in ("dataset", "profile") for a in registry.find(kind=kind)
               if a.manifest.parents == (source.id,) and a.manifest.data and set(a.manifest.data) <= set(ids)]
    seed = closure(registry, [source.id, *ids, *(a.id for a in reversed(derived))])
    leaked = [a.manifest.name for a in seed if _is_test(a) or a.manifest.kind in EVIDENCE_KINDS]
    if leaked:
        raise ValueError(f"a breed's seed would hold held-out evidence: {leaked}")
    return seed


def _is_test(artifact: Artifact) -> bool:
    return artifact.manifest.kind == "dataset" and artifact.manifest.name.split("/")[-1] == "test"


def worker_home(spec: TaskSpec) -> tuple[Home, Registry, set[str], int]:
    """The task's own home, seeded with its records (again, idempotently, on a retry), and the number of
    this attempt (counted in the home, which outlives a worker that died)."""
    root = Path(spec.work_root) / spec.key[:16]
    (root / "configs").mkdir(parents=True, exist_ok=True)
    attempts = root / "attempts"
    attempt = int(attempts.read_text() or 0) + 1 if attempts.is_file() else 1
    atomic_write_bytes(attempts, str(attempt).encode())
    for name, text in spec.configs.items():
        (root / "configs" / name).write_text(text)
    use_home_configs(root)  # the head's overrides, from the copy: the worker reads nothing of the head's home
    home = Home(root)
    registry = Registry.open(home.registry_dir, actor=spec.actor)
    seeded = register_records(registry, spec.records, spec.objects_dir, precheck=False)
    return home, registry, {a.id for a in seeded}, attempt


def shipment(registry: Registry, seeded: set[str], **extra: Any) -> dict[str, Any]:
    records, events = new_since(registry, seeded)
    return {"records": records, "events": events, "objects_dir": str(registry.objects.root), **extra}


def breed_task(spec: BreedSpec, board: Any = None, on_model_step=None) -> dict[str, Any]:
    """Breed one candidate in the task's home; return its shipment and the child's id. ``on_model_step``:
    a search trial's validation reports (``RunOptions.on_model_step``)."""
    reporter = Reporter(board, spec.key) if board is not None else None
    if reporter:
        reporter.begin(spec.label)
    with torch_threads(spec.threads):
        return _breed(spec, board, reporter, on_model_step)


def _breed(spec: BreedSpec, board: Any, reporter: Reporter | None, on_model_step) -> dict[str, Any]:
    from breedlab.cmg.recipe import RunOptions
    from breedlab.operators.table import build_recipe, get_operator

    started = time.perf_counter()
    home, registry, seeded, attempt = worker_home(spec)
    seeded_at = time.perf_counter()
    options = RunOptions(actor=spec.actor, threads=spec.threads, progress=reporter is not None,
                         display=reporter, checkpoint_every=spec.checkpoint_every, on_model_step=on_model_step)
    outcome = get_operator(spec.operator)(registry, home, spec.source, build_recipe(spec.operator, spec.recipe),
                                          options)
    if outcome.child is None:
        raise RuntimeError(f"{spec.label}: the breed stopped before it finished; run it again to resume")
    result = shipment(registry, seeded, child=outcome.child.id, attempt=attempt, home=str(home.root),
                      seconds=time.perf_counter() - started, seed_seconds=seeded_at - started,
                      tokens=outcome.result.run_tokens)
    if board is not None:
        call(board, "finish", spec.key, "finished")
    return result


def measure_task(spec: MeasureSpec, board: Any = None) -> dict[str, Any]:
    """The fitness vector of one model on the frozen suites (and its engine check), as the evaluator."""
    from rich.console import Console

    from breedlab.evaluation.measure import measure_candidate
    from breedlab.lab.steps import check_engines

    reporter = Reporter(board, spec.key) if board is not None else None
    if reporter:
        reporter.begin(spec.label)
    home, registry, seeded, attempt = worker_home(spec)
    if reporter:
        reporter.step("measuring on the frozen suites")
    # latency is timed on one thread for every model (LatencySettings' default), as the lab times it
    vector = measure_candidate(registry, spec.model, spec.suites, canary=spec.canary)
    if spec.engine:
        if reporter:
            reporter.step(f"engine check {spec.engine}")
        check_engines(registry, home, [registry.get(spec.model)], spec.suites, {spec.model: vector}, spec.engine,
                      Console(file=None, quiet=True))
    result = shipment(registry, seeded, fitness=vector.to_dict(), attempt=attempt, home=str(home.root))
    if board is not None:
        call(board, "finish", spec.key, "finished")
    return result


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch on ``threads`` threads for the block (an in-process task leaves the head's setting as it was)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def model_seed(registry: Registry, model_ids: list[str], suites: dict[str, str]) -> list[dict[str, Any]]:
    """A measurement's seed: the model, the frozen suites, and their ancestry (the test splits included)."""
    return records_of(closure(registry, [*model_ids, *suites.values()]))
