"""The distillation objective of CMG step 3 (Genesis V1, section VI.C, Equation 2).

    L_child = a_ce * L_CE + a_kd * T^2 * KL( softmax(z_p / T) || softmax(z_c / T) ) + l_r * L_rehearsal

``z_p`` and ``z_c`` are the parent's and the child's logits and T = 4 softens
the parent so the child also learns from the non-dominant tokens. The T^2
factor keeps the gradient of the KD term on the same scale as the CE term
whatever T is (Hinton et al. 2015). The KL is *forward*: teacher first, so the
child is pushed to cover every token the parent gives mass to.

Every term is per predicted token: the logits at position t predict token
t + 1, so a block of S tokens gives S - 1 predictions (positions 0..S-2) and
CE and KD are averaged over exactly the same positions.

Two KD terms share that convention:

* ``kd_loss_full`` takes the parent's full logits (B, S, V): exact.
* ``kd_loss_topk`` takes what the teacher cache stores (``breedlab.cmg.teacher``):
  the parent's top-k token ids and raw logits, and lse = logsumexp(z_p / T)
  over the FULL vocabulary. Then p_i = exp(z_i / T - lse) is exact for the
  top-k ids and so is the rest mass r = 1 - sum_i p_i. The child's side is
  coarsened the same way (q_i for the top-k ids, q_rest for everything else)
  and the loss is the exact KL between the two distributions over k + 1
  buckets. Merging outcomes can only lose information, so by the data
  processing inequality this is a LOWER BOUND of the full KL, equal to it when
  k = V (or when both distributions agree up to scale inside the rest bucket).
  What is lost is how the child spreads its rest mass: it is pushed to put
  the right total outside the top-k, not the right shape there.

  How much that is depends on T. With SmolLM2's 49k vocabulary, T = 4 makes
  the parent nearly uniform (entropy 10.4 nats against log V = 10.8 on stdlib
  code), so its top-32 tokens hold under 2% of the softened mass and the
  top-32 bound is about 5% of the full KL (a child made of the parent's first
  10 layers); at T = 1 the same bound is about 80% of the full KL.

Both KD terms compute their gradient in closed form (``_AnalyticGrad``):
(q - p) / T per token for the full KL, and per bucket for the top-k one. It
is checked against finite differences in the tests and makes a KD term over
8 x 256 x 49k logits two to three times cheaper than autograd would on this CPU.

Rehearsal (section VI.D) is the same loss on general-data batches: the caller
multiplies it by ``l_r`` (REHEARSAL_WEIGHT) and adds it, so no term here
needs to know which kind of batch it sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

TEMPERATURE = 4.0  # T in Equation 2
REHEARSAL_WEIGHT = 0.10  # l_r in Equation 2 (section VI.D)


def masked_mean(per_position: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Mean of a per-prediction loss (B, S-1) over the predictions whose target token is marked.

    ``target_mask`` (B, S) marks the tokens a loss may fall on (an example's output); position t
    predicts token t + 1, so prediction t counts when token t + 1 is marked. Every other position
    gets weight 0, so zero gradient.
    """
    weights = target_mask[:, 1:].to(per_position.dtype)  # (B, S-1)
    return (per_position * weights).sum() / weights.sum().clamp(min=1)


