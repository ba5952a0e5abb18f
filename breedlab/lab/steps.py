"""The steps of ``breedlab lab``, each a short function over the registry (see ``lab.py`` for the order)."""

from __future__ import annotations

import math

from rich.console import Console

from breedlab.evaluation.suites import RETENTION_DOMAIN
from breedlab.registry import Artifact, Registry, RegistryError
from breedlab.registry.lineage import full_precision

STACKS = {"cmg-fp16", "cmg-int8"}
"""Candidates that quantize the CMG candidate rather than the champion."""
# What the lab changes in the paper's preset on a real parent: the lab recipe docs/RESULTS.md measured
# (a small rehearsal pool for its 5% share). compact's is `_lab_overrides`: from 65,536 tokens up it is
# exactly benchmarks/stage1.py's, so a lab after the benchmark reuses its child.
LAB_CMG_OVERRIDES = {"paper": {"rehearsal_pool_tokens": 8192, "warmup_steps": 4}}


def _pool(config) -> int:
    """Teacher-cached tokens per stream: the budget, at most 65,536 (the benchmark's pools)."""
    return min(config.distill_tokens, 65_536)


def _lab_overrides(config) -> dict:
    """A compact child's rehearsal pool is no larger than its domain pool: a small budget (the demo's)
    should not pay a 65,536-token general teacher cache to draw a quarter of it. From 65,536 training
    tokens up this is the preset's own pool, so the lab's child is still the benchmark's."""
    if config.cmg_preset == "compact":
        return {"rehearsal_pool_tokens": _pool(config)}
    return LAB_CMG_OVERRIDES.get(config.cmg_preset, {})


def say(console: Console, text: str) -> None:
    console.rule(f"[bold]{text}")


def champion_of(registry: Registry, niche: str) -> Artifact:
    """The niche's champion: a promoted child if one serves it, else the champion parent."""
    from breedlab.governance.niche import champion_parent, current_champion

    champion = current_champion(registry, niche) or champion_parent(registry, or_newest=False)
    if champion is None:
        raise RegistryError("no champion parent; run `breedlab parent import smollm2` (or `breedlab demo`)")
    return champion


def _examples_fields(registry: Registry, config) -> dict:
    """A niche with examples breeds on them for ``config.examples_share`` of its domain steps."""
    if not registry.find(kind="dataset", name=f"{config.niche}/examples/train"):
        return {}
    return {"examples_share": config.examples_share}


def fit_examples_epochs(registry: Registry, recipe, epochs: float):
    """``recipe`` with a token budget of at least ``epochs`` passes over the niche's training examples.

    The examples stream gets ``(1 - rehearsal_share) * examples_share`` of the steps
    (``cmg/schedule.py:stream_position``), so the steps are sized from that share; a recipe without
    examples, or whose budget already covers the passes, is returned as it is."""
    if not recipe.examples_share:
        return recipe
    from dataclasses import replace

    train = registry.find(kind="dataset", name=f"{recipe.domain}/examples/train")[0]
    examples = train.manifest.metrics.get("examples") or _count_lines(train)
    share = (1 - recipe.rehearsal_share) * recipe.examples_share
    steps = math.ceil(epochs * examples / recipe.batch_size / share)
    if steps <= recipe.total_steps:
        return recipe
    return replace(recipe, tokens=steps * recipe.batch_size * recipe.seq_len)


def _count_lines(dataset: Artifact) -> int:
    from breedlab.data.example_shards import iter_examples

    return sum(1 for _ in iter_examples(dataset.path))


