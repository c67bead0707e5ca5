"""Per-environment encoders: the one place where the networks differ between Atari and MinAtar.

Every network of the pipeline (SAC's actor and twin critics, the reward model) reads the same input, stacked uint8
frames ``(B, stack, H, W)`` from the replay or preference buffer, and asks :func:`make_encoder` for its trunk:

=================  ==============================  =======================================================  ========
environment        input transform                 trunk                                                    features
=================  ==============================  =======================================================  ========
Atari (84x84)      ``/255`` -> [0, 1]              Nature CNN: conv 32@8x8 s4, 64@4x4 s2, 64@3x3 s1, FC 512  512
MinAtar (10x10)    unpack the channel bits         conv 16@3x3 s1, FC 128 (Young & Tian 2019's network)      128
=================  ==============================  =======================================================  ========

The input transform is a plain function, not a layer, so the trunk's parameter names are the same as before the
split (checkpoints stay readable). The MinAtar reward model (:class:`MinAtarRewardNet`) has the SAC trunk's shape
with one output per action, like the Atari reward model of :mod:`.reward_net`.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from .env import MINATAR_CHANNELS, is_minatar, minatar_game
from .reward_net import RewardNet

MINATAR_FILTERS = 16
MINATAR_HIDDEN = 128


def kaiming(layer: nn.Module) -> nn.Module:
    """Kaiming-normal weights and zero biases (CleanRL's ``layer_init`` for sac_atari)."""
    nn.init.kaiming_normal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def nature_cnn(in_frames: int = 4) -> nn.Sequential:
    """The DQN "Nature" encoder: ``(B, 4, 84, 84)`` float in [0, 1] -> ``(B, 512)`` features.

    conv 32 8x8 stride 4 -> conv 64 4x4 stride 2 -> conv 64 3x3 stride 1 -> FC 3136 -> 512, ReLU after each.
    """
    return nn.Sequential(
        kaiming(nn.Conv2d(in_frames, 32, 8, stride=4)), nn.ReLU(),
        kaiming(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
        kaiming(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
        nn.Flatten(),
        kaiming(nn.Linear(64 * 7 * 7, 512)), nn.ReLU(),
    )


def minatar_cnn(in_channels: int) -> nn.Sequential:
    """MinAtar's encoder: ``(B, C, 10, 10)`` float in {0, 1} -> ``(B, 128)``: conv 16 3x3 stride 1, FC 1024 -> 128."""
    return nn.Sequential(
        kaiming(nn.Conv2d(in_channels, MINATAR_FILTERS, 3, stride=1)), nn.ReLU(),
        nn.Flatten(),
        kaiming(nn.Linear(MINATAR_FILTERS * 8 * 8, MINATAR_HIDDEN)), nn.ReLU(),
    )


def to_float(obs: torch.Tensor) -> torch.Tensor:
    """uint8 grayscale frames ``(B, 4, 84, 84)`` -> float32 in [0, 1]."""
    return obs.float() / 255.0


def unpack_bits(obs: torch.Tensor, n_channels: int) -> torch.Tensor:
    """Packed MinAtar frames ``(B, S, H, W)`` uint8 -> ``(B, S * n_channels, H, W)`` float32 in {0, 1}.

    Bit ``c`` of a frame's pixel is object channel ``c`` (:func:`~.env.pack_channels`); the channels of the
    oldest frame come first.
    """
    bits = torch.arange(n_channels, device=obs.device, dtype=torch.uint8)
    planes = (obs[:, :, None] >> bits[None, None, :, None, None]) & 1  # (B, S, C, H, W)
    return planes.flatten(1, 2).float()


def make_encoder(env_id: str, in_frames: int) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor], int]:
    """``(trunk, transform, features)`` for ``env_id``; a network computes ``trunk(transform(obs))``.

    Args:
        env_id: ``"ALE/..."`` (Atari) or ``"minatar:GAME"``.
        in_frames: frames per stacked observation (``Config.frame_stack``).
    """
    if is_minatar(env_id):
        c = MINATAR_CHANNELS[minatar_game(env_id)]

        def transform(obs: torch.Tensor) -> torch.Tensor:
            return unpack_bits(obs, c)

        return minatar_cnn(in_frames * c), transform, MINATAR_HIDDEN
    return nature_cnn(in_frames), to_float, 512


class MinAtarRewardNet(RewardNet):
    """``r_x`` for MinAtar: ``(B, S, 10, 10)`` packed uint8 -> ``(B, |A|)``; conv 16@3x3 -> FC 128 -> |A|.

    The same shape as SAC's MinAtar networks, with no BatchNorm or dropout: a 10x10 binary frame is a clean input,
    and the reward model then behaves the same in train and eval mode. :meth:`reward` comes from
    :class:`~.reward_net.RewardNet`.
    """

    def __init__(self, n_actions: int, env_id: str, in_frames: int = 1):
        nn.Module.__init__(self)
        self.features, self._transform, width = make_encoder(env_id, in_frames)
        self.head = nn.Linear(width, n_actions)
        self.n_actions = n_actions

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self._transform(obs)))


def make_reward_net(cfg, n_actions: int) -> nn.Module:
    """The reward model of a run: :class:`~.reward_net.RewardNet` on Atari, :class:`MinAtarRewardNet` on MinAtar."""
    if is_minatar(cfg.env_id):
        return MinAtarRewardNet(n_actions, cfg.env_id, cfg.frame_stack)
    return RewardNet(n_actions, cfg.frame_stack, cfg.screen_size)
