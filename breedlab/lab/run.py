"""``breedlab lab --niche N``: the local breeding lab of seed 001, top to bottom.

    champion   <- REGISTER(parent_model, lifecycle: "champion")
    eval_cases <- BUILD_LOCAL_EVAL_CASES(examples)                 frozen suites from held-out test splits
    candidates <- ADAPTER_FINE_TUNE, DISTILL_SPECIALIST, QUANTIZE_FOR_DEVICE
    FOR candidate: metrics <- RUN_LOCAL_FITNESS_VECTOR(candidate)  each in its own guarded process
    selected   <- SELECT_POPULATION(champion, useful_specialist, diverse_challenger, no_op)
    packet     <- WRITE_RELEASE_PACKET(selected, rollback: champion.id)

The lab acts as the breeding side: it never promotes. It ends by printing the
command an approver would run. (ROUTER_POLICY_VARIANT arrives with the
ecosystem's router; the release packet says so.)
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from rich.console import Console

from breedlab.home import Home
from breedlab.registry import Artifact, Registry

SUITE_KINDS = ("lm", "cloze", "retention")
CANDIDATES = ("adapter-finetune", "cmg", "cmg-fp16", "cmg-int8", "quantize")
"""Every candidate the lab knows how to breed (``lab/steps.py:breed_candidates`` holds their recipes)."""


@dataclass(frozen=True)
class LabConfig:
    """What the lab breeds and how big its evaluation is (all of it lands in the packets)."""

    niche: str
    ratio: float = 0.8
    """p of the distilled specialist (non-embedding parameters)."""
    cmg_preset: str = "compact"
    """The CMG candidate's named recipe (``cmg/recipe.py`` PRESETS): compact (width-first pruning,
    full training, T = 1, hidden-state loss) or paper (Genesis V1 as written)."""
    distill_tokens: int = 98_304
    """Training tokens of the distilled specialist (the CMG)."""
    finetune_tokens: int = 16_384
    """Training tokens of the adapter fine-tune (the full-size parent trains ~3x slower per token)."""
    lm_cases: int = 32
    cloze_cases: int = 120
    """Cloze cases (one per held-out document). 120, not 60, so the non-inferiority test has power: with
    60 binary cases one net loss already puts the one-sided 95% bound of the utility difference near
    -0.05, below the -0.03 margin, so no child that is not better on every case could pass it."""
    retention_cases: int = 64
    """General passages the relative general-PPL gate is read on. 64 x 128 = 8,192 tokens, not 24: on
    24 passages the same medical child read 1.209x where the benchmark's 16,384 tokens read 1.18x, so
    a gate at 1.20x was deciding on sampling noise. Chosen (2026-12-02) before the re-run it affects."""
    passage_tokens: int = 128
    task_cases: int = 60
    """Held-out examples an examples niche's task suite generates answers for (all of them, if fewer)."""
    max_new_tokens: int = 48
    """The longest generated answer a task suite scores."""
    examples_share: float = 0.75
    """A niche with examples: the share of each candidate's domain steps trained on them (the rest on
    its documents, which keep the domain's language; rehearsal on general text stays)."""
    engine: str = "llamacpp/q8_0"
    """The fast engine (``backend/quantization``) every measured model is checked on against hf: its
    latency per token joins the fitness vector beside hf's, and a passing check lets the server serve
    the model there. Empty: no engine check."""
    examples_epochs: float = 2.0
    """A niche with examples: each candidate trains at least this many passes over its training
    examples (its token budget grows to fit). Examples, not tokens, are what a task niche is short of:
    the loss falls on the few output tokens of each, so a token budget made for documents is a small
    fraction of one pass (16,384 tokens were 48 of 418 licence paragraphs: task score 0.117)."""
    seed: int = 0
    pico: bool = False
    """Small recipes for pico parents (tests, quick demos)."""
    candidates: tuple[str, ...] = ("adapter-finetune", "cmg", "cmg-fp16", "quantize")
    """Operators that breed the candidates, in this order (the ecosystem's spawn may use fewer);
    ``cmg-fp16`` (``cmg-int8``) is the CMG candidate stacked with fp16 (int8) weight-only quantization
    (it needs ``cmg`` before it); ``quantize`` is the champion in fp16, the cheapest rival a child has."""

    def __post_init__(self) -> None:
        unknown = [name for name in self.candidates if name not in CANDIDATES]
        if unknown or not self.candidates:
            raise ValueError(f"unknown lab candidates {unknown}; known: {', '.join(CANDIDATES)}")


