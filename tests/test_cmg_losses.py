"""Equation 2's terms against hand-computed values, scipy and torch's own CE.

The hand-computed examples use V = 5 and plain ``math`` (no torch), so a bug
shared by the loss and the check cannot cancel out.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import log_softmax as np_log_softmax
from scipy.special import rel_entr

from breedlab.cmg.losses import DistillLoss, ce_loss, hidden_state_loss, kd_loss_full, kd_loss_topk

# One sequence of S = 2 tokens over V = 5: only position 0 predicts a next
# token, so position 1's logits (set to junk) must not count.
CHILD = [1.0, 2.0, 0.5, -1.0, 0.0]
PARENT = [2.0, 1.0, 0.0, 0.5, -0.5]
JUNK = [9.0, -9.0, 3.0, 0.0, 7.0]
T = 2.0
# Parent softmax(z / 2):  0.365861 0.221906 0.134593 0.172820 0.104821
# Child  softmax(z / 2):  0.227173 0.374545 0.176922 0.083572 0.137787
HAND_FULL = 0.47312013076000775  # T^2 * sum_i p_i log(p_i / q_i)
HAND_TOP2 = 0.289528107320322  # T^2 * KL over buckets {0}, {1}, {2, 3, 4}


def softmax(logits: list[float], temperature: float) -> list[float]:
    exps = [math.exp(z / temperature) for z in logits]
    return [e / sum(exps) for e in exps]


def tiny(values_at_0: list[float]) -> torch.Tensor:
    return torch.tensor([[values_at_0, JUNK]], dtype=torch.float64)  # (1, 2, 5)


def top_k_of(parent: torch.Tensor, k: int, temperature: float):
    """What the teacher cache stores for ``parent`` (B, S, V) logits."""
    top = parent.topk(k, dim=-1)
    return top.indices, top.values, torch.logsumexp(parent / temperature, dim=-1)


def random_logits(seed: int, shape=(3, 7, 40), scale=3.0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    child = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    parent = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    return child, parent


def test_hand_computed_constants_follow_from_the_definition():
    p, q = softmax(PARENT, T), softmax(CHILD, T)
    assert T**2 * sum(a * math.log(a / b) for a, b in zip(p, q)) == pytest.approx(HAND_FULL, rel=1e-12)
    rest_p, rest_q = sum(p[2:]), sum(q[2:])
    coarse = sum(p[i] * math.log(p[i] / q[i]) for i in (0, 1)) + rest_p * math.log(rest_p / rest_q)
    assert T**2 * coarse == pytest.approx(HAND_TOP2, rel=1e-12)


def test_kd_full_matches_the_hand_computed_value():
    loss = kd_loss_full(tiny(CHILD), tiny(PARENT), temperature=T)
    assert loss.item() == pytest.approx(HAND_FULL, rel=1e-10)


def test_kd_full_matches_scipy_rel_entr_on_random_logits():
    child, parent = random_logits(0)
    temperature = 4.0
    p = np.exp(np_log_softmax(parent[:, :-1].numpy() / temperature, axis=-1))
    q = np.exp(np_log_softmax(child[:, :-1].numpy() / temperature, axis=-1))
    expected = temperature**2 * rel_entr(p, q).sum() / (p.shape[0] * p.shape[1])
    assert kd_loss_full(child, parent, temperature).item() == pytest.approx(expected, rel=1e-9)
    single = kd_loss_full(child.float(), parent.float(), temperature)
    assert single.item() == pytest.approx(expected, rel=1e-5)


def test_kd_topk_matches_the_hand_computed_coarsened_kl():
    ids, values, lse = top_k_of(tiny(PARENT), 2, T)
    assert ids[0, 0].tolist() == [0, 1]
    loss = kd_loss_topk(tiny(CHILD), ids, values, lse, temperature=T)
    assert loss.item() == pytest.approx(HAND_TOP2, rel=1e-10)


def test_kd_topk_with_the_whole_vocabulary_is_the_full_kl():
    child, parent = random_logits(1)
    ids, values, lse = top_k_of(parent, parent.size(-1), 4.0)
    full = kd_loss_full(child, parent, 4.0)
    assert kd_loss_topk(child, ids, values, lse, 4.0).item() == pytest.approx(full.item(), rel=1e-10)


def test_kd_topk_is_a_lower_bound_that_grows_with_k():
    child, parent = random_logits(2)
    full = kd_loss_full(child, parent, 4.0).item()
    previous = 0.0
    for k in (1, 2, 5, 10, 20, 39):
        approx = kd_loss_topk(child, *top_k_of(parent, k, 4.0), 4.0).item()
        # Coarser buckets never see more divergence (data processing inequality);
        # top-(k+1) buckets refine top-k ones, so the bound tightens as k grows.
        assert 0.0 <= previous <= approx + 1e-12 <= full + 2e-12
        previous = approx


def test_kd_losses_vanish_when_child_equals_parent():
    _, parent = random_logits(3)
    assert kd_loss_full(parent.clone(), parent, 4.0).item() == pytest.approx(0.0, abs=1e-12)
    top4 = top_k_of(parent, 4, 4.0)
    assert kd_loss_topk(parent.clone(), *top4, 4.0).item() == pytest.approx(0.0, abs=1e-12)


def test_gradients_reach_the_child_logits_only():
    child, parent = random_logits(4)
    child.requires_grad_(True)
    parent.requires_grad_(True)
    ids, values, lse = top_k_of(parent, 6, 4.0)
    values, lse = values.detach().requires_grad_(True), lse.detach().requires_grad_(True)
    for loss in (kd_loss_full(child, parent, 4.0), kd_loss_topk(child, ids, values, lse, 4.0)):
        child.grad = None
        loss.backward()
        assert child.grad is not None and torch.isfinite(child.grad).all() and child.grad.abs().sum() > 0
        assert child.grad[:, -1].abs().max() == 0  # the last position predicts nothing
    assert parent.grad is None and values.grad is None and lse.grad is None


# Both KD terms compute their gradient in closed form (losses._AnalyticGrad):
# check it against finite differences and against autograd on the textbook formula.


@pytest.mark.parametrize("k", [1, 3, 9])
def test_kd_gradients_match_finite_differences(k):
    child, parent = random_logits(5, shape=(2, 4, 9))
    ids, values, lse = top_k_of(parent, k, 4.0)
    child.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: kd_loss_topk(c, ids, values, lse, 4.0), (child,))
    assert torch.autograd.gradcheck(lambda c: kd_loss_full(c, parent, 4.0), (child,))


def test_kd_full_gradient_matches_autograd_through_kl_div():
    child, parent = random_logits(11)
    child.requires_grad_(True)
    kd_loss_full(child, parent, 4.0).backward()
    ours, child.grad = child.grad, None
    log_q = F.log_softmax(child[:, :-1] / 4.0, dim=-1)
    log_p = F.log_softmax(parent[:, :-1] / 4.0, dim=-1)
    reference = 16.0 * F.kl_div(log_q, log_p, reduction="sum", log_target=True) / (3 * 6)
    reference.backward()
    torch.testing.assert_close(ours, child.grad, rtol=1e-10, atol=1e-14)


def test_half_precision_child_logits_get_half_precision_gradients():
    child, parent = random_logits(12)
    child = child.half().requires_grad_(True)
    loss = kd_loss_topk(child, *top_k_of(parent, 5, 4.0), 4.0) + kd_loss_full(child, parent.half(), 4.0)
    assert loss.dtype == torch.float32  # computed in float32 whatever the input
    loss.backward()
    assert child.grad.dtype == torch.float16 and torch.isfinite(child.grad).all()


def test_kd_topk_stays_finite_when_the_child_ignores_the_rest():
    # The child puts ~all its mass on the parent's top-2: q_rest ~ 1e-30, where
    # computing it as 1 - sum(q_top) would give 0 and log(0).
    child, parent = random_logits(6, shape=(1, 3, 12))
    ids, values, lse = top_k_of(parent, 2, 4.0)
    child = torch.full_like(child, -150.0).scatter(-1, ids, 150.0).requires_grad_(True)
    loss = kd_loss_topk(child.float(), ids, values, lse, 4.0)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 1.0
    assert torch.isfinite(child.grad).all() and child.grad.abs().sum() > 0


def test_ce_equals_torch_cross_entropy_on_shifted_labels():
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 6, 11, generator=generator)
    input_ids = torch.randint(0, 11, (2, 6), generator=generator)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 11), input_ids[:, 1:].reshape(-1))
    assert ce_loss(logits, input_ids).item() == pytest.approx(expected.item(), rel=1e-6)
    # Hand value for one prediction: -log softmax(CHILD)[3].
    hand = -(CHILD[3] - math.log(sum(math.exp(z) for z in CHILD)))
    assert ce_loss(tiny(CHILD), torch.tensor([[0, 3]])).item() == pytest.approx(hand, rel=1e-10)


def test_ce_equals_the_models_own_loss(pico_parent_dir):
    from breedlab.models.io import load_model

    model, _ = load_model(pico_parent_dir)
    input_ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        out = model(input_ids=input_ids, labels=input_ids)
    assert ce_loss(out.logits, input_ids).item() == pytest.approx(out.loss.item(), rel=1e-5)


def test_distill_loss_combines_the_terms_for_either_teacher():
    child, parent = random_logits(9)
    input_ids = torch.randint(0, 40, child.shape[:2], generator=torch.Generator().manual_seed(9))
    loss = DistillLoss(a_ce=0.3, a_kd=0.7, temperature=4.0)
    total, parts = loss(child, input_ids, parent)
    assert parts["ce"].item() == pytest.approx(ce_loss(child, input_ids).item())
    assert parts["kd"].item() == pytest.approx(kd_loss_full(child, parent, 4.0).item())
    assert total.item() == pytest.approx(0.3 * parts["ce"].item() + 0.7 * parts["kd"].item())
    ids, values, lse = top_k_of(parent, 40, 4.0)
    cached_total, _ = loss(child, input_ids, {"topk_ids": ids, "topk_logits": values, "lse": lse})
    assert cached_total.item() == pytest.approx(total.item(), rel=1e-10)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_bad_temperatures_are_refused(temperature):
    child, parent = random_logits(10)
    with pytest.raises(ValueError):
        kd_loss_full(child, parent, temperature)
    with pytest.raises(ValueError):
        DistillLoss(temperature=temperature)


def test_hidden_state_loss_equals_a_hand_computation():
    # one token of two dims per position: student (1, 0) and (0, 2); parent (1, 1) and (0, 1)
    student = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # (B=1, S=2, D=2)
    parent = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])
    # mse: sum of squared errors (0 + 1) + (0 + 1) = 2 over the parent's energy (1 + 1) + (0 + 1) = 3
    assert hidden_state_loss(student, parent, "mse").item() == pytest.approx(2 / 3)
    # cosine: 1 - cos: (1 - 1/sqrt(2)) for the first token, (1 - 1) for the second; mean over tokens
    assert hidden_state_loss(student, parent, "cosine").item() == pytest.approx((1 - 1 / math.sqrt(2)) / 2)


def test_hidden_state_loss_vanishes_on_a_match_and_trains_only_the_student():
    parent = torch.randn(2, 3, 8)
    student = parent.clone().requires_grad_(True)
    for kind in ("mse", "cosine"):
        assert hidden_state_loss(student, parent, kind).item() == pytest.approx(0.0, abs=1e-6)
    moved = (parent + 0.1 * torch.randn(2, 3, 8)).requires_grad_(True)
    teacher = parent.clone().requires_grad_(True)
    hidden_state_loss(moved, teacher, "mse").backward()
    assert moved.grad is not None and teacher.grad is None
    with pytest.raises(ValueError, match="differ in shape"):
        hidden_state_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="'mse' or 'cosine'"):
        hidden_state_loss(parent, parent, "l1")
