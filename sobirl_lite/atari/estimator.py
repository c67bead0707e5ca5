"""The practical hyper-gradient (78) as a loss whose autograd gradient *is* the estimator (Appendix I.1 of Yang et al.).

For a pair of segments ``d = (tau^1, tau^2)`` sampled from the current policy ``pi_k``, with label ``y`` (1 = the first
segment is preferred) and Bradley--Terry probability ``P_x = sigma(R_x(tau^1) - R_x(tau^2))`` (Section 3.3 of Yang et al.), the upper-level
loss is ``l_x(d) = BCE(y, P_x)`` and (78) reads

    grad = E_d[ grad_x l_x(d) ]
         + (1/alpha_k) E_d[ l_x(d) * sum_{i=1,2} sum_t ( grad_x r_x(s_t^i, a_t^i) - sum_a pi_k(a|s_t^i) grad_x r_x(s_t^i, a) ) ].

The second term is the *one-step truncation* of ``grad Q - grad V`` in (15): ``grad Q = grad r + gamma E grad V`` and
``grad V = E_pi grad Q`` are cut after their first term, so nothing beyond the reward of the visited state is needed.
It is a score-function term: ``l_x`` multiplies ``(1/alpha) grad_x log pi_x`` of the soft-optimal policy, in the
truncated form ``(r_x(s,a) - E_pi r_x(s,.))/alpha``.

The code writes it as a surrogate (authors' ``RLHF.py``)::

    hypers = sum_{i,t} [ r_x(s_t, a_t) - sum_a pi_k(a|s_t) r_x(s_t, a) ]        # (B,), pi_k detached
    loss   = mean(BCE) + mean(BCE.detach() * coef * hypers)                     # coef = 1/alpha_k or 0

whose gradient is exactly (78) (``tests/atari/test_estimator.py`` checks it against the formula written by hand).
``coef`` is 0 (pure BCE, i.e. DRLHF's loss) until ``global_step > hyper_warmup_steps`` (10^5 in the code).

Two variants of the hyper term, neither of them the paper's algorithm, enter through the same function (chapter 9
measures them; the defaults are the paper's (78)):

* ``expectation="uniform"``: the expectation ``E_a r_x(s, a)`` under the uniform distribution over actions instead of
  ``pi_k``. This is what the authors' code effectively computes: its actor sees frames divided by 255 twice, so its
  ``pi_k`` is close to uniform in that term.
* ``baseline="leave-one-out"``: the weight ``l_x(d_b)`` of pair ``b`` minus the mean of ``l_x`` over the *other*
  pairs of the mini-batch, as chapter 7's tabular estimator does. ``l_x >= 0`` has no baseline in (78), so without
  one every pair pushes the reward of its taken actions the same way; with one, only pairs explained worse than
  average do. A mini-batch of one pair has no other pairs: its baseline is 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import HYPER_BASELINES, HYPER_EXPECTATIONS


def segment_returns(r_taken: torch.Tensor) -> torch.Tensor:
    """Undiscounted segment returns ``R_x(tau)``: ``(B, 2, T)`` -> ``(B, 2)``."""
    return r_taken.sum(-1)


def preference_logits(returns: torch.Tensor, clip: float = 50.0) -> torch.Tensor:
    """Bradley--Terry logit ``R_x(tau^1) - R_x(tau^2)`` clipped to ``[-clip, clip]``: ``(B, 2)`` -> ``(B,)``.

    ``sigma(logit)`` is the model's probability that the first segment is preferred.
    """
    return (returns[:, 0] - returns[:, 1]).clamp(-clip, clip)


def bce_per_pair(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``l_x(d) = -y log sigma(z) - (1 - y) log(1 - sigma(z))`` per pair: ``(B,), (B,)`` -> ``(B,)``."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none")



def hyper_term(r_all: torch.Tensor, actions: torch.Tensor, probs: torch.Tensor | None) -> torch.Tensor:
    """``hypers = sum_{i,t} [ r_x(s_t^i, a_t^i) - sum_a pi(a|s_t^i) r_x(s_t^i, a) ]`` per pair.

    Args:
        r_all: ``(B, 2, T, |A|)`` rewards of every action (with gradient).
        actions: ``(B, 2, T)`` int64 taken actions.
        probs: ``(B, 2, T, |A|)`` ``pi_k(a|s)``, treated as a constant (detached); ``None`` for the uniform
            distribution over the ``|A|`` actions (the ``expectation="uniform"`` variant).

    Returns ``(B,)``.
    """
    taken = r_all.gather(-1, actions[..., None]).squeeze(-1)  # (B, 2, T)
    if probs is None:
        expected = r_all.mean(-1)  # (B, 2, T): uniform expectation over the actions
    else:
        expected = (probs.detach() * r_all).sum(-1)  # (B, 2, T): exact expectation over the actions under pi_k
    return (taken - expected).sum(dim=(1, 2))


def leave_one_out(losses: torch.Tensor) -> torch.Tensor:
    """``l_b - mean_{j != b} l_j`` for each of the ``B`` pairs: ``(B,)`` -> ``(B,)``; ``B = 1`` gives ``l`` itself."""
    n = losses.numel()
    if n < 2:
        return losses
    return losses - (losses.sum() - losses) / (n - 1)


def sobirl_coefficient(global_step: int, alpha: float, hyper_warmup_steps: int = 100_000) -> float:
    """``1/alpha_k`` once ``global_step > hyper_warmup_steps``, else 0 (the code's warm-up gating)."""
    return 1.0 / alpha if global_step > hyper_warmup_steps else 0.0


def practical_sobirl_loss(r_all: torch.Tensor, actions: torch.Tensor, labels: torch.Tensor,
                          probs: torch.Tensor | None, coef: float, clip: float = 50.0,
                          expectation: str = "policy", baseline: str = "none"):
    """Surrogate loss of estimator (78) for a mini-batch of ``B`` segment pairs.

    Args:
        r_all: ``(B, 2, T, |A|)`` reward-net outputs for every step of both segments.
        actions: ``(B, 2, T)`` int64.
        labels: ``(B,)`` float in [0, 1], 1 = first segment preferred.
        probs: ``(B, 2, T, |A|)`` current policy probabilities, or ``None`` when ``coef == 0``.
        coef: ``1/alpha_k`` (SoBiRL after the warm-up) or 0 (SoBiRL warm-up, DRLHF).
        clip: Bradley--Terry return-difference clip.
        expectation: ``"policy"`` (the paper: ``E_{a ~ pi_k}``) or ``"uniform"`` (``probs`` is then not used).
        baseline: ``"none"`` (the paper) or ``"leave-one-out"`` (see the module doc).

    Returns ``(loss, parts)``: the scalar loss and a dict of detached scalars ``bce`` (mean BCE), ``hyper``
    (mean ``hypers``), ``surrogate`` (mean ``weight * coef * hypers``), ``hyper_weight`` (the mean weight of a pair's
    hyper term: ``l_x``, or ``l_x`` minus its baseline) and ``saturated`` (the fraction of pairs whose logit sits at
    the clip, where the BCE gradient is exactly zero).
    """
    if expectation not in HYPER_EXPECTATIONS:
        raise ValueError(f"expectation must be one of {HYPER_EXPECTATIONS}, got {expectation!r}")
    if baseline not in HYPER_BASELINES:
        raise ValueError(f"baseline must be one of {HYPER_BASELINES}, got {baseline!r}")
    r_taken = r_all.gather(-1, actions[..., None]).squeeze(-1)  # (B, 2, T)
    logits = preference_logits(segment_returns(r_taken), clip)
    bce = bce_per_pair(logits, labels)  # (B,)
    loss = bce.mean()
    parts = {"bce": bce.detach().mean(), "saturated": (logits.detach().abs() >= clip).float().mean()}
    zero = torch.zeros((), device=r_all.device)
    if coef != 0.0:
        if expectation == "policy" and probs is None:
            raise ValueError("probs are needed when coef != 0 and expectation='policy'")
        hypers = hyper_term(r_all, actions, probs if expectation == "policy" else None)  # (B,)
        weight = bce.detach()
        if baseline == "leave-one-out":
            weight = leave_one_out(weight)
        surrogate = (weight * coef * hypers).mean()
        loss = loss + surrogate
        parts["hyper"] = hypers.detach().mean()
        parts["surrogate"] = surrogate.detach()
        parts["hyper_weight"] = weight.mean()
    else:
        parts["hyper"], parts["surrogate"], parts["hyper_weight"] = zero, zero, zero
    return loss, parts
