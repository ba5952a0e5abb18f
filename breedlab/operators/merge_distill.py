"""The ``merge-distill`` operator: specialists that cannot be weight-merged, distilled into one child.

When two specialists differ in shape (CMG children with different layer
selections, a CMG child and an adapter) their weights cannot be averaged, but
what they compute can be: one new student, built from the shared base exactly
as the CMG builds one (``cmg/student.py``, at ``ratio``), is trained with the
CMG's own loop (``cmg/train.py:train_child``) and loss

    L = a_ce * CE + a_kd * T^2 * KL(softmax(teacher/T) || softmax(student/T))  (+ l_r * rehearsal)

where the teacher of each block is the specialist of that block's domain. The
domain stream is every specialist's ``<domain>/train`` pool side by side
(``cmg/multi_teacher.py:MixedPools``, equal tokens per domain, so equal
shares); the rehearsal stream is general text taught by the base, as in a CMG
breed. Teachers: ``live`` (each specialist runs on its own rows, full
vocabulary, exact) or ``topk`` (a cache per (specialist, dataset), registered
and reused). The ``hidden`` format is refused: it recomputes logits with the
base's LM head, which is the specialist's only if nothing trained the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breedlab.cmg.child_files import child_metrics, write_child
from breedlab.cmg.inputs import dataset, ensure_teacher, load_frozen
from breedlab.cmg.lora import prepare_trainable
from breedlab.cmg.recipe import CMGRecipe, RunOptions, TrainingFields
from breedlab.cmg.train import TrainResult, train_child
from breedlab.home import Home
from breedlab.operators.merge import IncompatibleMerge
from breedlab.operators.merge_checks import ancestors, model_domains, tokenizer_digest
from breedlab.operators.skeleton import BreedOutcome, Job, Made, library_versions, run_job
from breedlab.operators.table import operator
from breedlab.registry import Artifact, Registry
from breedlab.registry.canonical import sha256_json

OPERATOR = "merge-distill"
TEACHERS = ("live", "topk")
LOSS_FORMULA = ("a_ce*CE + a_kd*T^2*KL(softmax(specialist_of_domain/T) || softmax(child/T))"
                " + l_r*L_rehearsal(teacher: base)")
STRATEGIES = ("uniform", "random", "scratch")  # profiled needs one domain's profile; a merge has several


@dataclass(frozen=True, kw_only=True)
class MergeDistillRecipe(TrainingFields):
    """What determines the distilled child; every field but ``models`` means what it means in ``CMGRecipe``."""

    models: tuple[str, ...]
    """The specialists (artifact ids or unique prefixes), each the teacher of its own domain(s)."""
    ratio: float = 0.5
    """p of the new student against the base."""
    strategy: str = "uniform"
    count_embeddings: bool = False
    trainable: str = "lora"
    teacher: str = "live"
    """live | topk (see the module docstring)."""
    teacher_topk: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        if len(self.models) < 2:
            raise ValueError("a merge needs at least two models")
        if self.teacher not in TEACHERS:
            raise ValueError(f"teacher must be one of {TEACHERS}, got {self.teacher!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.examples_share is not None:
            raise ValueError("a merge-distill learns from its specialists on documents; it takes no examples")
        self.to_cmg("check")  # the CMG recipe checks the rest

    def to_cmg(self, domain: str) -> CMGRecipe:
        values = super().to_dict()
        del values["models"]
        return CMGRecipe(domain=domain, **values)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "models": list(self.models)}


def distill_problems(registry: Registry, specialists: list[Artifact], base: Artifact) -> list[str]:
    """Why these specialists cannot be distilled into one child of ``base`` (empty: they can)."""
    problems, seen = [], {}
    for spec in specialists:
        label = f"{spec.manifest.kind} {spec.manifest.name} {spec.id[:12]}"
        if spec.manifest.kind == "quantized":
            problems.append(f"{label}: is int8-quantized; distil from its full-precision source")
        if tokenizer_digest(spec) != tokenizer_digest(base):
            problems.append(f"{label}: tokenizer differs from the base's; token-level distillation needs one")
        if spec.id != base.id and base.id not in ancestors(registry, spec.id):
            problems.append(f"{label}: lineage: does not descend from the base {base.id[:12]}")
        for domain in model_domains([spec]):
            if domain in seen:
                problems.append(f"{label}: domain {domain!r} already has a teacher ({seen[domain][:12]})")
            seen.setdefault(domain, spec.id)
    return problems


@operator(OPERATOR, recipe=MergeDistillRecipe)
def merge_distill(registry: Registry, home: Home, parent_id: str, recipe: MergeDistillRecipe,
                  options: RunOptions = RunOptions()) -> BreedOutcome:
    """Distil ``recipe.models`` into one ``merged`` child built from the base ``parent_id``; resumable."""
    base_art = registry.get(parent_id)
    specialists = [registry.get(ref) for ref in dict.fromkeys(recipe.models)]
    problems = distill_problems(registry, specialists, base_art)
    if problems:
        raise IncompatibleMerge(problems)
    teacher_of = {domain: spec for spec in specialists for domain in model_domains([spec])}
    data = {domain: dataset(registry, f"{domain}/train") for domain in teacher_of}
    general = dataset(registry, "general/train") if recipe.rehearsal_share > 0 else None
    data_ids = [d.id for d in data.values()] + ([general.id] if general else [])
    key = sha256_json({"operator": OPERATOR, "recipe": recipe.to_dict(), "base": base_art.id,
                       "models": [s.id for s in specialists], "data": data_ids})
    name = f"{'+'.join(teacher_of)}-distill-p{round(recipe.ratio * 100):02d}"
    cmg = recipe.to_cmg("+".join(teacher_of))

    def load():
        base, tokenizer = load_frozen(base_art)
        teachers = {spec.id: load_frozen(spec)[0] for spec in specialists}
        return {"frozen": {base_art.id: base, **teachers}, "base": base, "teachers": teachers,
                "tokenizer": tokenizer}

    def train(loaded, progress, checkpoint_dir: Path) -> Made:
        streams, caches = _streams(registry, base_art, loaded["base"], loaded["tokenizer"], teacher_of,
                                   loaded["teachers"], data, general, cmg, progress)
        plan, student = _student(loaded["base"], cmg)
        model = prepare_trainable(student, cmg)
        result = train_child(model, cmg, streams, checkpoint_dir, options, parent=None,
                             on_step=progress.training("distilling the specialists into one child"))
        inputs = {"teachers": {d: s.id for d, s in teacher_of.items()}, "caches": [c.id for c in caches],
                  "key": key}
        return Made(model, result, {"plan": plan, "inputs": inputs})

    def register(loaded, trained: Made, scratch: Path) -> Artifact:
        inputs = trained.extra["inputs"]
        return _register(registry, scratch, name, trained.model, loaded["tokenizer"], trained.extra["plan"],
                         trained.result, base_art, recipe, teacher_of, data_ids=data_ids + inputs["caches"],
                         inputs=inputs, actor=options.actor)

    return run_job(registry, home, options, Job("merged", name, key, cmg, load, train, register))


def _streams(registry, base_art, base, tokenizer, teacher_of, teachers, data, general, cmg: CMGRecipe, progress):
    """domain: every domain's pool with its specialist as teacher; general: rehearsal taught by the base."""
    from breedlab.cmg.blocks import dataset_blocks
    from breedlab.cmg.multi_teacher import LiveTeacher, MixedPools
    from breedlab.cmg.teacher import load_teacher_cache

    pools = [(teacher_of[d], teachers[teacher_of[d].id], data[d], cmg.pool_tokens) for d in teacher_of]
    general_pool = [(base_art, base, general, cmg.rehearsal_pool_tokens)] if general is not None else []
    sources, caches = {}, []
    for stream, entries in (("domain", pools), ("general", general_pool)):
        parts = []
        for teacher_art, teacher, split, tokens in entries:
            if cmg.teacher == "live":
                parts.append(LiveTeacher(dataset_blocks(split.path, tokenizer, cmg.seq_len, tokens, cmg.data_order),
                                         teacher))
                continue
            label = f"caching {teacher_art.manifest.name}'s top-{cmg.teacher_topk} on {split.manifest.name}"
            cache = ensure_teacher(registry, teacher_art, teacher, tokenizer, split, cmg, tokens,
                                   progress.phase(label, tokens))
            caches.append(cache)
            parts.append(load_teacher_cache(cache.path))
        if parts:
            sources[stream] = MixedPools(parts)
    return sources, caches


