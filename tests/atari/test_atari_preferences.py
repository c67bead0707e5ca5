"""Preference machinery: schedule, labels, FIFO buffer, segment stacks, pair sampling, accuracy, reward epochs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sobirl_lite.atari.buffer import FrameReplayBuffer
from sobirl_lite.atari.config import Config
from sobirl_lite.atari.preferences import (PreferenceBuffer, RewardLearner, new_pairs_schedule, preference_accuracy,
                                           sample_segment_pairs, segment_stacks, synthetic_labels)


def test_pairs_schedule_matches_the_authors_configuration():
    assert new_pairs_schedule(0) == 600  # warm-up
    assert new_pairs_schedule(1) == 6  # 8400 / sum_k 1/(1 + t_k) ~ 6.06
    assert new_pairs_schedule(2000) == 3  # 3.03 at the end
    assert new_pairs_schedule(5000) == 3  # beyond the schedule: its last value
    total = sum(new_pairs_schedule(k) for k in range(1, 2001))
    assert total == 8400  # cumulative rounding: the counts add up exactly
    assert new_pairs_schedule(7, pairs_per_iter=4) == 4


def test_deterministic_labels_and_ties():
    g = torch.tensor([[3.0, 1.0], [0.0, 2.0], [1.0, 1.0]])
    assert synthetic_labels(g, "deterministic").tolist() == [1.0, 0.0, 0.5]


def test_sampled_labels_follow_bradley_terry():
    n = 20000
    g = torch.tensor([[1.0, 0.0]]).repeat(n, 1)
    y = synthetic_labels(g, "sampled", generator=torch.Generator().manual_seed(0))
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    p = 1 / (1 + np.exp(-1.0))
    assert abs(float(y.mean()) - p) < 4 * np.sqrt(p * (1 - p) / n)
    with pytest.raises(ValueError):
        synthetic_labels(g, "bogus")


def test_preference_buffer_is_fifo_and_roundtrips():
    buf = PreferenceBuffer(3, length=2, frame_shape=(1, 1), stack=2)
    for i in range(5):  # pairs 0..4; capacity 3 keeps 2, 3, 4
        buf.push(torch.full((1, 2, 3, 1, 1), i, dtype=torch.uint8), torch.zeros(1, 2, 2, dtype=torch.int64),
                 torch.full((1, 2), float(i)), torch.tensor([i / 10]))
    idx = buf.oldest_first()
    assert len(buf) == 3 and buf.true_returns[idx, 0].tolist() == [2.0, 3.0, 4.0]
    other = PreferenceBuffer(3, length=2, frame_shape=(1, 1), stack=2)
    other.load_state_dict(buf.state_dict())
    assert other.true_returns[other.oldest_first(), 0].tolist() == [2.0, 3.0, 4.0] and other.total_added == 5


def test_segment_stacks_are_sliding_windows():
    f = torch.arange(2 * 2 * 7, dtype=torch.uint8).view(2, 2, 7, 1, 1)  # T = 4 steps, stack 4
    st = segment_stacks(f, 4)
    assert st.shape == (2 * 2 * 4, 4, 1, 1)
    assert st[0, :, 0, 0].tolist() == [0, 1, 2, 3] and st[3, :, 0, 0].tolist() == [3, 4, 5, 6]
    assert st[4, :, 0, 0].tolist() == [7, 8, 9, 10]


def filled_buffer(steps=120):
    buf = FrameReplayBuffer(200, 1, frame_shape=(2, 2), seed=0)
    buf.start(np.zeros((1, 4, 2, 2), np.uint8))
    for t in range(1, steps + 1):
        buf.add(np.array([t % 3]), np.array([float(t % 4 == 0)]), np.array([False]),
                np.full((1, 4, 2, 2), t, np.uint8), np.array([False]))
    return buf


def test_sampled_pairs_carry_true_returns_and_stacks():
    buf = filled_buffer()
    pairs = sample_segment_pairs(buf, 5, length=10, window=100, generator=torch.Generator().manual_seed(0))
    assert pairs["frames"].shape == (5, 2, 13, 2, 2) and pairs["actions"].shape == (5, 2, 10)
    for b in range(5):
        for i in range(2):
            first = int(pairs["frames"][b, i, 3, 0, 0])  # frame value == time of the segment's first step
            # the action/reward stored with the observation of time s were written by step s + 1
            expected = sum(float((s + 1) % 4 == 0) for s in range(first, first + 10))
            assert float(pairs["true_returns"][b, i]) == expected
            assert pairs["actions"][b, i].tolist() == [(s + 1) % 3 for s in range(first, first + 10)]
            assert first >= 120 - 100  # inside the window of the newest 100 steps
    assert sample_segment_pairs(buf, 0, 10, 100, torch.Generator()) is None


class FixedReward(torch.nn.Module):
    """r(s, a) = mean pixel value of the newest frame (ignores the action); trains nothing."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, obs):
        return obs[:, -1].float().mean(dim=(1, 2))[:, None].repeat(1, 3) + self.dummy


def test_preference_accuracy_counts_orderings():
    prefs = PreferenceBuffer(4, length=1, frame_shape=(1, 1), stack=1)
    frames = torch.tensor([[5, 1], [1, 5], [2, 7], [3, 3]], dtype=torch.uint8).view(4, 2, 1, 1, 1)
    true_returns = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # model right, wrong, right; a tie
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    prefs.push(frames, torch.zeros(4, 2, 1, dtype=torch.int64), true_returns, labels)
    acc = preference_accuracy(FixedReward(), prefs)
    assert acc["pref_acc"] == pytest.approx(2 / 3)  # 3 pairs with unequal returns, 2 ordered right
    assert acc["label_acc"] == pytest.approx(3 / 4)  # pair 4: logit 0 -> "not first" agrees with label 0


def test_reward_epoch_learns_a_separable_preference():
    """Pairs where the preferred segment is the brighter one: a few epochs of BCE reach perfect accuracy."""
    from sobirl_lite.atari.reward_net import RewardNet

    torch.manual_seed(0)
    cfg = Config(reward_batch_size=8, segment_length=2)
    n, L = 16, 2
    prefs = PreferenceBuffer(n, length=L, frame_shape=(84, 84), stack=4)
    bright = torch.randint(150, 255, (n, 1, L + 3, 84, 84), dtype=torch.uint8)
    dark = torch.randint(0, 60, (n, 1, L + 3, 84, 84), dtype=torch.uint8)
    first_bright = torch.rand(n) < 0.5
    frames = torch.where(first_bright[:, None, None, None, None], torch.cat([bright, dark], 1),
                         torch.cat([dark, bright], 1))  # (n, 2, L + 3, 84, 84)
    g = torch.stack([first_bright.float(), (~first_bright).float()], 1)
    prefs.push(frames, torch.zeros(n, 2, L, dtype=torch.int64), g, first_bright.float())
    net = RewardNet(9)
    learner = RewardLearner(net, cfg)
    stats = [learner.epoch(prefs, generator=torch.Generator().manual_seed(0)) for _ in range(15)]
    assert stats[-1]["bce"] < stats[0]["bce"]
    assert preference_accuracy(net, prefs)["pref_acc"] == 1.0
