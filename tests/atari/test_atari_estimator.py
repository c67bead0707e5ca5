"""Estimator (78): the surrogate loss's autograd gradient equals the formula written by hand; coefficient gating."""
from __future__ import annotations

import math

import pytest
import torch

from sobirl_lite.atari.estimator import (bce_per_pair, hyper_term, practical_sobirl_loss, preference_logits,
                                         segment_returns, sobirl_coefficient)


def tiny_problem(B=3, T=4, A=3, n=5, seed=0):
    """Linear reward r_x(s, a) = phi(s, a) . x on B pairs of T-step segments, so grad_x r_x = phi."""
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(B, 2, T, A, n, generator=g, dtype=torch.float64)  # features of every (s_t^i, a)
    x = torch.randn(n, generator=g, dtype=torch.float64) * 0.3
    actions = torch.randint(0, A, (B, 2, T), generator=g)
    probs = torch.softmax(torch.randn(B, 2, T, A, generator=g, dtype=torch.float64), -1)
    labels = torch.tensor([1.0, 0.0, 0.3], dtype=torch.float64)[:B]
    return phi, x, actions, probs, labels


def hand_formula(phi, x, actions, probs, labels, coef):
    """(78) written out: mean_b [ (sigma(z_b) - y_b) (sum_t phi^1 - sum_t phi^2)
    + coef * l_b * sum_{i,t} (phi(s,a_t) - sum_a pi(a|s) phi(s,a)) ]."""
    B = phi.shape[0]
    grad = torch.zeros(phi.shape[-1], dtype=phi.dtype)
    for b in range(B):
        taken = torch.stack([torch.stack([phi[b, i, t, actions[b, i, t]] for t in range(phi.shape[2])])
                             for i in range(2)])  # (2, T, n)
        R = (taken @ x).sum(-1)  # (2,)
        z = R[0] - R[1]
        p = 1.0 / (1.0 + math.exp(-float(z)))
        y = float(labels[b])
        loss_b = -y * math.log(p) - (1 - y) * math.log(1 - p)
        grad_bce = (p - y) * (taken[0].sum(0) - taken[1].sum(0))
        expected_phi = (probs[b][..., None] * phi[b]).sum(-2)  # (2, T, n): sum_a pi(a|s) phi(s, a)
        score = (taken - expected_phi).sum(dim=(0, 1))  # (n,)
        grad += grad_bce + coef * loss_b * score
    return grad / B


@pytest.mark.parametrize("coef", [0.0, 0.7, 1 / 0.05])
def test_autograd_gradient_equals_estimator_78_by_hand(coef):
    phi, x, actions, probs, labels = tiny_problem()
    x = x.clone().requires_grad_(True)
    r_all = phi @ x  # (B, 2, T, A)
    loss, parts = practical_sobirl_loss(r_all, actions, labels, probs if coef else None, coef)
    (g,) = torch.autograd.grad(loss, x)
    expected = hand_formula(phi, x.detach(), actions, probs, labels, coef)
    assert torch.allclose(g, expected, rtol=1e-10, atol=1e-12), (g, expected)
    if coef:  # the second term really contributes: not just the BCE gradient
        (g_bce,) = torch.autograd.grad(bce_per_pair(preference_logits(segment_returns(
            (phi @ x).gather(-1, actions[..., None]).squeeze(-1))), labels).mean(), x)
        assert not torch.allclose(g, g_bce)


def test_policy_probabilities_are_treated_as_constants():
    phi, x, actions, probs, labels = tiny_problem()
    logits = torch.randn(probs.shape, dtype=torch.float64, requires_grad=True)
    r_all = (phi @ x).requires_grad_(True)
    loss, _ = practical_sobirl_loss(r_all, actions, labels, torch.softmax(logits, -1), 2.0)
    loss.backward()
    assert logits.grad is None or torch.count_nonzero(logits.grad) == 0


def test_hyper_term_is_zero_when_the_reward_ignores_the_action():
    B, T, A = 2, 5, 4
    r_state = torch.randn(B, 2, T, 1).expand(B, 2, T, A)
    probs = torch.softmax(torch.randn(B, 2, T, A), -1)
    assert torch.allclose(hyper_term(r_state, torch.randint(0, A, (B, 2, T)), probs), torch.zeros(B), atol=1e-6)


def test_bce_and_bradley_terry():
    returns = torch.tensor([[2.0, 1.0], [0.0, 3.0], [100.0, 0.0]])
    z = preference_logits(returns, clip=50.0)
    assert z.tolist() == [1.0, -3.0, 50.0]  # return-difference clip at 50
    y = torch.tensor([1.0, 0.0, 0.5])
    p = torch.sigmoid(z)
    manual = -(y * torch.log(p) + (1 - y) * torch.log1p(-p))
    assert torch.allclose(bce_per_pair(z[:2], y[:2]), manual[:2])


def test_clipped_pairs_get_no_bce_gradient():
    r = torch.zeros(1, 2, 3, 2, requires_grad=True)
    with torch.no_grad():
        r[0, 0] += 30.0  # R1 - R2 = 90 > 50
    loss, _ = practical_sobirl_loss(r, torch.zeros(1, 2, 3, dtype=torch.int64), torch.tensor([0.0]), None, 0.0)
    loss.backward()
    assert torch.count_nonzero(r.grad) == 0


def test_coefficient_gating():
    assert sobirl_coefficient(0, alpha=0.5) == 0.0
    assert sobirl_coefficient(100_000, alpha=0.5) == 0.0  # "once global_step > 1e5"
    assert sobirl_coefficient(100_001, alpha=0.5) == 2.0
    assert sobirl_coefficient(11, alpha=0.25, hyper_warmup_steps=10) == 4.0


def test_zero_coefficient_is_exactly_drlhf_bce():
    phi, x, actions, probs, labels = tiny_problem()
    r_all = phi @ x
    loss0, parts0 = practical_sobirl_loss(r_all, actions, labels, None, 0.0)
    bce = bce_per_pair(preference_logits(segment_returns(r_all.gather(-1, actions[..., None]).squeeze(-1))), labels)
    assert torch.equal(loss0, bce.mean()) and float(parts0["hyper"]) == 0.0
    with pytest.raises(ValueError, match="probs"):
        practical_sobirl_loss(r_all, actions, labels, None, 1.0)
