"""The CMG's steps 2 and 3 as the operators call them (Genesis V1, section VI):

  2. plan and build the student at ratio p (``mixed`` searches its depth first, by proxy KL)
  3. the training streams: the parent's cached (or live) logits on the domain and general pools,
     and the hidden-state pairs the hidden loss matches

Step 1 (profiling) is ``inputs.ensure_profile``; step 4 (rehearsal) is the general stream in
``train.train_child``. The ``cmg`` operator (``operators/cmg.py``) runs them in order; this
package knows nothing of the operator table.
"""

from __future__ import annotations

from breedlab.cmg.inputs import ensure_teacher
from breedlab.cmg.recipe import CMGRecipe
from breedlab.cmg.train import LiveBlocks


def cut_student(registry, parent_art, parent, tokenizer, domain_data, general_data, recipe: CMGRecipe, progress,
                label: str):
    """Steps 1 and 2: the parent's profile (found or made) and the student it plans, with the proxy
    search's record for ``mixed``; -> (profile artifact, plan, student, search or None)."""
    from breedlab.cmg.inputs import ensure_profile

    profile_art, profile = ensure_profile(registry, parent_art, parent, tokenizer, domain_data, recipe,
                                          progress.phase(label, recipe.profile_tokens), general=general_data)
    plan, student, search = build_student_for(parent, profile, recipe, tokenizer, domain_data, general_data,
                                              progress)
    return profile_art, plan, student, search


def build_student_for(parent, profile, recipe: CMGRecipe, tokenizer, domain_data, general_data, progress=None):
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


def training_streams(registry, parent_art, parent, tokenizer, domain_data, general_data, recipe: CMGRecipe, progress,
                     examples_data=None):
    """Training sources: a cached teacher (hidden states or top-k), or plain blocks for a live parent; and
    with ``examples_data`` (``<domain>/examples/train``) the examples stream (the live parent teaches it)."""
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
    if examples_data is not None:
        from breedlab.cmg.example_blocks import ExampleBlocks
        from breedlab.data.example_shards import iter_examples

        examples = list(iter_examples(examples_data.path))
        streams["examples"] = ExampleBlocks.from_examples(tokenizer, examples, recipe.seq_len)
    return streams, teachers
