"""What to breed (the recipe, hashed into the child's identity) and how to run it (options, not hashed).

Defaults follow Genesis V1 section VI: T = 4, rehearsal weight 0.10 on a 5%
share of general data, LoRA on the attention and MLP projections only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

TRAINABLE_MODES = ("lora", "lora+norms", "full")
HIDDEN_LOSSES = ("none", "mse", "cosine")
STRATEGIES = ("profiled", "width", "depth", "mixed", "uniform", "random", "scratch")  # step 2 (student.py)
ORDERS = ("shuffled", "document")  # how a token budget reads a split (cmg/blocks.py)
LEGACY_ORDER = "document"
"""The order every profile, cache and child had before the order was recorded: leaving it out of
their identities keeps those artifacts found (``blocks.order_record``, the breed key)."""
TEACHER_MODES = ("hidden", "topk", "live")
LATER_OPTIONAL = ("examples_share",)
"""Training fields added after recipes were hashed: left out of ``to_dict`` while unset."""
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True, kw_only=True)
class TrainingFields:
    """The fields every training recipe shares (the CMG's, the adapter fine-tune's, the merge-distill's).

    Recipes inherit them, so a recipe stays one flat record: its YAML, its ``to_dict`` and the hash of
    its identity list every field side by side. A recipe whose default differs redeclares that field.
    Keyword-only: a positional value could land in the wrong field.
    """

    steps: int = 200
    """Optimiser steps (``tokens`` overrides it when set)."""
    tokens: int | None = None
    """Training-token budget; steps = ceil(tokens / (batch_size * seq_len))."""
    batch_size: int = 8
    seq_len: int = 256
    lr: float = 2e-3
    """Peak learning rate (linear warm-up, then cosine to 10%)."""
    warmup_steps: int = 10
    grad_clip: float = 1.0
    temperature: float = 4.0
    """T in Equation 2: softens the teacher's distribution."""
    alpha_ce: float = 0.5
    """a_ce: weight of cross-entropy on the true next token."""
    alpha_kd: float = 0.5
    """a_kd: weight of T^2 * KL(teacher_T || student_T)."""
    rehearsal_weight: float = 0.10
    """l_r: weight of the loss on general-data batches."""
    rehearsal_share: float = 0.05
    """Share of training batches (so tokens) drawn from the general corpus, interleaved evenly."""
    lora_rank: int = 16
    lora_alpha: int = 32
    teacher: str = "hidden"
    """Where the teacher's logits come from: hidden (its final hidden states cached once, logits
    recomputed exactly by its LM head) | topk (top-k logits + exact rest mass cached: a lower bound
    of the KL, loose at T=4) | live (the teacher runs on every batch). Each recipe says which it takes."""
    pool_tokens: int = 65_536
    """Domain tokens training batches are drawn from (and the teacher's logits are cached for)."""
    rehearsal_pool_tokens: int = 32_768
    """General-corpus tokens rehearsal batches are drawn from (only ``rehearsal_share`` of steps use them)."""
    data_order: str = "shuffled"
    """How a token budget samples a split: shuffled (seeded, whole split) | document (stored order,
    the first sources only; how results before the fix were measured). See ``cmg/blocks.py``."""
    seed: int = 0
    examples_share: float | None = None
    """Share of the non-rehearsal steps trained on the niche's examples (``<domain>/examples/train``):
    the prompt under the parent's chat template, the loss (CE + KD from the live parent) on the output
    tokens only. The rest train on its documents. None: documents only."""

    @property
    def total_steps(self) -> int:
        if self.tokens is None:
            return self.steps
        return max(1, math.ceil(self.tokens / (self.batch_size * self.seq_len)))

    def to_dict(self) -> dict[str, Any]:
        """Every field; one added after recipes were first hashed (``LATER_OPTIONAL``) only when set,
        so a recipe that does not use it keeps the identity it always had."""
        values = asdict(self)
        return {k: v for k, v in values.items() if not (k in LATER_OPTIONAL and v is None)}

    def check_examples(self) -> None:
        if self.examples_share is not None and not 0 < self.examples_share <= 1:
            raise ValueError(f"examples_share must be in (0, 1], got {self.examples_share}")
        if self.examples_share and self.teacher == "topk":
            raise ValueError("examples are distilled from the live parent: teacher 'hidden' or 'live', not 'topk'")

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown recipe fields: {sorted(unknown)}")
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class CMGRecipe(TrainingFields):
    """Everything that determines the child. Two equal recipes on the same data give the same child."""

    domain: str
    """Domain whose ``<domain>/train`` dataset the child specialises in."""
    ratio: float = 0.3
    """p: the student's parameter count as a fraction of the parent's (0.05 to 0.5)."""
    strategy: str = "profiled"
    """Step 2: profiled (the paper's: depth first, layers by residual update) | width (every layer kept,
    MLP channels then query heads pruned by importance) | depth (layers dropped by block influence,
    first and last kept) | mixed (width + at most ``max_depth_drop`` of the layers, the shape chosen by
    a proxy search) | uniform (every k-th layer) | random | scratch (same shape, random init)."""
    max_depth_drop: float = 0.25
    """``mixed``: the largest share of layers the proxy search may drop (ShortGPT: 20-25% heals)."""
    proxy_tokens: int = 4096
    """``mixed``: calibration tokens each candidate shape is scored on by the proxy search."""
    min_speedup: float | None = None
    """``mixed``: if set, the search keeps only shapes whose decode, served in fp16, is at least this
    many times the parent's fp16 decode (measured, ``shape_speed.py``), then takes the lowest KL among
    them. None: the lowest KL at any speed (at p = 0.8 that keeps every layer, which in fp16 decodes
    no faster than the parent)."""
    calibration_general_share: float = 0.0
    """Share of the profiling tokens drawn from general text (cross-calibration, arXiv 2502.18424)."""
    count_embeddings: bool = False
    """Whether p counts the (tied) embedding matrix; SmolLM2's is 21% of it, so False lets p go below that."""
    hidden_loss: str = "none"
    """none | mse (mean squared error over the parent's mean square, per matched layer) | cosine
    (1 - cos per token): hidden-state distillation (DistilBERT, TinyBERT, Minitron)."""
    alpha_hidden: float = 0.0
    """Weight of the hidden-state term (summed over the matched layers, averaged)."""
    hidden_layers: int = 0
    """Intermediate student layers matched to the parent layer each was copied from (evenly spread),
    besides the final hidden state, which is always matched when ``hidden_loss`` is not none."""
    domain_head_coverage: float | None = None
    """If set, ship a domain head (``domain_head.py``): logits for the ids covering this share of the
    domain's training tokens plus the byte and special tokens, with a fallback to the full head."""
    trainable: str = "lora"
    """lora (adapters only, the paper's) | lora+norms | full (every student weight, no adapters)."""
    teacher_topk: int = 32
    """k for ``teacher="topk"``."""
    profile_tokens: int = 16_384
    """Domain tokens the parent is profiled on (step 1)."""
    def __post_init__(self) -> None:
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.trainable not in TRAINABLE_MODES:
            raise ValueError(f"trainable must be one of {TRAINABLE_MODES}, got {self.trainable!r}")
        if self.teacher not in TEACHER_MODES:
            raise ValueError(f"teacher must be one of {TEACHER_MODES}, got {self.teacher!r}")
        if not 0.0 <= self.rehearsal_share < 1.0:
            raise ValueError("rehearsal_share must be in [0, 1)")
        if self.hidden_loss not in HIDDEN_LOSSES:
            raise ValueError(f"hidden_loss must be one of {HIDDEN_LOSSES}, got {self.hidden_loss!r}")
        if not 0.0 <= self.calibration_general_share < 1.0 or not 0.0 <= self.max_depth_drop < 1.0:
            raise ValueError("calibration_general_share and max_depth_drop must be in [0, 1)")
        if self.hidden_layers and self.teacher != "live":
            raise ValueError("intermediate hidden states are recomputed: they need teacher 'live'")
        if self.hidden_loss != "none" and self.teacher == "topk":
            raise ValueError("a hidden-state loss needs the parent's hidden states: teacher 'hidden' or 'live'")
        if self.domain_head_coverage is not None and not 0 < self.domain_head_coverage <= 1:
            raise ValueError("domain_head_coverage must be in (0, 1]")
        if self.data_order not in ORDERS:
            raise ValueError(f"data_order must be one of {ORDERS}, got {self.data_order!r}")
        if self.min_speedup is not None and self.min_speedup <= 0:
            raise ValueError(f"min_speedup must be positive, got {self.min_speedup}")
        if self.temperature <= 0 or self.steps < 1 or self.batch_size < 1:
            raise ValueError("temperature, steps and batch_size must be positive")
        self.check_examples()


# Named recipes: configured instances of CMGRecipe, not subclasses (mergekit's variants).
PRESETS: dict[str, dict[str, Any]] = {
    # Genesis V1 as written: depth first by profiled layers, LoRA adapters only, T = 4, 5% rehearsal.
    "paper": {"strategy": "profiled", "trainable": "lora", "temperature": 4.0, "alpha_ce": 0.5,
              "alpha_kd": 0.5, "lr": 2e-3},
    # What heals on a CPU budget (issue 11): width first with at most 25% of layers dropped, chosen
    # by the proxy search on a 1:1 domain:general calibration mix; every weight trains; KD at T = 1
    # with the final hidden state matched; half of the batches are general text at full weight, drawn
    # from a 65k-token pool, and a domain head at 99.9% coverage. A 24k-token sweep on SmolLM2
    # (docs/RESULTS.md) chose p = 0.8, lr 3e-4 and the 50% share. With budgets sampling the whole
    # split, the 1:1 mix and the 65k pool took medical's general PPL from 1.21x to 1.18x the parent's
    # (domain accuracy 98.6% -> 97.8%), so they replaced 3:1 and 32k.
    "compact": {"strategy": "mixed", "ratio": 0.8, "trainable": "full", "temperature": 1.0,
                "alpha_ce": 0.2, "alpha_kd": 0.8, "hidden_loss": "mse", "alpha_hidden": 1.0,
                "lr": 3e-4, "warmup_steps": 10, "rehearsal_share": 0.5, "rehearsal_weight": 1.0,
                "rehearsal_pool_tokens": 65_536, "calibration_general_share": 0.5,
                "domain_head_coverage": 0.999},
}


def preset_recipe(name: str, domain: str, **overrides: Any) -> CMGRecipe:
    """The named recipe for ``domain``, with ``overrides`` on top (unknown fields refused)."""
    if name not in PRESETS:
        raise ValueError(f"unknown recipe preset {name!r}; choose one of {', '.join(PRESETS)}")
    return CMGRecipe.from_dict({"domain": domain, **PRESETS[name], **overrides})


@dataclass(frozen=True)
class RunOptions:
    """How to run a breed: never part of the child's identity."""

    checkpoint_every: int = 25
    """Steps between resumable checkpoints."""
    threads: int | None = None
    """torch threads (None: leave torch's default)."""
    progress: bool = True
    stop_after: int | None = None
    """Stop (as if interrupted) after this many steps of this run: for tests of resuming."""
    work_dir: Path | None = None
    """Where checkpoints go; default ``<home>/cache/breeds``."""
    actor: str = "breeder"
    """Identity recorded as the candidate's creator (governance keeps it from approving its own work)."""
    display: Any = None
    """A ``cmg.progress.SharedDisplay`` to draw the progress into (the demo's live display); None: its own."""
    on_model_step: Any = None
    """``(step, model)`` after every step's checkpoint: a recipe search reads the validation curve here.
    It may read the model (in eval mode, without gradients) and must leave it as it found it."""
