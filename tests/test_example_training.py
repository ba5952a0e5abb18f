"""Breeding from examples: the chat-templated rows, loss on the output tokens only, and the operators."""

from __future__ import annotations

import json

import pytest
import torch

from breedlab.cmg.example_blocks import ExampleBlocks, render_example
from breedlab.cmg.losses import ce_loss, kd_loss_full
from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.cmg.schedule import stream_position
from breedlab.data.examples import Example
from breedlab.data.niche import add_niche
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import load_model
from breedlab.operators.adapter_finetune import AdapterFinetuneRecipe
from breedlab.operators.table import get_operator
from breedlab.registry import Registry

TINY = {"steps": 6, "batch_size": 2, "seq_len": 48, "lora_rank": 4, "lora_alpha": 8, "pool_tokens": 512,
        "rehearsal_pool_tokens": 256, "warmup_steps": 2}
OPTIONS = RunOptions(progress=False, threads=1, checkpoint_every=100)
EXAMPLES = [Example(({"role": "user", "content": f"def add_{i}(a, b): return a + b"},), f"adds two numbers {i}")
            for i in range(24)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("examples-home"))
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir)
    path = tmp_path_factory.mktemp("examples") / "summaries.jsonl"
    path.write_text("".join(json.dumps({"input": e.input, "output": e.output}) + "\n" for e in EXAMPLES))
    add_niche(home, registry, "summaries", examples=path, task="summarize")
    model, tokenizer = load_model(pico.parent.path)
    return home, registry, pico, model, tokenizer


def test_a_row_is_the_chat_templated_prompt_then_the_output_and_only_the_output_is_a_target(lab):
    *_, tokenizer = lab
    prompt_ids, output_ids = render_example(tokenizer, EXAMPLES[0])
    assert tokenizer.decode(prompt_ids).startswith("<|im_start|>user\n")
    assert tokenizer.decode(prompt_ids).endswith("<|im_start|>assistant\n")
    assert output_ids[-1] == tokenizer.eos_token_id
    blocks = ExampleBlocks.from_examples(tokenizer, EXAMPLES[:2], seq_len=48)
    row, mask = blocks.input_ids[0], blocks.target_mask[0]
    assert row[mask].tolist() == output_ids and mask.sum() == len(output_ids)
    assert blocks.attention_mask[0].sum() == len(prompt_ids) + len(output_ids)


def test_the_loss_has_zero_gradient_at_every_input_token_position(lab):
    *_, model, tokenizer = lab
    blocks = ExampleBlocks.from_examples(tokenizer, EXAMPLES[:3], seq_len=48)
    batch = blocks.batch(torch.arange(3))
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.detach()
    logits.requires_grad_(True)
    parent = logits.detach() + torch.randn_like(logits)  # any other distribution: the KD term is non-zero
    loss = ce_loss(logits, batch["input_ids"], batch["target_mask"]) + kd_loss_full(logits, parent, 4.0,
                                                                                    batch["target_mask"])
    loss.backward()
    predicts_output = torch.zeros_like(batch["target_mask"])
    predicts_output[:, :-1] = batch["target_mask"][:, 1:]  # position t predicts token t + 1
    norms = logits.grad.abs().sum(-1)  # (B, S)
    assert torch.all(norms[~predicts_output] == 0)  # prompt, padding and the last position: no gradient
    assert torch.all(norms[predicts_output] > 0)


def test_without_examples_the_step_schedule_is_unchanged():
    before = [stream_position(s, 0.5) for s in range(40)]
    assert before == [stream_position(s, 0.5, None) for s in range(40)]
    mixed = [stream_position(s, 0.5, 0.5)[0] for s in range(40)]
    assert mixed.count("general") == 20 and mixed.count("examples") == 10 and mixed.count("domain") == 10