def _student(base, cmg: CMGRecipe):
    from breedlab.cmg.student import plan_student
    from breedlab.cmg.student_weights import build_student

    plan = plan_student(base.config, ratio=cmg.ratio, strategy=cmg.strategy, profile=None,
                        count_embeddings=cmg.count_embeddings, seed=cmg.seed)
    return plan, build_student(base, plan, seed=cmg.seed)


def _register(registry: Registry, scratch: Path, name: str, model, tokenizer, plan, result: TrainResult,
              base: Artifact, recipe: MergeDistillRecipe, teacher_of: dict[str, Artifact], *,
              data_ids: list[str], inputs: dict[str, Any], actor: str) -> Artifact:
    metrics = child_metrics(model, plan, result)  # before writing: merging the LoRA consumes the adapters
    domains = list(teacher_of)
    full = {**recipe.to_dict(), "models": list(dict.fromkeys(s.id for s in teacher_of.values())), "base": base.id,
            "method": "distill", "domains": domains, "domain": "+".join(domains), "loss": LOSS_FORMULA,
            "teacher_of": {d: s.id for d, s in teacher_of.items()}, "plan": plan.summary(),
            "selection_sha256": plan.sha256, "inputs": inputs, "versions": library_versions()}
    files = write_child(scratch, model, tokenizer, plan, result, base)
    return registry.register("merged", name, files, operator=OPERATOR, recipe=full, parents=full["models"],
                             data=data_ids, metrics=metrics, actor=actor, move=True)
