"""Building the student model a ``StudentPlan`` describes (CMG step 2, second half).

``student.py`` decides the shape and which parent parts to keep; this module
makes the ``LlamaForCausalLM``: the parent's config narrowed to the plan, then
the kept rows and columns copied from the parent's tensors into the student's
own (``scratch`` keeps the shape and initialises every weight under a seed).
A plan is checked against the parent first: it must have been made for a
parent of this size and describe a shape LlamaConfig can hold.
"""

from __future__ import annotations

import copy

import torch

from breedlab.cmg.student import ParentDims, StudentPlan


def _student_config(parent_config, plan: StudentPlan):
    """The parent's config with the student's depth and widths (head_dim explicit)."""
    from transformers import LlamaConfig

    dims = ParentDims.of(parent_config)
    config = LlamaConfig.from_dict(copy.deepcopy(parent_config.to_dict()))
    config.num_hidden_layers = len(plan.layers)
    config.num_attention_heads = len(plan.heads[0])
    config.head_dim = dims.head_dim  # no longer hidden // heads once heads are dropped
    config.intermediate_size = len(plan.neurons[0])
    if getattr(config, "layer_types", None):
        config.layer_types = [parent_config.layer_types[i] for i in plan.layers]
    return config


def _check_plan(parent_config, plan: StudentPlan) -> None:
    """Refuse a plan that does not fit this parent or that no LlamaConfig can describe."""
    dims = ParentDims.of(parent_config)
    if plan.parent_params != dims.count(dims.full, plan.count_embeddings):
        raise ValueError("this plan was made for a parent of a different size")
    if not (len(plan.layers) == len(plan.heads) == len(plan.neurons) > 0):
        raise ValueError("a plan needs heads and neurons for each of its (at least one) layers")
    in_range = (max(plan.layers) < dims.layers and max(map(max, plan.heads)) < dims.heads
                and max(map(max, plan.neurons)) < dims.intermediate)
    per_group = {tuple(sum(h // dims.group == g for h in kept) for g in range(dims.kv_heads))
                 for kept in plan.heads}  # query heads kept in each kv group, per layer
    if not in_range or len(per_group) != 1 or len(set(per_group.pop())) != 1:
        raise ValueError("a plan must keep parent indices, and the same number of query heads "
                         "in every kv group of every layer")
    if len({len(n) for n in plan.neurons}) != 1:
        raise ValueError("every kept layer must keep the same number of neurons")


def _copy_linear(dst: torch.nn.Linear, src: torch.nn.Linear, rows=None, columns=None) -> None:
    """Copy ``src`` into ``dst``, keeping only ``rows`` (outputs) or ``columns`` (inputs)."""
    weight = src.weight  # (out, in)
    weight = weight[rows] if rows is not None else weight
    weight = weight[:, columns] if columns is not None else weight
    dst.weight.copy_(weight)
    if src.bias is not None:
        dst.bias.copy_(src.bias[rows] if rows is not None else src.bias)


def _copy_layer(dst, src, heads: tuple[int, ...], neurons: tuple[int, ...], head_dim: int) -> None:
    """One decoder layer: kept heads' q rows and o columns, kept neurons' MLP slices."""
    rows = torch.tensor([h * head_dim + i for h in heads for i in range(head_dim)])  # (k*kv*hd,)
    kept = torch.tensor(neurons)  # (I',)
    _copy_linear(dst.self_attn.q_proj, src.self_attn.q_proj, rows=rows)  # (k*kv*hd, D)
    _copy_linear(dst.self_attn.k_proj, src.self_attn.k_proj)  # every kv head is kept
    _copy_linear(dst.self_attn.v_proj, src.self_attn.v_proj)
    _copy_linear(dst.self_attn.o_proj, src.self_attn.o_proj, columns=rows)  # (D, k*kv*hd)
    _copy_linear(dst.mlp.gate_proj, src.mlp.gate_proj, rows=kept)  # (I', D)
    _copy_linear(dst.mlp.up_proj, src.mlp.up_proj, rows=kept)
    _copy_linear(dst.mlp.down_proj, src.mlp.down_proj, columns=kept)  # (D, I')
    dst.input_layernorm.weight.copy_(src.input_layernorm.weight)
    dst.post_attention_layernorm.weight.copy_(src.post_attention_layernorm.weight)


def build_student(parent_model, plan: StudentPlan, *, seed: int = 0):
    """A new ``LlamaForCausalLM`` for ``plan``: weights copied from the parent, or
    (``scratch``) all initialised from N(0, config.initializer_range) under ``seed``.

    Copies go into the student's own tensors; the parent is only read.
    """
    from transformers import LlamaForCausalLM

    _check_plan(parent_model.config, plan)
    config = _student_config(parent_model.config, plan)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(seed)
        student = LlamaForCausalLM(config)
    student.generation_config = copy.deepcopy(parent_model.generation_config)
    if plan.strategy != "scratch":
        head_dim = ParentDims.of(parent_model.config).head_dim
        src, dst = parent_model.base_model, student.model
        with torch.no_grad():
            dst.embed_tokens.weight.copy_(src.embed_tokens.weight)
            dst.norm.weight.copy_(src.norm.weight)
            if student.lm_head.weight is not dst.embed_tokens.weight:  # untied: its own matrix
                student.lm_head.weight.copy_(parent_model.get_output_embeddings().weight)
            for new, old in enumerate(plan.layers):
                _copy_layer(dst.layers[new], src.layers[old], plan.heads[new], plan.neurons[new], head_dim)
    return student.to(parent_model.dtype).eval()