def test_the_adapter_and_the_cmg_breed_from_examples_and_record_them(lab):
    home, registry, pico, *_ = lab
    examples_id = registry.find(kind="dataset", name="summaries/examples/train")[0].id
    adapter = get_operator("adapter-finetune")(registry, home, pico.parent.id, AdapterFinetuneRecipe(
        domain="summaries", examples_share=1.0, **TINY), OPTIONS).child
    child = get_operator("cmg")(registry, home, pico.parent.id, CMGRecipe(
        domain="summaries", ratio=0.5, profile_tokens=256, examples_share=0.5, **TINY), OPTIONS).child
    for artifact in (adapter, child):
        assert examples_id in artifact.manifest.data
        streams = {entry["stream"] for entry in json.loads((artifact.path / "training_curve.json").read_text())}
        assert "examples" in streams
    assert child.manifest.recipe["examples_share"] == 0.5
    plain = AdapterFinetuneRecipe(domain="summaries", **TINY)
    assert "examples_share" not in plain.to_dict()  # recipes without examples keep the identity they had


def test_examples_need_a_live_parent_and_an_examples_dataset(lab):
    home, registry, pico, *_ = lab
    with pytest.raises(ValueError, match="topk"):
        CMGRecipe(domain="code", teacher="topk", examples_share=0.5)
    with pytest.raises(ValueError, match=r"examples_share must be in \(0, 1\]"):
        CMGRecipe(domain="code", examples_share=1.5)
    from breedlab.registry import RegistryError

    with pytest.raises(RegistryError, match="no examples for 'code'"):
        get_operator("adapter-finetune")(registry, home, pico.parent.id,
                                         AdapterFinetuneRecipe(domain="code", examples_share=0.5, **TINY), OPTIONS)


def test_an_example_batch_is_cut_to_its_longest_row_and_its_loss_is_unchanged(lab):
    *_, model, tokenizer = lab
    blocks = ExampleBlocks.from_examples(tokenizer, EXAMPLES[:4], seq_len=96)
    indices = torch.arange(4)
    cut = blocks.batch(indices)
    width = int(blocks.attention_mask[indices].sum(dim=1).max())
    assert cut["input_ids"].shape == (4, width) and width < 96
    full = {"input_ids": blocks.input_ids[indices], "attention_mask": blocks.attention_mask[indices]}
    with torch.no_grad():
        losses = [ce_loss(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                          b["input_ids"], blocks.target_mask[indices, :b["input_ids"].shape[1]])
                  for b in (cut, full)]
    assert torch.allclose(losses[0], losses[1], atol=1e-5)


def test_the_lab_sizes_an_examples_budget_in_passes_over_the_examples(lab):
    from breedlab.lab.steps import fit_examples_epochs

    _, registry, *_ = lab
    train = registry.find(kind="dataset", name="summaries/examples/train")[0]
    count = train.manifest.metrics["examples"]
    recipe = AdapterFinetuneRecipe(domain="summaries", examples_share=0.5, **{**TINY, "steps": 2})
    fitted = fit_examples_epochs(registry, recipe, epochs=3)
    seen = sum(recipe.batch_size for s in range(fitted.total_steps)
               if stream_position(s, fitted.rehearsal_share, fitted.examples_share)[0] == "examples")
    assert 3 * count <= seen < 3 * count + 2 * recipe.batch_size / 0.5
    assert fit_examples_epochs(registry, fitted, epochs=1) is fitted  # already covers one pass
    plain = AdapterFinetuneRecipe(domain="summaries", **TINY)
    assert fit_examples_epochs(registry, plain, epochs=3) is plain


def test_a_niche_of_short_examples_gets_lm_passages_its_documents_can_hold(lab):
    from breedlab.evaluation.suites import build_suite
    from breedlab.lab.steps import lm_passage_tokens

    _, registry, _, _, tokenizer = lab
    tokens = lm_passage_tokens(registry, "summaries", tokenizer, wanted=128, cases=32)
    assert 16 <= tokens < 128  # "def add_3(a, b): return a + b\n\nadds two numbers 3" is far from 128 tokens
    suite = build_suite(registry, "lm", "summaries", tokenizer=tokenizer, cases=32, tokens=tokens)
    assert suite.manifest.metrics["cases"] > 0
    assert lm_passage_tokens(registry, "no-such-niche", tokenizer, wanted=128, cases=32) == 128
