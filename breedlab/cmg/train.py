"""Steps 3 and 4 of the CMG: distil the parent into the student, with rehearsal.

One linear loop, read top to bottom. Per step: pick the stream (domain, or a
general-corpus rehearsal batch on an evenly spread ``rehearsal_share`` of
steps), fetch the batch and the parent's logits for it (its LM head over
cached hidden states, a top-k cache, or the live parent), then

    L = a_ce * CE + a_kd * T^2 * KL(softmax(parent/T) || softmax(child/T)) [+ a_h * H]

on a domain batch (H: the hidden-state loss over ``hidden_pairs``, each a
student hidden state matched to the parent's at the layer it was copied from),
and ``l_r`` times the same loss on a rehearsal batch, so
over a run the objective is Equation 2 of Genesis V1 with L_rehearsal the
distillation loss on general text. An examples batch (``example_blocks.py``: the
prompt under the chat template, then the desired output) takes the same CE + KD
with the live parent, but only on its output tokens (``target_mask``), and no
hidden-state term. The parent is only ever run under
``no_grad``; its weights never receive a gradient.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch

from breedlab.cmg.checkpoint import load_checkpoint, save_checkpoint
from breedlab.cmg.lora import trainable_parameters
from breedlab.cmg.losses import ce_loss, hidden_state_loss, kd_loss_full, kd_loss_topk
from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.cmg.schedule import batch_indices, learning_rate, stream_position
from breedlab.cmg.teacher import teacher_logits

STREAM_SEEDS = {"domain": 0, "general": 1, "examples": 2}


class BatchSource(Protocol):
    """A pool of training blocks; ``batch`` returns ``input_ids`` (B, S) and, if cached, the parent's top-k."""

    def __len__(self) -> int: ...

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]: ...


@dataclass
class LiveBlocks:
    """Blocks with no cached teacher: the parent runs live on every batch (full-vocabulary KL)."""

    blocks: torch.Tensor  # (N, S)

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[indices]}


@dataclass
class TrainResult:
    curve: list[dict] = field(default_factory=list)
    """One entry per step: step, stream, lr, loss, ce, kd (deterministic; no timings)."""
    steps_done: int = 0
    domain_tokens: int = 0
    rehearsal_tokens: int = 0
    seconds: float = 0.0
    """Wall time of this run's steps (a resumed run counts only its own)."""
    run_tokens: int = 0
    interrupted: bool = False

    @property
    def tokens(self) -> int:
        return self.domain_tokens + self.rehearsal_tokens


def train_child(model: torch.nn.Module, recipe: CMGRecipe, streams: dict[str, BatchSource],
                checkpoint_dir: Path, options: RunOptions, *, parent: torch.nn.Module | None = None,
                on_step: Callable[[int, dict, TrainResult], None] | None = None,
                hidden_pairs: tuple[tuple[int, int], ...] = ()) -> TrainResult:
    """Train ``model``'s trainable parameters; resume from ``checkpoint_dir`` if a checkpoint is there.

    ``hidden_pairs``: (student, parent) indices into ``output_hidden_states`` (0 is the
    embeddings, -1 the final normed state) for the hidden-state term, if the recipe has one.
    """
    if recipe.hidden_loss != "none" and not hidden_pairs:
        raise ValueError(f"hidden_loss {recipe.hidden_loss!r} needs hidden_pairs to match")
    params = trainable_parameters(model)
    optimizer = torch.optim.AdamW(params.values(), lr=recipe.lr, weight_decay=0.0)
    state = load_checkpoint(checkpoint_dir, params, optimizer) or {"step": 0, "curve": []}
    result = TrainResult(curve=list(state["curve"]), steps_done=state["step"])
    _count_tokens(result, recipe)
    model.train()
    started, step = time.perf_counter(), result.steps_done
    try:
        while step < recipe.total_steps:
            record = _train_step(model, recipe, streams, optimizer, params, step, parent, hidden_pairs)
            step += 1
            result.curve.append(record)
            result.steps_done = step
            result.run_tokens += record.get("tokens", recipe.batch_size * recipe.seq_len)
            result.seconds = time.perf_counter() - started
            _count_tokens(result, recipe)
            if on_step:
                on_step(step, record, result)
            if step % options.checkpoint_every == 0 or step == recipe.total_steps:
                save_checkpoint(checkpoint_dir, step, params, optimizer, {"curve": result.curve})
            if options.on_model_step is not None:
                options.on_model_step(step, model)
                model.train()
            if options.stop_after is not None and step - state["step"] >= options.stop_after:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        save_checkpoint(checkpoint_dir, step, params, optimizer, {"curve": result.curve})
        result.interrupted = step < recipe.total_steps
    model.eval()
    return result


