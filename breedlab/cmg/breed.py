"""The ``cmg`` operator: breed a registered child from a frozen parent, end to end.

Straight-line, in the paper's order (Genesis V1, section VI):
  1. profile the parent on domain text          -> ``profile`` artifact (reused)
  2. plan and build the student at ratio p      -> copied weights, recorded selection
     (the parent's logits are cached once per dataset -> ``dataset`` artifacts, reused)
  3. distil into LoRA adapters, T = 4            \
  4. with 5% general-data rehearsal, l_r = 0.10  /-> ``child`` artifact
A breed is resumable: checkpoints live under ``<home>/cache/breeds/<key>``,
where the key hashes the recipe, the parent and the data.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from breedlab.home import Home
from breedlab.models.io import weights_digest
from breedlab.operators.table import operator
from breedlab.registry import Artifact, Registry, RegistryError
from breedlab.registry.canonical import sha256_json
from breedlab.cmg.child_files import child_metrics, child_name, child_recipe, write_child, write_domain_head
from breedlab.cmg.domain_head import HEAD_FILE
from breedlab.cmg.inputs import dataset, ensure_profile, ensure_teacher, load_frozen
from breedlab.cmg.lora import prepare_trainable
from breedlab.cmg.progress import BreedProgress
from breedlab.cmg.recipe import LEGACY_ORDER, CMGRecipe, RunOptions
from breedlab.cmg.train import LiveBlocks, TrainResult, train_child


@dataclass
class BreedOutcome:
    """A registered child, or where an interrupted breed stopped (run again to resume)."""

    child: Artifact | None
    result: TrainResult
    checkpoint_dir: Path
    reused: bool = False


@operator("cmg")
def breed_child(registry: Registry, home: Home, parent_id: str, recipe: CMGRecipe,
                options: RunOptions = RunOptions()) -> BreedOutcome:
    import torch

    started_wall, started_cpu = time.perf_counter(), time.process_time()
    if options.threads:
        torch.set_num_threads(options.threads)
    parent_art = registry.get(parent_id)
    domain_data = dataset(registry, f"{recipe.domain}/train")
    general_data = dataset(registry, "general/train") if recipe.rehearsal_share > 0 else None
    # None-valued fields are left out of the key: an optional field added later (None = unused) leaves
    # the key of every recipe that does not use it as it was, so earlier children are still found.
    fields = {name: value for name, value in recipe.to_dict().items() if value is not None}
    if fields["data_order"] == LEGACY_ORDER:  # how every child was bred before the field existed
        del fields["data_order"]
    key = sha256_json({"recipe": fields, "parent": parent_art.id,
                       "data": [domain_data.id, general_data.id if general_data else None]})
    existing = _already_bred(registry, recipe, parent_art, key)
    if existing is not None:
        return BreedOutcome(existing, TrainResult(), Path(), reused=True)

    parent, tokenizer = load_frozen(parent_art)
    parent_digest = weights_digest(parent)
    checkpoint_dir = (options.work_dir or home.cache_dir / "breeds") / key[:16]
    with BreedProgress(options.progress, recipe, display=options.display) as progress:
        profile_art, profile = ensure_profile(registry, parent_art, parent, tokenizer, domain_data, recipe,
                                              progress.phase("1/4 profiling the parent", recipe.profile_tokens),
                                              general=general_data)
        plan, student, search = _build_student(parent, profile, recipe, tokenizer, domain_data, general_data,
                                               progress)
        streams, teachers = training_streams(registry, parent_art, parent, tokenizer, domain_data, general_data,
                                     recipe, progress)
        model = prepare_trainable(student, recipe)
        result = train_child(model, recipe, streams, checkpoint_dir, options,
                             parent=parent if recipe.teacher != "topk" else None,
                             on_step=progress.training("3/4 distilling (+4/4 rehearsal)"),
                             hidden_pairs=hidden_pairs(plan, recipe, parent.config.num_hidden_layers))
    if weights_digest(parent) != parent_digest:  # the CMG's one promise: the parent never changes
        raise RegistryError("the parent's weights changed during breeding; nothing was registered")
    if result.interrupted:
        return BreedOutcome(None, result, checkpoint_dir)

    inputs = {"profile": profile_art.id, "teachers": [t.id for t in teachers], "key": key,
              **({"shape_search": search} if search else {})}
    metrics = child_metrics(model, plan, result)
    with tempfile.TemporaryDirectory(dir=home.cache_dir) as scratch:
        files = write_child(Path(scratch), model, tokenizer, plan, result, parent_art)
        if recipe.domain_head_coverage is not None:
            validation = registry.find(kind="dataset", name=f"{recipe.domain}/validation")
            metrics["domain_head"] = write_domain_head(Path(scratch) / "model", domain_data, general_data,
                                                       validation[0] if validation else None, recipe)
            files[HEAD_FILE] = Path(scratch) / "model" / HEAD_FILE
        # This run's cost (a resumed breed counts only its own run; reused profiles and caches cost nothing)
        metrics["breed_wall_seconds"] = round(time.perf_counter() - started_wall, 1)
        metrics["breed_cpu_seconds"] = round(time.process_time() - started_cpu, 1)
        child = registry.register(
            "child", child_name(recipe), files, operator="cmg",
            recipe=child_recipe(recipe, plan, parent_art, inputs),
            parents=[parent_art.id],
            data=[d.id for d in (domain_data, general_data) if d is not None] + inputs["teachers"],
            metrics=metrics, actor=options.actor, move=True,
        )
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return BreedOutcome(child, result, checkpoint_dir)


def _already_bred(registry: Registry, recipe: CMGRecipe, parent_art: Artifact, key: str) -> Artifact | None:
    for child in registry.find(kind="child", name=child_name(recipe)):
        if child.manifest.parents == (parent_art.id,) and child.manifest.recipe.get("inputs", {}).get("key") == key:
            return child
    return None


def _build_student(parent, profile, recipe: CMGRecipe, tokenizer, domain_data, general_data, progress=None):
    """(plan, student, the proxy search's record or None): ``mixed`` searches its depth first, with a
    progress bar (it builds and scores up to ``max_depth_drop`` x layers + 1 untrained students)."""
    from breedlab.cmg.student import plan_student
    from breedlab.cmg.student_weights import build_student

    search = None
    layers = None
    if recipe.strategy == "mixed":
        from breedlab.cmg.inputs import calibration_blocks
        from breedlab.cmg.shape_search import search_depth, search_size

        blocks = calibration_blocks(tokenizer, domain_data, general_data, recipe.proxy_tokens, recipe.seq_len,
                                    recipe.calibration_general_share, recipe.data_order)
        on_tokens = None if progress is None else progress.phase(
            "1/4 choosing the depth (proxy search)", search_size(recipe, parent.config.num_hidden_layers,
                                                                 int(blocks.numel())))
        search = search_depth(parent, profile, recipe, blocks, on_tokens=on_tokens)
        layers = search["chosen_layers"]
    plan = plan_student(parent.config, ratio=recipe.ratio, strategy=recipe.strategy, profile=profile,
                        count_embeddings=recipe.count_embeddings, seed=recipe.seed, layers=layers)
    return plan, build_student(parent, plan, seed=recipe.seed), search


def hidden_pairs(plan, recipe: CMGRecipe, parent_layers: int) -> tuple[tuple[int, int], ...]:
    """(student, parent) ``output_hidden_states`` indices the hidden-state loss matches.

    Always the final normed state (-1, -1); then ``recipe.hidden_layers`` of the student's
    layers, evenly spread, each against the parent layer it was copied from (index + 1: entry 0
    is the embeddings). A layer copied from the parent's last is skipped: that entry is normed.
    """
    if recipe.hidden_loss == "none":
        return ()
    from breedlab.cmg.student import spread_evenly

    pairs = [(-1, -1)]
    inner = len(plan.layers) - 1  # the last student layer's output is the final state, normed
    if recipe.hidden_layers and inner > 0:
        for student in spread_evenly(min(recipe.hidden_layers, inner), inner):
            if plan.layers[student] < parent_layers - 1:
                pairs.append((student + 1, plan.layers[student] + 1))
    return tuple(dict.fromkeys(pairs))


def training_streams(registry, parent_art, parent, tokenizer, domain_data, general_data, recipe: CMGRecipe, progress):
    """Training sources: a cached teacher (hidden states or top-k), or plain blocks for a live parent."""
    from breedlab.cmg.blocks import dataset_blocks
    from breedlab.cmg.teacher import load_teacher_cache

    pools = {"domain": (domain_data, recipe.pool_tokens)}
    if general_data is not None:
        pools["general"] = (general_data, recipe.rehearsal_pool_tokens)
    streams, teachers = {}, []
    for stream, (data, tokens) in pools.items():
        if recipe.teacher == "live":
            streams[stream] = LiveBlocks(dataset_blocks(data.path, tokenizer, recipe.seq_len, tokens,
                                                        recipe.data_order))
            continue
        label = f"2/4 caching the parent's {recipe.teacher} ({stream})"
        teacher = ensure_teacher(registry, parent_art, parent, tokenizer, data, recipe, tokens,
                                 progress.phase(label, tokens))
        teachers.append(teacher)
        streams[stream] = load_teacher_cache(teacher.path)
    return streams, teachers
