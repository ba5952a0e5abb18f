"""Training sources whose teacher is not the parent: one teacher per pool of blocks.

Distilling several specialists into one child (``operators/merge_distill.py``) needs
each block's KD target to come from the specialist of that block's domain. Two
ways, both ``BatchSource``s the CMG loop (``train.py``) takes as they are:

* ``LiveTeacher``: the teacher runs on every batch, full vocabulary; the batch
  carries ``teacher_logits`` (B, S, V) and ``train._kd_term`` uses them in place
  of the parent's. Exact, and right for any teacher.
* a ``topk`` teacher cache (``teacher.py``) computed from the specialist: it
  stores the teacher's own logits, so it is model-agnostic (the ``hidden``
  format is not: its logits are recomputed with the parent's LM head).

``MixedPools`` joins several such sources into one pool: a batch may mix rows
of different pools, and every row keeps its own teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LiveTeacher:
    """Blocks (N, S) and the model that teaches on them, run under ``no_grad`` for each batch."""

    blocks: torch.Tensor  # (N, S)
    teacher: torch.nn.Module

    def __len__(self) -> int:
        return self.blocks.shape[0]

    @torch.no_grad()  # the teacher is frozen: no graph, no gradient, never updated
    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        input_ids = self.blocks[indices]  # (B, S)
        return {"input_ids": input_ids, "teacher_logits": self.teacher(input_ids=input_ids).logits.float()}


@dataclass
class MixedPools:
    """Several sources seen as one pool: row ``i`` of the whole is row ``i - start`` of its part.

    Every part must return the same tensors (all live, or all top-k caches with one k).
    """

    parts: list  # BatchSource each

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("MixedPools needs at least one source")
        self.starts = [0]
        for part in self.parts:
            self.starts.append(self.starts[-1] + len(part))

    def __len__(self) -> int:
        return self.starts[-1]

    def part_of(self, row: int) -> int:
        return max(p for p, start in enumerate(self.starts[:-1]) if start <= row)

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = [int(i) for i in indices.reshape(-1)]
        owners = [self.part_of(row) for row in rows]
        pieces: dict[int, dict[str, torch.Tensor]] = {}
        for part in sorted(set(owners)):  # each teacher runs once, on its own rows only
            local = [row - self.starts[part] for row, owner in zip(rows, owners) if owner == part]
            pieces[part] = self.parts[part].batch(torch.tensor(local, dtype=torch.long))
        names = set(pieces[owners[0]])
        if any(set(piece) != names for piece in pieces.values()):
            raise ValueError("the pools of a MixedPools give different tensors; mix only one teacher format")
        taken = {part: 0 for part in pieces}
        out: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        for owner in owners:  # back into the order asked for
            for name in names:
                out[name].append(pieces[owner][name][taken[owner]:taken[owner] + 1])
            taken[owner] += 1
        return {name: torch.cat(parts) for name, parts in out.items()}
