"""Preference data: segment pairs, synthetic labels, the FIFO preference buffer, reward learning and its accuracy.

The pieces of the upper level of Algorithm 3 (lines 3-4, Appendix I.1 of Yang et al.; reward settings of Appendix I.2):

* **fragmenter** -- :func:`sample_segment_pairs` cuts 25-step segments from the newest ``inner_steps`` transitions of
  the replay buffer (the rollouts of the current policy ``pi_k``), uniformly at random, with replacement, inside one
  life of one game;
* **gatherer** -- :func:`synthetic_labels` plays the human: the segment with the larger *clipped* true return is
  preferred, either sampled from Bradley--Terry, ``y ~ Bernoulli(sigma((G^1 - G^2) / T))`` (the authors' code), or
  deterministically (``y = 1[G^1 > G^2]``, 1/2 on ties; the paper's wording);
* :class:`PreferenceBuffer` -- FIFO of the last 3000 labelled pairs, stored as uint8 frames on the device;
* :class:`RewardLearner` -- one AdamW epoch over the buffer in mini-batches of 64 on the loss of
  :func:`~.estimator.practical_sobirl_loss` (estimator (78) for SoBiRL, BCE for DRLHF);
* :func:`preference_accuracy` / :func:`pair_accuracy` -- how often the reward model orders a pair as the true returns
  do, on the buffer (training pairs) or on new pairs before it has trained on them (held-out).
"""
from __future__ import annotations

import numpy as np
import torch

from .estimator import practical_sobirl_loss, preference_logits


def new_pairs_schedule(iteration: int, total_pairs: int = 9000, initial_pairs: int = 600,
                       schedule_iterations: int = 2000, pairs_per_iter: int = 0) -> int:
    """How many new pairs outer iteration ``iteration`` gathers.

    Iteration 0 is the warm-up (``initial_pairs``). Afterwards the authors' configuration spreads the remaining
    ``total_pairs - initial_pairs`` comparisons over ``schedule_iterations`` iterations with the hyperbolic weights
    ``1/(1 + t)``, ``t`` evenly spaced in [0, 1], rounded so that the counts add up exactly (the imitation library
    rounds the cumulative shares): 6 pairs at the start, 3 at the end (the authors' code). Iterations past the schedule keep
    its last value. ``pairs_per_iter > 0`` replaces the schedule by a constant.
    """
    if iteration == 0:
        return int(initial_pairs)
    if pairs_per_iter > 0:
        return int(pairs_per_iter)
    t = np.linspace(0.0, 1.0, schedule_iterations)
    weights = 1.0 / (1.0 + t)
    cumulative = np.round(max(total_pairs - initial_pairs, 0) * np.cumsum(weights) / weights.sum())
    counts = np.diff(cumulative, prepend=0.0)
    return int(counts[min(iteration, schedule_iterations) - 1])