def _train_step(model, recipe: CMGRecipe, streams, optimizer, params, step: int, parent, hidden_pairs) -> dict:
    stream, number = stream_position(step, recipe.rehearsal_share, recipe.examples_share)
    source = streams[stream]
    indices = batch_indices(number, recipe.batch_size, len(source), recipe.seed * 2 + STREAM_SEEDS[stream])
    batch = source.batch(indices)
    input_ids = batch["input_ids"].long()  # (B, S)
    lr = learning_rate(step, recipe.total_steps, recipe.lr, recipe.warmup_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr

    target_mask, attention = batch.get("target_mask"), batch.get("attention_mask")  # examples only
    matching = bool(hidden_pairs) and recipe.hidden_loss != "none" and target_mask is None
    output = model(input_ids=input_ids, attention_mask=attention, output_hidden_states=matching)
    logits = output.logits  # (B, S, V)
    ce = ce_loss(logits, input_ids, target_mask)
    if target_mask is not None and recipe.alpha_kd == 0:
        # on an example's output tokens the parent's KL is no retention signal (unlike on documents) and
        # its weight is 0: its forward pass is not run (a third of an adapter's example step)
        kd, parent_states = torch.zeros(()), None
    else:
        kd, parent_states = _kd_term(logits, batch, input_ids, recipe, parent, matching)
    loss = recipe.alpha_ce * ce + recipe.alpha_kd * kd
    record_extra = {}
    if matching:
        hidden = sum(hidden_state_loss(output.hidden_states[s], parent_states[p], recipe.hidden_loss)
                     for s, p in hidden_pairs) / len(hidden_pairs)
        del parent_states
        loss = loss + recipe.alpha_hidden * hidden
        record_extra["hidden"] = hidden.item()
    if stream == "general":
        loss = recipe.rehearsal_weight * loss  # l_r * L_rehearsal
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(params.values()), recipe.grad_clip)
    optimizer.step()
    return {"step": step, "stream": stream, "lr": lr, "loss": loss.item(), "ce": ce.item(), "kd": kd.item(),
            "tokens": input_ids.numel(),
            **record_extra}


def _kd_term(logits, batch, input_ids, recipe: CMGRecipe, parent, matching: bool = False):
    """(T^2-scaled KD loss, the parent's hidden states when ``matching`` else None)."""
    if "teacher_logits" in batch:  # another teacher ran on this batch (cmg/multi_teacher.py), not the parent
        if matching:
            raise ValueError("a hidden-state loss needs the parent's hidden states, not another teacher's logits")
        teacher = batch.pop("teacher_logits")  # (B, S, V); popped so backward does not keep it alive
        kd = kd_loss_full(logits, teacher, recipe.temperature)
        del teacher
        return kd, None
    if "topk_ids" in batch:
        return kd_loss_topk(logits, batch["topk_ids"].long(), batch["topk_logits"].float(),
                            batch["lse"].float(), recipe.temperature), None
    if parent is None:
        raise ValueError("no cached teacher logits and no parent to compute them")
    with torch.no_grad():  # the parent is frozen: no graph, no gradient, never updated
        if "hidden" in batch:  # cached final hidden states: only the LM head runs
            parent_logits = teacher_logits(parent, batch)  # (B, S, V)
            states = {-1: batch["hidden"].float()} if matching else None  # (B, S, D), after the final norm
        else:  # live: the whole parent runs on this batch
            output = parent(input_ids=input_ids, attention_mask=batch.get("attention_mask"),
                            output_hidden_states=matching)
            parent_logits = output.logits  # (B, S, V)
            states = dict(enumerate(output.hidden_states)) if matching else None
            if matching:
                states[-1] = output.hidden_states[-1]
    kd = kd_loss_full(logits, parent_logits, recipe.temperature, batch.get("target_mask"))
    del parent_logits  # (B, S, V) floats: free them before backward allocates the child's grads
    return kd, states


def _count_tokens(result: TrainResult, recipe: CMGRecipe) -> None:
    """Tokens trained on, per stream: an example batch counts the width it was cut to (a curve from
    before steps recorded ``tokens`` counts full batches, which is what they were)."""
    per_batch = recipe.batch_size * recipe.seq_len
    tokens = [(entry["stream"], entry.get("tokens", per_batch)) for entry in result.curve]
    result.rehearsal_tokens = sum(n for stream, n in tokens if stream == "general")
    result.domain_tokens = sum(n for stream, n in tokens if stream != "general")
