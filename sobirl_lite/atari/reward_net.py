"""The reward model ``r_x(s, a)`` of Appendix I.2 of Yang et al. (Christiano et al. 2017, App. A.2; the authors' ``CusCnnRewardNet``).

Input: stacked frames ``(B, 4, 84, 84)`` uint8, scaled to [0, 1]. Four conv layers with kernels 7, 5, 3, 3 and strides
3, 2, 1, 1, 16 filters each, every one followed by BatchNorm, LeakyReLU(0.01) and Dropout(0.5); then
FC 16*7*7 -> 64, LeakyReLU(0.01), and a linear layer with **one output per action**. ``r_x(s, a)`` is the entry of
action ``a``; having all of them at once gives the exact ``E_{a ~ pi(.|s)} r_x(s, a)`` that the estimator (78) needs.

Spatial sizes: 84 -> 26 (7, s3) -> 11 (5, s2) -> 9 (3, s1) -> 7 (3, s1), so the flattened feature has 16*7*7 = 784.

Mode matters: :meth:`train` uses batch statistics and dropout (reward learning); :meth:`eval` uses the running
BatchNorm statistics and no dropout (the rewards SAC learns from, and the preference accuracy).
"""
from __future__ import annotations

import torch
import torch.nn as nn

KERNELS = (7, 5, 3, 3)
STRIDES = (3, 2, 1, 1)
FILTERS = 16
HIDDEN = 64
DROPOUT = 0.5
LEAKY_SLOPE = 0.01


class RewardNet(nn.Module):
    """``r_x``: ``(B, 4, 84, 84)`` uint8 -> ``(B, |A|)`` rewards (one per action, unbounded)."""

    def __init__(self, n_actions: int, in_frames: int = 4, screen_size: int = 84):
        super().__init__()
        layers, channels, size = [], in_frames, screen_size
        for k, s in zip(KERNELS, STRIDES):
            layers += [nn.Conv2d(channels, FILTERS, k, stride=s), nn.BatchNorm2d(FILTERS),
                       nn.LeakyReLU(LEAKY_SLOPE), nn.Dropout(DROPOUT)]
            channels, size = FILTERS, (size - k) // s + 1
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(nn.Linear(FILTERS * size * size, HIDDEN), nn.LeakyReLU(LEAKY_SLOPE),
                                  nn.Linear(HIDDEN, n_actions))
        self.n_actions = n_actions

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(obs.float() / 255.0))

    @torch.no_grad()
    def reward(self, obs: torch.Tensor, actions: torch.Tensor, clamp: float | None = 1.0) -> torch.Tensor:
        """``r_x(s, a)`` ``(B,)`` in eval mode, clamped to ``[-clamp, clamp]`` (the SAC critic target's reward).

        The module's train/eval mode is restored afterwards.
        """
        was_training = self.training
        self.eval()
        r = self(obs).gather(1, actions[:, None]).squeeze(1)
        self.train(was_training)
        return r.clamp(-clamp, clamp) if clamp is not None else r
