"""The ``prune`` operator: the CMG's steps 1 and 2 alone, so pruning and healing are separate runs.

It profiles the parent on the domain, plans the student at ratio p by the recipe's strategy
(``mixed`` runs the proxy search for its depth), copies the kept layers, heads and neurons,
and registers the untrained student as a ``child`` named ``<domain>-p<NN>-<strategy>-pruned``.
Nothing trains: heal it with any training operator that takes a model, e.g.
``adapter-finetune`` (LoRA on the pruned model, CE on the domain) or another ``cmg`` breed.
The plan and the selection are the CMG's to the byte: the same recipe fields give the same
kept structure as a ``cmg`` breed would start from (``tests/test_operators_contract.py``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from breedlab.cmg.inputs import domain_and_general
from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.cmg.steps import cut_student
from breedlab.cmg.train import TrainResult
from breedlab.home import Home
from breedlab.models.io import save_model
from breedlab.operators.skeleton import BreedOutcome, Job, Made, library_versions, operator_key, parent_loader, run_job
from breedlab.operators.table import operator
from breedlab.registry import Artifact, Registry

OPERATOR = "prune"


@dataclass(frozen=True, kw_only=True)
class PruneRecipe:
    """Steps 1-2 of ``CMGRecipe``: every field means what it means there, with its default."""

    domain: str
    ratio: float = 0.3
    strategy: str = "profiled"
    max_depth_drop: float = 0.25
    proxy_tokens: int = 4096
    min_speedup: float | None = None
    calibration_general_share: float = 0.0
    count_embeddings: bool = False
    profile_tokens: int = 16_384
    seq_len: int = 256
    data_order: str = "shuffled"
    seed: int = 0

    def __post_init__(self) -> None:
        self.to_cmg()  # the CMG recipe checks every value

    def to_cmg(self) -> CMGRecipe:
        return CMGRecipe(**asdict(self))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pruned_name(recipe: PruneRecipe) -> str:
    return f"{recipe.domain}-p{round(recipe.ratio * 100):02d}-{recipe.strategy}-pruned"


@operator(OPERATOR, recipe=PruneRecipe)
def prune(registry: Registry, home: Home, parent_id: str, recipe: PruneRecipe,
          options: RunOptions = RunOptions()) -> BreedOutcome:
    """Register the untrained student of ``recipe`` cut from ``parent_id``; the same recipe finds it again."""
    cmg = recipe.to_cmg()
    parent_art = registry.get(parent_id)
    domain_data, general_data = domain_and_general(registry, recipe.domain,
                                                   general=recipe.calibration_general_share > 0)
    data = [d for d in (domain_data, general_data) if d is not None]
    key = operator_key(OPERATOR, recipe, parent_art.id, data)

    def cut(loaded, progress, checkpoint_dir: Path) -> Made:
        profile_art, plan, student, search = cut_student(registry, parent_art, loaded["parent"], loaded["tokenizer"],
                                                         domain_data, general_data, cmg, progress,
                                                         "1/2 profiling the parent")
        inputs = {"profile": profile_art.id, "key": key, **({"shape_search": search} if search else {})}
        return Made(student, TrainResult(), {"plan": plan, "inputs": inputs})

    def register(loaded, made: Made, scratch: Path) -> Artifact:
        plan = made.extra["plan"]
        folder = save_model(made.model, loaded["tokenizer"], scratch / "model")
        (folder / "selection.json").write_text(json.dumps(plan.to_dict(), sort_keys=True) + "\n")
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        full = {**recipe.to_dict(), "parent": parent_art.id, "plan": plan.summary(),
                "selection_sha256": plan.sha256, "trained": False, "inputs": made.extra["inputs"],
                "versions": library_versions()}
        metrics = {"parameters": sum({id(p): p.numel() for p in made.model.parameters()}.values()),
                   "counted_parameters": plan.student_params, "counted_target": plan.target_params,
                   "counted_parent_parameters": plan.parent_params, "embeddings_counted": plan.count_embeddings}
        return registry.register("child", pruned_name(recipe), files, operator=OPERATOR, recipe=full,
                                 parents=[parent_art.id], data=[d.id for d in data], metrics=metrics,
                                 actor=options.actor, move=True)

    job = Job("child", pruned_name(recipe), key, cmg, parent_loader(parent_art), cut, register,
              parents=(parent_art.id,))
    return run_job(registry, home, options, job)