def build_suites(registry: Registry, champion: Artifact, config) -> dict[str, str]:
    """Frozen lm, utility and retention suites from the held-out test splits (reused when identical).

    Utility is the cloze suite, or for a niche with examples (``<niche>/examples/test``) the task suite:
    held-out examples whose generated answers are scored by the niche's task metric."""
    from transformers import AutoTokenizer

    from breedlab.evaluation.suites import build_suite

    tokenizer = AutoTokenizer.from_pretrained(champion.path)
    has_examples = bool(registry.find(kind="dataset", name=f"{config.niche}/examples/test"))
    utility = ("task", config.task_cases) if has_examples else ("cloze", config.cloze_cases)
    sizes = {"lm": (config.niche, config.lm_cases), utility[0]: (config.niche, utility[1]),
             "retention": (RETENTION_DOMAIN, config.retention_cases)}
    tokens = {"lm": lm_passage_tokens(registry, config.niche, tokenizer, config.passage_tokens, config.lm_cases)}
    return {kind: build_suite(registry, kind, domain, tokenizer=tokenizer, cases=cases, seed=config.seed,
                              tokens=tokens.get(kind, config.passage_tokens), max_new_tokens=config.max_new_tokens).id
            for kind, (domain, cases) in sizes.items()}


def lm_passage_tokens(registry: Registry, niche: str, tokenizer, wanted: int, cases: int, floor: int = 16) -> int:
    """``wanted``, halved (not below ``floor``) until the niche's held-out documents hold at least
    min(cases, 8) whole passages: a niche of short examples (an HPO question with its answer) has no
    128-token document, and its lm suite is still worth reading at 32. Built-in corpora keep ``wanted``."""
    from breedlab.data.read import iter_documents

    found = registry.find(kind="dataset", name=f"{niche}/test")
    if not found:
        return wanted
    lengths = [len(tokenizer(d["text"], add_special_tokens=False)["input_ids"]) for d in iter_documents(found[0].path)]
    tokens = wanted
    while tokens > floor and sum(n // tokens for n in lengths) < min(cases, 8):
        tokens //= 2
    return tokens


def breed_candidates(registry: Registry, home, champion: Artifact, config, breeder: str,
                     console: Console, display=None) -> list[Artifact]:
    """The configured candidates of the champion (by default adapter fine-tune, CMG specialist, the
    specialist in int8 and the champion in int8), bred as the breeding identity."""
    from breedlab.cmg.recipe import RunOptions
    from breedlab.operators.table import get_operator

    # the bars go to the caller's display (the demo's), else to stderr: live on a terminal, plain lines
    # with tokens/s and ETA anywhere else (a nohup log), never minutes of silence
    options = RunOptions(actor=breeder, progress=True, display=display)
    recipes = lab_recipes(registry, config)
    unknown = set(config.candidates) - set(recipes)
    if unknown:
        raise ValueError(f"the lab has no recipe for {sorted(unknown)}; known: {sorted(recipes)}")
    for stack in STACKS & set(config.candidates):
        if "cmg" not in config.candidates[:config.candidates.index(stack)]:
            raise ValueError(f"candidate {stack!r} quantizes the CMG candidate: list 'cmg' before it")
    made, by_name = [], {}
    # a champion served quantized is bred from its full-precision source (nothing trains int8 or fp16
    # weights); the candidates are still judged against the champion as served
    seed = full_precision(registry, champion)
    for name in config.candidates:
        # cmg-fp16 and cmg-int8 stack on the CMG child (its lineage shows both steps); every other one
        # breeds the champion
        source, operator = (by_name["cmg"], "quantize") if name in STACKS else (seed.id, name)
        console.print(f"  {name} ...")
        if display is not None:
            display.step(f"breeding {name} ({len(made) + 1}/{len(config.candidates)})")
        outcome = get_operator(operator)(registry, home, source, recipes[name], options)
        console.print(f"  {name}: {outcome.child.manifest.kind} {outcome.child.manifest.name} {outcome.child.id[:12]}")
        by_name[name] = outcome.child.id
        made.append(outcome.child)
    return made


def lab_recipes(registry: Registry, config) -> dict:
    """The recipe of every candidate the lab knows (``LabConfig.candidates`` picks from them)."""
    from breedlab.cmg.recipe import preset_recipe
    from breedlab.operators.adapter_finetune import AdapterFinetuneRecipe
    from breedlab.operators.quantize import QuantizeRecipe

    small = dict(batch_size=4, seq_len=64, warmup_steps=2, lora_rank=8, lora_alpha=16) if config.pico else {}
    cmg_small = {**small, "profile_tokens": 1024, "proxy_tokens": 512, "rehearsal_pool_tokens": 8192}
    examples = _examples_fields(registry, config)
    finetune = fit_examples_epochs(registry, AdapterFinetuneRecipe(
        domain=config.niche, tokens=config.finetune_tokens, pool_tokens=config.finetune_tokens,
        rehearsal_pool_tokens=8192, seed=config.seed, **small, **examples), config.examples_epochs)
    distill = fit_examples_epochs(registry, preset_recipe(
        config.cmg_preset, config.niche, ratio=config.ratio, tokens=config.distill_tokens, pool_tokens=_pool(config),
        seed=config.seed, **(cmg_small if config.pico else _lab_overrides(config)), **examples), config.examples_epochs)
    return {"adapter-finetune": finetune, "cmg": distill, "cmg-int8": QuantizeRecipe(scheme="symmetric"),
            "cmg-fp16": QuantizeRecipe(scheme="fp16"), "quantize": QuantizeRecipe()}


def measure_all(registry: Registry, champion: Artifact, candidates: list[Artifact], suites: dict[str, str],
                console: Console, display=None) -> dict:
    """Fitness vectors of the champion then each candidate, same suites, same machine, one run."""
    from breedlab.evaluation.measure import measure_candidate

    canary = canary_of(registry, champion)
    if display is not None:
        display.step(f"measuring the champion {champion.manifest.name}")
    fitness = {champion.id: measure_candidate(registry, champion.id, suites, canary=canary)}
    parent_ppl = fitness[champion.id].general_ppl
    fitness[champion.id].general_regression = 0.0  # the champion is its own baseline
    fitness[champion.id].general_ppl_ratio = 1.0
    for number, candidate in enumerate(candidates, 1):
        console.print(f"  measuring {candidate.manifest.name} ...")
        if display is not None:
            display.step(f"measuring {candidate.manifest.name} ({number}/{len(candidates)})")
        fitness[candidate.id] = measure_candidate(registry, candidate.id, suites, canary=canary,
                                                  parent_general_ppl=parent_ppl)
    for artifact in (champion, *candidates):
        fitness[artifact.id].operator = artifact.manifest.operator
    return fitness


def check_engines(registry: Registry, home, models: list[Artifact], suites: dict[str, str], fitness: dict,
                  engine: str, console: Console) -> None:
    """Check every measured model on the fast ``engine`` against hf (on the niche's lm suite) and put its
    decode speed and NLL difference beside the hf numbers of its fitness vector."""
    from breedlab.engines import EngineUnavailable
    from breedlab.evaluation.engine_check import CheckSettings, run_check

    backend, _, quantization = engine.partition("/")
    for model in models:
        vector = fitness[model.id]
        settings = CheckSettings(threads=vector.latency_threads or 1)  # the threads hf's latency was timed on
        try:
            check = run_check(registry, home.cache_dir, model.id, backend, quantization, suites.get("lm"), settings)
        except EngineUnavailable as error:
            vector.unmeasured["engine"] = str(error)
            continue
        metrics = check.manifest.metrics
        vector.engine, vector.engine_check, vector.engine_passed = engine, check.id, bool(metrics["passed"])
        vector.engine_token_ms = 1000.0 / max(metrics["decode_tok_s"], 1e-9)
        vector.engine_hf_token_ms = 1000.0 / max(metrics["hf_decode_tok_s"], 1e-9)
        vector.engine_nll_delta = metrics["nll_delta"]
        console.print(f"  {model.manifest.name} on {engine}: {vector.engine_token_ms:.1f} ms/token against hf "
                      f"{vector.engine_hf_token_ms:.1f}, NLL {metrics['nll_delta']:+.4f} "
                      f"({'may serve' if metrics['passed'] else 'refused: ' + metrics['reason']})", highlight=False)


def canary_of(registry: Registry, champion: Artifact) -> dict[str, str] | None:
    """The privacy canary planted in the training data (from the train split's recipe), if any."""
    for data in registry.find(kind="dataset"):
        canary = data.manifest.recipe.get("canary") if data.manifest.name.endswith("/train") else None
        if canary and canary.get("secret"):
            return {"prefix": canary["prefix"], "secret": canary["secret"]}
    return None