def synthetic_labels(true_returns: torch.Tensor, mode: str = "sampled", temperature: float = 1.0,
                     clip: float = 50.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Labels ``y`` ``(n,)`` float for pairs with clipped true segment returns ``(n, 2)`` (1 = first preferred)."""
    g1, g2 = true_returns[:, 0], true_returns[:, 1]
    if mode == "deterministic":
        return (g1 > g2).float() + 0.5 * (g1 == g2).float()
    if mode != "sampled":
        raise ValueError(f"label mode must be 'sampled' or 'deterministic', got {mode!r}")
    p = torch.sigmoid((g1 - g2).clamp(-clip, clip) / temperature)
    return torch.bernoulli(p.cpu(), generator=generator).to(p.device)  # CPU generator, as for the segment picks


def sample_segment_pairs(buffer, n_pairs: int, length: int, window: int, generator: torch.Generator) -> dict | None:
    """Cut ``2 n_pairs`` segments from the newest ``window`` steps (per environment) of ``buffer`` and pair them.

    Returns ``None`` when no segment fits, else a dict with ``frames (n, 2, length + 3, H, W)`` uint8,
    ``actions (n, 2, length)`` int64 and ``true_returns (n, 2)`` float32 (sums of clipped true rewards).
    """
    slots, envs = buffer.segment_starts(window, length)
    if n_pairs <= 0 or slots.numel() == 0:
        return None
    # Random numbers of the preference machinery come from a CPU generator: same draws on any device.
    pick = torch.randint(0, slots.numel(), (2 * n_pairs,), generator=generator).to(slots.device)
    seg = buffer.segments(slots[pick], envs[pick], length)
    H, W = seg["frames"].shape[-2:]
    return {"frames": seg["frames"].reshape(n_pairs, 2, length + buffer.stack - 1, H, W),
            "actions": seg["actions"].reshape(n_pairs, 2, length),
            "true_returns": seg["rewards"].sum(-1).reshape(n_pairs, 2)}


def segment_stacks(frames: torch.Tensor, stack: int = 4) -> torch.Tensor:
    """Stacked observations of segment frames: ``(B, 2, T + 3, H, W)`` -> ``(B * 2 * T, 4, H, W)`` uint8."""
    B, two, Tp, H, W = frames.shape
    T = Tp - stack + 1
    st = frames.unfold(2, stack, 1)  # (B, 2, T, H, W, stack)
    return st.permute(0, 1, 2, 5, 3, 4).reshape(B * two * T, stack, H, W)


class PreferenceBuffer:
    """FIFO of labelled segment pairs (capacity 3000 in the paper), kept on ``device``.

    Stores ``frames (cap, 2, T + 3, H, W)`` uint8, ``actions (cap, 2, T)``, ``true_returns (cap, 2)`` and
    ``labels (cap,)``; when full, a push overwrites the oldest pairs.
    """

    def __init__(self, capacity: int, length: int, frame_shape=(84, 84), stack: int = 4, device="cpu"):
        self.capacity, self.length, self.stack = int(capacity), int(length), int(stack)
        self.frame_shape, self.device = tuple(frame_shape), torch.device(device)
        d, cap, T = self.device, self.capacity, self.length
        self.frames = torch.empty((cap, 2, T + stack - 1, *self.frame_shape), dtype=torch.uint8, device=d)
        self.actions = torch.zeros((cap, 2, T), dtype=torch.int64, device=d)
        self.true_returns = torch.zeros((cap, 2), dtype=torch.float32, device=d)
        self.labels = torch.zeros((cap,), dtype=torch.float32, device=d)
        self.size = 0  # pairs held
        self.next = 0  # slot the next pair goes to
        self.total_added = 0

    def __len__(self) -> int:
        return self.size

    def push(self, frames, actions, true_returns, labels) -> None:
        """Append ``n`` pairs (tensors with leading dimension ``n``), dropping the oldest beyond capacity."""
        n = frames.shape[0]
        if n > self.capacity:  # only the newest `capacity` pairs could survive anyway
            frames, actions, true_returns, labels = (x[-self.capacity:] for x in (frames, actions, true_returns, labels))
            n = self.capacity
        idx = (self.next + torch.arange(n, device=self.device)) % self.capacity
        self.frames[idx] = frames.to(self.device)
        self.actions[idx] = actions.to(self.device)
        self.true_returns[idx] = true_returns.to(self.device)
        self.labels[idx] = labels.to(self.device)
        self.next = (self.next + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.total_added += n

    def oldest_first(self) -> torch.Tensor:
        """Indices of the stored pairs from the oldest to the newest, ``(size,)``."""
        start = self.next if self.size == self.capacity else 0
        return (start + torch.arange(self.size, device=self.device)) % self.capacity

    def state_dict(self) -> dict:
        idx = self.oldest_first()
        return {"capacity": self.capacity, "length": self.length, "stack": self.stack,
                "frame_shape": self.frame_shape, "total_added": self.total_added,
                "frames": self.frames[idx].cpu(), "actions": self.actions[idx].cpu(),
                "true_returns": self.true_returns[idx].cpu(), "labels": self.labels[idx].cpu()}

    def load_state_dict(self, d: dict) -> None:
        if (d["capacity"], d["length"], d["stack"], tuple(d["frame_shape"])) != \
                (self.capacity, self.length, self.stack, self.frame_shape):
            raise ValueError("preference buffer shape mismatch between checkpoint and run")
        self.size, self.next = 0, 0
        self.push(d["frames"], d["actions"], d["true_returns"], d["labels"])
        self.total_added = int(d["total_added"])


# What one reward epoch reports (means over its mini-batches): the loss, the mean BCE, the mean hyper term, the mean
# surrogate, the mean weight of a pair's hyper term (l_x or l_x minus its baseline) and the fraction of pairs whose
# Bradley-Terry logit sits at the clip (zero BCE gradient there).
EPOCH_STATS = ("reward_loss", "bce", "hyper", "surrogate", "hyper_weight", "saturated")


class RewardLearner:
    """Trains ``r_x`` on the preference buffer with AdamW (lr 3e-4, weight decay 0.01, constant LR).

    Args:
        net: the :class:`~.reward_net.RewardNet`.
        cfg: a :class:`~.config.Config` (``reward_lr, reward_weight_decay, reward_batch_size, return_diff_clip,
            frame_stack``).
    """

    def __init__(self, net, cfg):
        self.net, self.cfg = net, cfg
        self.optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.reward_lr, weight_decay=cfg.reward_weight_decay)

    def epoch(self, prefs: PreferenceBuffer, actor=None, coef: float = 0.0,
              generator: torch.Generator | None = None) -> dict:
        """One pass over ``prefs`` in shuffled mini-batches; returns the means of :data:`EPOCH_STATS`.

        ``actor`` (the current SAC actor ``pi_k``) is evaluated without gradient when ``coef != 0`` and the hyper
        term takes its expectation under ``pi_k`` (``cfg.hyper_expectation == "policy"``, the paper's (78)).
        """
        self.net.train()
        n, B, T = len(prefs), self.cfg.reward_batch_size, prefs.length
        expectation = getattr(self.cfg, "hyper_expectation", "policy")
        baseline = getattr(self.cfg, "hyper_baseline", "none")
        order = prefs.oldest_first()[torch.randperm(n, generator=generator, device="cpu").to(prefs.device)]
        sums = torch.zeros(len(EPOCH_STATS), device=prefs.device)
        batches = 0
        for idx in order.split(B):
            b = idx.numel()
            obs = segment_stacks(prefs.frames[idx], prefs.stack)  # (b*2*T, 4, H, W)
            r_all = self.net(obs).view(b, 2, T, -1)
            probs = None
            if coef != 0.0 and expectation == "policy":
                with torch.no_grad():
                    probs = actor.probs(obs)[0].view(b, 2, T, -1)
            loss, parts = practical_sobirl_loss(r_all, prefs.actions[idx], prefs.labels[idx], probs, coef,
                                                self.cfg.return_diff_clip, expectation=expectation,
                                                baseline=baseline)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            sums += torch.stack([loss.detach(), *(parts[k] for k in EPOCH_STATS[1:])])
            batches += 1
        means = (sums / max(batches, 1)).tolist()
        return dict(zip(EPOCH_STATS, means))


@torch.no_grad()
def pair_accuracy(net, frames: torch.Tensor, actions: torch.Tensor, true_returns: torch.Tensor,
                  labels: torch.Tensor, stack: int = 4, chunk: int = 64, clip: float = 50.0) -> dict:
    """Accuracy of the reward model (eval mode) on labelled pairs.

    Args: ``frames (n, 2, T + stack - 1, H, W)`` uint8, ``actions (n, 2, T)``, ``true_returns (n, 2)``,
    ``labels (n,)`` (as stored by :class:`PreferenceBuffer` or returned by :func:`sample_segment_pairs`).

    * ``pref_acc``: fraction of pairs with unequal true returns that ``r_x`` orders like the clipped true returns
      (``R_x(tau^1) > R_x(tau^2)`` iff ``G^1 > G^2``); NaN when every pair is a tie (then only ``label_acc`` says
      anything);
    * ``label_acc``: agreement of ``sigma(R_x(tau^1) - R_x(tau^2)) > 1/2`` with ``label > 1/2`` over all pairs (what the
      imitation library logs as "accuracy"; ties count too, against their sampled labels).
    """
    n = frames.shape[0]
    if n == 0:
        return {"pref_acc": float("nan"), "label_acc": float("nan")}
    was_training = net.training
    net.eval()
    T = actions.shape[-1]
    logits = []
    for lo in range(0, n, chunk):
        f, a = frames[lo:lo + chunk], actions[lo:lo + chunk]
        obs = segment_stacks(f, stack)
        r = net(obs).view(f.shape[0], 2, T, -1).gather(-1, a[..., None]).squeeze(-1)
        logits.append(preference_logits(r.sum(-1), clip))
    net.train(was_training)
    z = torch.cat(logits)
    g, y = true_returns.to(z.device), labels.to(z.device)
    strict = g[:, 0] != g[:, 1]
    agree = (z > 0) == (g[:, 0] > g[:, 1])
    pref_acc = agree[strict].float().mean().item() if strict.any() else float("nan")
    label_acc = ((z > 0) == (y > 0.5)).float().mean().item()
    return {"pref_acc": pref_acc, "label_acc": label_acc}


@torch.no_grad()
def preference_accuracy(net, prefs: PreferenceBuffer, chunk: int = 64, clip: float = 50.0) -> dict:
    """:func:`pair_accuracy` of the reward model on every pair held by ``prefs`` (the training pairs)."""
    idx = prefs.oldest_first()
    return pair_accuracy(net, prefs.frames[idx], prefs.actions[idx], prefs.true_returns[idx], prefs.labels[idx],
                         prefs.stack, chunk, clip)