HOME_LAB_FILE = "lab.yaml"
"""A home's own lab settings (``LabConfig`` fields but the niche); ``breedlab demo`` writes its profile's."""


def home_lab_config(home_root, niche: str) -> LabConfig:
    """``LabConfig`` for ``niche`` with the overrides in ``<home>/lab.yaml``, when the home has one.

    A demo run folder holds its profile's lab settings there (a pico parent needs the pico recipes),
    so a spawn the server runs in it breeds exactly as the demo's own spawns did."""
    from pathlib import Path

    from breedlab.typed_config import from_mapping, read_yaml

    path = Path(home_root) / HOME_LAB_FILE
    if not path.is_file():
        return LabConfig(niche=niche)
    return from_mapping(LabConfig, read_yaml(path) or {}, str(path), keys="LabConfig fields", fixed={"niche": niche})


@dataclass
class LabResult:
    champion: Artifact
    suites: dict[str, str]
    candidates: list[Artifact]
    fitness: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    """Candidate id -> evidence packet id."""
    release: Artifact | None = None
    selection: Any = None


def run_lab(registry: Registry, home: Home, config: LabConfig, console: Console | None = None,
            display: Any = None) -> LabResult:
    """Breed and judge the niche's candidates. ``console`` gets the whole story; ``display`` (a
    ``cmg.progress.SharedDisplay``, the demo's) gets the current step and the live breed bars."""
    from breedlab.evaluation.gates import load_evaluation_config
    from breedlab.governance.config import load_governance
    from breedlab.lab.steps import breed_candidates, build_suites, champion_of, check_engines, measure_all
    from breedlab.lab.steps import say as say_to
    from breedlab.lab.verdict import judge, select_and_release

    console = console or Console()

    def say(text: str) -> None:
        say_to(console, text)
        if display is not None:
            display.step(text)

    governance, evaluation = load_governance(home.root), load_evaluation_config()
    say("1/6 champion")
    champion = champion_of(registry, config.niche)
    say("2/6 frozen evaluation suites")
    with acting_as(registry, governance.evaluator):  # suites and packets are the evaluator's
        suites = build_suites(registry, champion, config)
    say(f"3/6 candidates: {', '.join(config.candidates)}")
    with acting_as(registry, governance.breeder):  # so is everything a breed registers (teachers, profiles)
        candidates = breed_candidates(registry, home, champion, config, governance.breeder, console, display)
    say("4/6 fitness vectors (each model in its own guarded process)")
    fitness = measure_all(registry, champion, candidates, suites, console, display)
    if config.engine:
        with acting_as(registry, governance.evaluator):  # an engine check is evidence, like a packet
            check_engines(registry, home, [champion, *candidates], suites, fitness, config.engine, console)
    else:
        for vector in fitness.values():
            vector.unmeasured["engine"] = "no engine check: this lab's engine setting is empty"
    say("5/6 gates, champion-challenger tests, evidence packets")
    result = LabResult(champion, suites, candidates, fitness)
    with acting_as(registry, governance.evaluator):
        budgets = judge(registry, result, config, evaluation, governance, console)
        say("6/6 population and release packet")
        select_and_release(registry, result, config, evaluation, budgets, console, governance.evaluator)
    return result


@contextmanager
def acting_as(registry: Registry, identity: str) -> Iterator[None]:
    """Registrations that name no actor are ``identity``'s for the block (in a signed home: signed by it)."""
    previous, registry.actor = registry.actor, identity
    try:
        yield
    finally:
        registry.actor = previous
