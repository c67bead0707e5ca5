"""The practical hyper-gradient (78) as a loss whose autograd gradient *is* the estimator (spec §6.1).

For a pair of segments ``d = (tau^1, tau^2)`` sampled from the current policy ``pi_k``, with label ``y`` (1 = the first
segment is preferred) and Bradley--Terry probability ``P_x = sigma(R_x(tau^1) - R_x(tau^2))`` (§5), the upper-level
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
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


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


def hyper_term(r_all: torch.Tensor, actions: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``hypers = sum_{i,t} [ r_x(s_t^i, a_t^i) - sum_a pi(a|s_t^i) r_x(s_t^i, a) ]`` per pair.

    Args:
        r_all: ``(B, 2, T, |A|)`` rewards of every action (with gradient).
        actions: ``(B, 2, T)`` int64 taken actions.
        probs: ``(B, 2, T, |A|)`` ``pi_k(a|s)``; treated as a constant (detached).

    Returns ``(B,)``.
    """
    taken = r_all.gather(-1, actions[..., None]).squeeze(-1)  # (B, 2, T)
    expected = (probs.detach() * r_all).sum(-1)  # (B, 2, T): exact expectation over the actions
    return (taken - expected).sum(dim=(1, 2))


def sobirl_coefficient(global_step: int, alpha: float, hyper_warmup_steps: int = 100_000) -> float:
    """``1/alpha_k`` once ``global_step > hyper_warmup_steps``, else 0 (the code's warm-up gating)."""
    return 1.0 / alpha if global_step > hyper_warmup_steps else 0.0


def practical_sobirl_loss(r_all: torch.Tensor, actions: torch.Tensor, labels: torch.Tensor,
                          probs: torch.Tensor | None, coef: float, clip: float = 50.0):
    """Surrogate loss of estimator (78) for a mini-batch of ``B`` segment pairs.

    Args:
        r_all: ``(B, 2, T, |A|)`` reward-net outputs for every step of both segments.
        actions: ``(B, 2, T)`` int64.
        labels: ``(B,)`` float in [0, 1], 1 = first segment preferred.
        probs: ``(B, 2, T, |A|)`` current policy probabilities, or ``None`` when ``coef == 0``.
        coef: ``1/alpha_k`` (SoBiRL after the warm-up) or 0 (SoBiRL warm-up, DRLHF).
        clip: Bradley--Terry return-difference clip.

    Returns ``(loss, parts)``: the scalar loss and a dict of detached scalars ``bce`` (mean BCE), ``hyper``
    (mean ``hypers``) and ``surrogate`` (mean ``BCE * coef * hypers``).
    """
    r_taken = r_all.gather(-1, actions[..., None]).squeeze(-1)  # (B, 2, T)
    bce = bce_per_pair(preference_logits(segment_returns(r_taken), clip), labels)  # (B,)
    loss = bce.mean()
    parts = {"bce": bce.detach().mean()}
    if coef != 0.0:
        if probs is None:
            raise ValueError("probs are needed when coef != 0")
        hypers = hyper_term(r_all, actions, probs)  # (B,)
        surrogate = (bce.detach() * coef * hypers).mean()
        loss = loss + surrogate
        parts["hyper"] = hypers.detach().mean()
        parts["surrogate"] = surrogate.detach()
    else:
        zero = torch.zeros((), device=r_all.device)
        parts["hyper"], parts["surrogate"] = zero, zero
    return loss, parts
