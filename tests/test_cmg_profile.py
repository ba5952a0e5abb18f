"""CMG step 1, task profiling: what is measured, on which tokens, and that the parent stays frozen."""

from __future__ import annotations

import copy

import pytest
import torch

from breedlab.cmg.profile import (
    IMPORTANCE_MEASURE,
    PROFILE_FILE,
    Profile,
    load_profile,
    profile_model,
    register_profile,
    save_profile,
)
from breedlab.models.io import weights_digest
from breedlab.models.parent import import_parent

HEAD_DIM = 16  # pico: hidden 64 / 4 heads


def test_profile_has_one_score_per_layer_head_and_neuron(pico, blocks):
    profile = profile_model(pico[0], blocks)
    assert profile.layer_importance.shape == (4,)
    assert profile.head_importance.shape == (4, 4)  # query heads, not the 2 kv heads
    assert profile.neuron_importance.shape == (4, 128)
    assert profile.tokens == blocks.numel() == 256
    for scores in (profile.layer_importance, profile.head_importance, profile.neuron_importance):
        assert torch.isfinite(scores).all() and (scores >= 0).all() and scores.sum() > 0


def test_profiling_leaves_the_parent_untouched(pico, blocks):
    model = pico[0]
    before = weights_digest(model)
    profile_model(model, blocks, batch_size=3)
    assert weights_digest(model) == before
    assert not model.training
    leftover = [name for name, module in model.named_modules() if module._forward_hooks or module._forward_pre_hooks]
    assert leftover == []  # every hook was removed


def test_layer_importance_is_the_relative_residual_update(pico, blocks):
    profile = profile_model(pico[0], blocks)
    with torch.no_grad():
        states = pico[0].model(input_ids=blocks, output_hidden_states=True).hidden_states
    # hidden_states[i] is layer i's input; the last entry is after the final norm, so stop before it.
    for i in range(len(states) - 2):
        update = (states[i + 1] - states[i]).norm(dim=-1) / states[i].norm(dim=-1)  # (N, S)
        assert profile.layer_importance[i].item() == pytest.approx(update.mean().item(), rel=1e-4)


def _scaled(model, head: int | None = None, neuron: int | None = None):
    """A copy of ``model`` with one head's o_proj columns or one down_proj column of the
    last layer multiplied by 50 (one at a time: a head's write feeds the same layer's MLP)."""
    scaled = copy.deepcopy(model)
    last = scaled.model.layers[-1]
    with torch.no_grad():
        if head is not None:
            last.self_attn.o_proj.weight[:, head * HEAD_DIM:(head + 1) * HEAD_DIM].mul_(50)
        if neuron is not None:
            last.mlp.down_proj.weight[:, neuron].mul_(50)
    return scaled


def test_head_and_neuron_scores_are_the_norms_of_their_writes(pico, blocks):
    """Scaling a head's o_proj columns (a neuron's down_proj column) by 50 scales its
    score by 50 and leaves its neighbours' scores and every upstream score alone."""
    base = profile_model(pico[0], blocks)
    heads = profile_model(_scaled(pico[0], head=1), blocks)
    assert heads.head_importance[-1, 1].item() == pytest.approx(50 * base.head_importance[-1, 1].item(), rel=1e-4)
    assert torch.allclose(heads.head_importance[-1, [0, 2, 3]], base.head_importance[-1, [0, 2, 3]], rtol=1e-5)
    assert torch.allclose(heads.layer_importance[:-1], base.layer_importance[:-1])
    neurons = profile_model(_scaled(pico[0], neuron=17), blocks)
    assert neurons.neuron_importance[-1, 17].item() == pytest.approx(
        50 * base.neuron_importance[-1, 17].item(), rel=1e-4)
    others = torch.arange(128) != 17
    assert torch.allclose(neurons.neuron_importance[-1, others], base.neuron_importance[-1, others], rtol=1e-5)
    assert torch.allclose(neurons.head_importance, base.head_importance)


def test_saving_twice_gives_identical_bytes(pico, blocks, tmp_path):
    profile = profile_model(pico[0], blocks)
    first = save_profile(profile, tmp_path / "a.safetensors").read_bytes()
    assert all(save_profile(profile, tmp_path / f"{i}.safetensors").read_bytes() == first for i in range(4))


def test_batch_size_does_not_change_the_profile_and_progress_counts_tokens(pico, blocks):
    seen: list[int] = []
    small = profile_model(pico[0], blocks, batch_size=3, progress=seen.append)
    large = profile_model(pico[0], blocks, batch_size=8)
    assert seen == [96, 96, 64]  # 3 + 3 + 2 blocks of 32 tokens
    for name in ("layer_importance", "head_importance", "neuron_importance"):
        assert torch.allclose(getattr(small, name), getattr(large, name), rtol=1e-5)


def test_bad_blocks_are_refused(pico):
    with pytest.raises(ValueError, match=r"\(N, S\)"):
        profile_model(pico[0], torch.tensor([1, 2, 3]))


def test_save_and_load_round_trip_as_safetensors(pico, blocks, tmp_path):
    profile = profile_model(pico[0], blocks)
    path = save_profile(profile, tmp_path / PROFILE_FILE)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:  # a plain safetensors file, no pickle
        assert set(handle.keys()) == {"layer_importance", "head_importance", "neuron_importance", "block_influence"}
    loaded = load_profile(path)
    assert loaded.tokens == profile.tokens
    for name in ("layer_importance", "head_importance", "neuron_importance"):
        assert torch.equal(getattr(loaded, name), getattr(profile, name))


def test_a_foreign_safetensors_file_is_not_a_profile(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a breedlab profile"):
        load_profile(tmp_path / "other.safetensors")


def test_ranked_layers_and_summary():
    profile = Profile(torch.tensor([0.5, 2.0, 0.5, 1.0]), torch.ones(4, 2), torch.ones(4, 3), tokens=10)
    assert profile.ranked_layers() == [1, 3, 0, 2]  # ties keep the lower index first
    assert profile.summary(top=2) == {"tokens": 10, "layers": 4, "top_layers": [1, 3],
                                      "layer_importance": [0.5, 2.0, 0.5, 1.0]}


def test_registered_profile_names_its_parent_and_data(pico, blocks, registry, home, pico_parent_dir, tmp_path):
    parent = import_parent(registry, pico_parent_dir, cache_dir=home.cache_dir)
    shard = tmp_path / "shard-00000.jsonl"
    shard.write_text('{"text": "hello"}\n')
    data = registry.register("dataset", "code/train", {"shard-00000.jsonl": shard}, operator="build",
                             recipe={"source": "test"})
    profile = profile_model(pico[0], blocks)
    recipe = {"tokens": 256, "seq_len": 32, "measure": IMPORTANCE_MEASURE}
    artifact = register_profile(registry, profile, name="code/profile", parent_id=parent.id, data_ids=[data.id],
                                recipe=recipe)
    manifest = artifact.manifest
    assert (manifest.kind, manifest.name, manifest.operator) == ("profile", "code/profile", "profile")
    assert manifest.parents == (parent.id,) and manifest.data == (data.id,)
    assert manifest.recipe == recipe
    assert manifest.metrics["top_layers"] == profile.ranked_layers()[:5]
    assert torch.equal(load_profile(artifact.path / PROFILE_FILE).neuron_importance, profile.neuron_importance)
    again = register_profile(registry, profile, name="code/profile", parent_id=parent.id, data_ids=[data.id],
                             recipe=recipe)
    assert again.id == artifact.id  # same profile, same parent and data: same artifact