def ce_loss(logits: torch.Tensor, input_ids: torch.Tensor, target_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token cross-entropy, mean over the B * (S - 1) predicted tokens.

    Args:
        logits: (B, S, V) child logits; position t predicts token t + 1.
        input_ids: (B, S) the token block the logits were computed on.
        target_mask: (B, S) bool, or None: only marked target tokens count (``masked_mean``).

    Returns:
        A scalar tensor.
    """
    vocab = logits.size(-1)
    predicted = logits[:, :-1].reshape(-1, vocab)  # (B*(S-1), V)
    targets = input_ids[:, 1:].reshape(-1)  # (B*(S-1),)
    if target_mask is None:
        return F.cross_entropy(_full_precision(predicted), targets)
    per_position = F.cross_entropy(_full_precision(predicted), targets, reduction="none")
    return masked_mean(per_position.view(input_ids.shape[0], -1), target_mask)


def kd_loss_full(
    child_logits: torch.Tensor, parent_logits: torch.Tensor, temperature: float = TEMPERATURE,
    target_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """T^2 * KL(p_T || q_T) per predicted token, from the parent's full logits.

    Args:
        child_logits: (B, S, V); gradients flow here.
        parent_logits: (B, S, V); treated as constants (no gradient).
        temperature: T, dividing both sides' logits.

    Returns:
        A scalar tensor: the KL summed over the vocabulary, averaged over the
        B * (S - 1) positions that predict a next token (the same ones as CE).
    """
    _check_temperature(temperature)
    child = _full_precision(child_logits[:, :-1])  # (B, S-1, V)
    with torch.no_grad():
        # log_softmax, never log(softmax): the latter underflows to log(0) for unlikely tokens.
        log_q = F.log_softmax(child / temperature, dim=-1)  # (B, S-1, V)
        parent = parent_logits[:, :-1].to(child.dtype)  # the child's precision throughout
        log_p = F.log_softmax(parent / temperature, dim=-1)  # (B, S-1, V)
        p = log_p.exp()
        kl = (p * log_p.sub_(log_q)).sum(-1)  # (B, S-1): sum_v p (log p - log q)
        grad = log_q.exp_().sub_(p).div_(temperature)  # d kl / d child = (q - p) / T
    per_position = _AnalyticGrad.apply(child, kl, grad)  # (B, S-1)
    if target_mask is not None:
        return temperature**2 * masked_mean(per_position, target_mask)
    return temperature**2 * per_position.mean()


def kd_loss_topk(
    child_logits: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_logits: torch.Tensor,
    parent_lse: torch.Tensor,
    temperature: float = TEMPERATURE,
) -> torch.Tensor:
    """T^2 * KL over k + 1 buckets (the parent's top-k tokens and the rest), per predicted token.

    Args:
        child_logits: (B, S, V); gradients flow here.
        topk_ids: (B, S, k) the parent's top-k token ids at each position (distinct).
        topk_logits: (B, S, k) the parent's raw logits for those ids.
        parent_lse: (B, S) logsumexp(parent_logits / T) over the full vocabulary,
            computed at this same temperature (the cache records which).
        temperature: T.

    Returns:
        A scalar tensor, averaged over the B * (S - 1) predicting positions;
        a lower bound of ``kd_loss_full``, equal to it when k = V.
    """
    _check_temperature(temperature)
    child = _full_precision(child_logits[:, :-1])  # (B, S-1, V)
    ids = topk_ids[:, :-1].long()  # (B, S-1, k)
    with torch.no_grad():
        teacher_top = topk_logits[:, :-1].to(child.dtype) / temperature  # (B, S-1, k)
        log_p_top = teacher_top - parent_lse[:, :-1].to(child.dtype).unsqueeze(-1)  # exact log p_T
        kl, grad = _coarse_kl(child / temperature, ids, log_p_top)
        grad.div_(temperature)  # the chain rule through child / T
    return temperature**2 * _AnalyticGrad.apply(child, kl, grad).mean()


def _coarse_kl(
    scaled: torch.Tensor, ids: torch.Tensor, log_p_top: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(p || q) over the buckets {each top-k id, the rest} and its gradient w.r.t. ``scaled``.

    ``scaled`` is the child's logits / T (B, S', V), ``ids`` (B, S', k) and
    ``log_p_top`` (B, S', k) the parent's top-k. Returns kl (B, S') and grad
    (B, S', V): q_i - p_i on a top-k id, q_j (1 - r / q_rest) elsewhere.
    q_rest is summed over the non-top-k probabilities rather than taken as
    1 - sum(q_top), which cancels catastrophically when the child puts almost
    all its mass on the top-k; it is clamped only below 1e-38 (float32 underflow).
    """
    log_q = scaled.log_softmax(-1)  # (B, S', V)
    log_q_top = log_q.gather(-1, ids)  # (B, S', k)
    q = log_q.exp_()  # in place: one (B, S', V) buffer serves as log q, q and the gradient
    q_top = q.gather(-1, ids)
    q_rest = q.scatter_(-1, ids, 0.0).sum(-1)  # (B, S')
    tiny = torch.finfo(q.dtype).tiny
    p_top = log_p_top.exp()
    # The parent's rest mass is a difference of probabilities; rounding can take
    # it a hair below zero, and with k = V there is no rest bucket at all.
    rest_p = (1.0 - p_top.sum(-1)).clamp_(min=0.0)  # (B, S')
    if ids.size(-1) == q.size(-1):
        rest_p.zero_()
    log_q_rest = q_rest.clamp(min=tiny).log()
    kl = (p_top * (log_p_top - log_q_top)).sum(-1) + torch.xlogy(rest_p, rest_p) - rest_p * log_q_rest
    grad = q.mul_((1.0 - rest_p / q_rest.clamp(min=tiny)).unsqueeze(-1))  # rest ids; top-k ids are 0 here
    grad.scatter_(-1, ids, q_top - p_top)
    return kl, grad


class _AnalyticGrad(torch.autograd.Function):
    """Identity on a per-position loss (B, S') whose gradient w.r.t. ``logits`` (B, S', V) is given.

    The KD terms get their gradient in closed form from the softmaxes they
    compute anyway. On the 2-core CPU this halves the cost of a KD term over a
    49k vocabulary against autograd through log_softmax/gather/scatter, and
    backward keeps one (B, S', V) tensor instead of several.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grad)
        return loss.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.unsqueeze(-1), None, None


def _full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """float32 unless already float64: softmax over 49k tokens in fp16/bf16 loses the tail."""
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


def _check_temperature(temperature: float) -> None:
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")


@dataclass(frozen=True)
class DistillLoss:
    """a_ce * CE + a_kd * T^2 * KL for one domain batch (Equation 2 without rehearsal).

    The teacher is either the parent's full logits (B, S, V), for a live
    parent, or a teacher-cache batch: a mapping with "topk_ids", "topk_logits"
    and "lse" (what ``TeacherCache.batch`` returns). The rehearsal term is the
    same call on a general-data batch, scaled by ``REHEARSAL_WEIGHT`` by the
    caller.
    """

    a_ce: float = 0.5
    """Weight of the next-token cross-entropy against the data."""
    a_kd: float = 0.5
    """Weight of the distillation term (already scaled by T^2 inside)."""
    temperature: float = TEMPERATURE
    """T; must equal the cache's temperature when the teacher is a cache batch."""

    def __post_init__(self) -> None:
        _check_temperature(self.temperature)
        if self.a_ce < 0 or self.a_kd < 0:
            raise ValueError("loss weights a_ce and a_kd must not be negative")

    def __call__(
        self,
        child_logits: torch.Tensor,
        input_ids: torch.Tensor,
        teacher: torch.Tensor | dict[str, torch.Tensor],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(total, {"ce": ..., "kd": ...})``; the parts are detached, for logging."""
        ce = ce_loss(child_logits, input_ids)
        if isinstance(teacher, torch.Tensor):
            kd = kd_loss_full(child_logits, teacher, self.temperature)
        else:
            kd = kd_loss_topk(
                child_logits, teacher["topk_ids"], teacher["topk_logits"], teacher["lse"], self.temperature
            )
        total = self.a_ce * ce + self.a_kd * kd
        return total, {"ce": ce.detach(), "kd": kd.detach()}


def hidden_state_loss(student: torch.Tensor, parent: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Hidden-state distillation for one matched layer (DistilBERT's cosine, TinyBERT/Minitron's MSE).

    Args:
        student: (B, S, D) the student's hidden state at a layer.
        parent: (B, S, D) the parent's at the layer the student's was copied from (no gradient).
        kind: ``mse``: sum((s - p)^2) / sum(p^2), a squared error relative to the parent's own
            energy, so layers deep in the residual stream (norms in the tens) weigh no more than
            early ones and the term is unitless beside CE and KD; ``cosine``: mean of 1 - cos(s, p)
            per token.

    Returns:
        A scalar tensor; 0 when the student reproduces the parent exactly.
    """
    if student.shape != parent.shape:
        raise ValueError(f"hidden states differ in shape: {tuple(student.shape)} vs {tuple(parent.shape)}")
    student, parent = _full_precision(student), _full_precision(parent).detach()
    if kind == "mse":
        return (student - parent).pow(2).sum() / parent.pow(2).sum().clamp_min(1e-12)
    if kind == "cosine":
        return (1 - F.cosine_similarity(student, parent, dim=-1)).mean()
    raise ValueError(f"hidden loss must be 'mse' or 'cosine', got {kind!r}")
