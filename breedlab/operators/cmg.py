"""The ``cmg`` operator: breed a registered child from a frozen parent, end to end.

Straight-line, in the paper's order (Genesis V1, section VI):
  1. profile the parent on domain text          -> ``profile`` artifact (reused)
  2. plan and build the student at ratio p      -> copied weights, recorded selection
     (the parent's logits are cached once per dataset -> ``dataset`` artifacts, reused)
  3. distil into LoRA adapters, T = 4            \
  4. with 5% general-data rehearsal, l_r = 0.10  /-> ``child`` artifact
A breed is resumable (``skeleton.run_job``): checkpoints live under
``<home>/cache/breeds/<key>``, where the key hashes the recipe, the parent and the data.
"""

from __future__ import annotations

import time
from pathlib import Path

from breedlab.cmg.child_files import child_metrics, child_name, child_recipe, write_child, write_domain_head
from breedlab.cmg.domain_head import HEAD_FILE
from breedlab.cmg.inputs import domain_and_general, examples_dataset
from breedlab.cmg.lora import prepare_trainable
from breedlab.cmg.recipe import LEGACY_ORDER, CMGRecipe, RunOptions
from breedlab.cmg.steps import cut_student, hidden_pairs, training_streams
from breedlab.cmg.train import train_child
from breedlab.home import Home
from breedlab.operators.skeleton import BreedOutcome, Job, Made, parent_loader, run_job
from breedlab.operators.table import operator
from breedlab.registry import Registry
from breedlab.registry.canonical import sha256_json


def breed_key(recipe: CMGRecipe, parent_id: str, data_ids: list[str | None]) -> str:
    """What identifies a breed: the recipe, the parent and the data."""
    # None-valued fields are left out of the key: an optional field added later (None = unused) leaves
    # the key of every recipe that does not use it as it was, so earlier children are still found.
    fields = {name: value for name, value in recipe.to_dict().items() if value is not None}
    if fields["data_order"] == LEGACY_ORDER:  # how every child was bred before the field existed
        del fields["data_order"]
    return sha256_json({"recipe": fields, "parent": parent_id, "data": data_ids})


@operator("cmg", recipe=CMGRecipe)
def breed_child(registry: Registry, home: Home, parent_id: str, recipe: CMGRecipe,
                options: RunOptions = RunOptions()) -> BreedOutcome:
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    parent_art = registry.get(parent_id)
    domain_data, general_data = domain_and_general(registry, recipe.domain, general=recipe.rehearsal_share > 0)
    examples_data = examples_dataset(registry, recipe)
    data_ids = [domain_data.id, general_data.id if general_data else None]
    key = breed_key(recipe, parent_art.id, data_ids + ([examples_data.id] if examples_data else []))

    def train(loaded, progress, checkpoint_dir: Path) -> Made:
        parent, tokenizer = loaded["parent"], loaded["tokenizer"]
        profile_art, plan, student, search = cut_student(registry, parent_art, parent, tokenizer, domain_data,
                                                         general_data, recipe, progress, "1/4 profiling the parent")
        streams, teachers = training_streams(registry, parent_art, parent, tokenizer, domain_data, general_data,
                                             recipe, progress, examples_data)
        model = prepare_trainable(student, recipe)
        result = train_child(model, recipe, streams, checkpoint_dir, options,
                             parent=parent if recipe.teacher != "topk" else None,
                             on_step=progress.training("3/4 distilling (+4/4 rehearsal)"),
                             hidden_pairs=hidden_pairs(plan, recipe, parent.config.num_hidden_layers))
        inputs = {"profile": profile_art.id, "teachers": [t.id for t in teachers], "key": key,
                  **({"shape_search": search} if search else {})}
        return Made(model, result, {"plan": plan, "inputs": inputs})

    def register(loaded, trained: Made, scratch: Path):
        plan, inputs = trained.extra["plan"], trained.extra["inputs"]
        metrics = child_metrics(trained.model, plan, trained.result)
        files = write_child(scratch, trained.model, loaded["tokenizer"], plan, trained.result, parent_art)
        if recipe.domain_head_coverage is not None:
            validation = registry.find(kind="dataset", name=f"{recipe.domain}/validation")
            metrics["domain_head"] = write_domain_head(scratch / "model", domain_data, general_data,
                                                       validation[0] if validation else None, recipe)
            files[HEAD_FILE] = scratch / "model" / HEAD_FILE
        # This run's cost (a resumed breed counts only its own run; reused profiles and caches cost nothing)
        metrics["breed_wall_seconds"] = round(time.perf_counter() - started_wall, 1)
        metrics["breed_cpu_seconds"] = round(time.process_time() - started_cpu, 1)
        return registry.register(
            "child", child_name(recipe), files, operator="cmg",
            recipe=child_recipe(recipe, plan, parent_art, inputs), parents=[parent_art.id],
            data=[d.id for d in (domain_data, general_data, examples_data) if d is not None] + inputs["teachers"],
            metrics=metrics, actor=options.actor, move=True)

    job = Job("child", child_name(recipe), key, recipe, parent_loader(parent_art), train, register,
              parents=(parent_art.id,))
    return run_job(registry, home, options, job)
