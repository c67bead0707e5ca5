"""Discrete soft actor-critic with automatic temperature: the lower-level solver of Algorithm 3 (Appendix I.1 of Yang et al.).

Written in the spirit of CleanRL's ``sac_atari.py`` (which the authors adapted) for gymnasium 1.x: the discrete-action
SAC of Christodoulou (2019), where every expectation over actions is computed exactly from the policy's
probabilities instead of being sampled.

For a batch of transitions ``(s, a, r, s', d)``:

* critics:  ``y = r + gamma (1 - d) sum_a' pi(a'|s') [min_i Q_i^target(s', a') - alpha log pi(a'|s')]`` and
  ``L_Q = MSE(Q_1(s, a), y) + MSE(Q_2(s, a), y)``;
* actor:    ``L_pi = mean_{s, a} pi(a|s) [alpha log pi(a|s) - min_i Q_i(s, a)]``;
* temperature: ``L_alpha = mean_{s, a} pi(a|s) [-alpha (log pi(a|s) + H_target)]`` with ``H_target = 0.89 log|A|``,
  i.e. ``alpha (H(pi(.|s)) - H_target) / |A|`` averaged over states: when the policy's entropy is above the target
  the temperature goes down, and vice versa.

Both means run over the batch *and* the |A| actions, exactly as CleanRL's ``sac_atari.py`` and the authors'
``sac_subroutine.py`` write them (``.mean()`` of a ``(B, |A|)`` tensor). The factor 1/|A| against the sum over actions
is not harmless: Adam's ``eps = 1e-4`` is comparable to many actor gradient entries, so summing over actions would
raise the effective actor learning rate several-fold and make the temperature adapt faster late in training.

``r`` is either the clipped true reward (SAC baseline) or the learned reward ``r_x(s, a)`` clamped to ``[-1, 1]``
(SoBiRL, DRLHF); the trainer decides and passes it in.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


SAC_STATS = ("qf_loss", "actor_loss", "alpha_loss", "entropy", "q_mean")


from .networks import kaiming as _kaiming, make_encoder, nature_cnn, to_float  # noqa: F401 (re-exported)


class _EncoderHead(nn.Module):
    """The environment's encoder (:func:`~.networks.make_encoder`: Nature CNN on Atari, conv 16@3x3 -> FC 128 on
    MinAtar) and a linear head: ``(B, stack, H, W)`` uint8 -> ``(B, |A|)``."""

    def __init__(self, n_actions: int, in_frames: int = 4, env_id: str = "ALE/BeamRider-v5",
                 bf16: bool = False):
        super().__init__()
        self.encoder, self.transform, width = make_encoder(env_id, in_frames)
        self.head = _kaiming(nn.Linear(width, n_actions))
        self.bf16 = bf16  # the encoder under bfloat16 autocast; the head stays fp32
        self.channels_last = False  # set by DiscreteSAC when it stores the weights channels_last

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs``: uint8 frames, or the float input :meth:`transform` already made of them (so that a batch read
        by several networks is converted once)."""
        x = obs if obs.is_floating_point() else self.transform(obs)
        if self.channels_last and x.dim() == 4:  # NHWC input for NHWC conv weights
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            h = self.encoder(x)
        return self.head(h.float())


class SoftQNetwork(_EncoderHead):
    """``Q(s, .)``: ``(B, 4, 84, 84)`` uint8 -> ``(B, |A|)``. Each critic has its own encoder (as in CleanRL)."""


class Actor(_EncoderHead):
    """Categorical policy ``pi(.|s)``: ``(B, 4, 84, 84)`` uint8 -> logits ``(B, |A|)``; its own encoder too."""

    def probs(self, obs: torch.Tensor):
        """``(probs, log_probs)``, both ``(B, |A|)``."""
        logits = self(obs)
        return F.softmax(logits, dim=-1), F.log_softmax(logits, dim=-1)


class DiscreteSAC:
    """Actor, twin critics with targets, learnable temperature and their Adam optimisers.

    Args:
        n_actions: ``|A|`` (9 for BeamRider).
        cfg: a :class:`~.config.Config` (uses ``gamma, policy_lr, q_lr, adam_eps, alpha0, autotune,
            target_entropy_scale, lr_anneal_steps``).
        device: torch device of the networks.
        channels_last, fused, convert_once: speed options that leave the algorithm unchanged (NHWC convolutions; one
            fused Adam kernel; each uint8 batch converted to float once instead of once per network);
            ``benchmarks/atari.py`` measures each against the plain version.
    """

    def __init__(self, n_actions: int, cfg, device="cpu", in_frames: int = 4, channels_last: bool = True,
                 fused: bool = True, convert_once: bool = True):
        self.cfg, self.device, self.n_actions = cfg, torch.device(device), n_actions
        self.convert_once = convert_once
        d = self.device
        net = dict(n_actions=n_actions, in_frames=in_frames, env_id=cfg.env_id,  # the encoder follows the env
                   bf16=getattr(cfg, "precision", "fp32") == "bf16")
        # channels_last: NHWC weights and activations, the layout oneDNN's (CPU) and cuDNN's fast conv kernels use
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.actor = Actor(**net).to(d, memory_format=fmt)
        self.qf1, self.qf2 = SoftQNetwork(**net).to(d, memory_format=fmt), SoftQNetwork(**net).to(d, memory_format=fmt)
        self.qf1_target = SoftQNetwork(**net).to(d, memory_format=fmt)
        self.qf2_target = SoftQNetwork(**net).to(d, memory_format=fmt)
        for m in (self.actor, self.qf1, self.qf2, self.qf1_target, self.qf2_target):
            m.channels_last = channels_last
        self.update_targets()
        for p in list(self.qf1_target.parameters()) + list(self.qf2_target.parameters()):
            p.requires_grad_(False)
        self.log_alpha = torch.full((), math.log(cfg.alpha0), device=d, requires_grad=cfg.autotune)
        self.target_entropy = cfg.target_entropy_scale * math.log(n_actions)  # 0.89 * log|A|
        # fused=True: one kernel for all parameters' Adam updates instead of a loop over them (same update rule)
        fused = fused or None
        self.q_optimizer = torch.optim.Adam(list(self.qf1.parameters()) + list(self.qf2.parameters()),
                                            lr=cfg.q_lr, eps=cfg.adam_eps, fused=fused)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr, eps=cfg.adam_eps,
                                                fused=fused)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.q_lr, eps=cfg.adam_eps)

    @property
    def alpha(self) -> float:
        """The current temperature ``alpha_k`` as a float (it plays the role of tau in (78))."""
        return float(self.log_alpha.detach().exp().item())

    @torch.no_grad()
    def act(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``a ~ pi(.|s)`` for ``obs (E, 4, 84, 84)`` uint8 on the device; returns ``(E,)`` int64."""
        probs, _ = self.actor.probs(obs)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    def set_learning_rate(self, step: int) -> float:
        """Linear anneal ``lr_t = (1 - (t - 1) / T) lr_0``, floored at 0 (T = ``lr_anneal_steps``). Returns the factor."""
        frac = max(0.0, 1.0 - (step - 1.0) / self.cfg.lr_anneal_steps)
        for opt, lr0 in ((self.q_optimizer, self.cfg.q_lr), (self.actor_optimizer, self.cfg.policy_lr),
                         (self.alpha_optimizer, self.cfg.q_lr)):
            for group in opt.param_groups:
                group["lr"] = frac * lr0
        return frac

    def update_targets(self) -> None:
        """Hard copy of the critics into the target critics (polyak tau = 1)."""
        self.qf1_target.load_state_dict(self.qf1.state_dict())
        self.qf2_target.load_state_dict(self.qf2.state_dict())

    @torch.no_grad()
    def td_target(self, rewards, next_obs, dones) -> torch.Tensor:
        """Soft TD target ``y`` ``(B,)`` for rewards ``(B,)``, ``next_obs (B, 4, 84, 84)`` uint8 and dones ``(B,)``."""
        probs, log_probs = self.actor.probs(next_obs)
        q_next = torch.min(self.qf1_target(next_obs), self.qf2_target(next_obs))
        alpha = self.log_alpha.exp()
        v_next = (probs * (q_next - alpha * log_probs)).sum(-1)  # exact expectation over the 9 actions
        return rewards + (1.0 - dones) * self.cfg.gamma * v_next

    def update(self, batch: dict, rewards: torch.Tensor) -> dict:
        """One gradient step of critics, actor and temperature on ``batch`` (from the replay buffer).

        ``rewards (B,)`` are the rewards to learn from (already clipped/clamped by the caller).
        Returns a ``(5,)`` tensor on the device with the statistics named in :data:`SAC_STATS`.
        """
        # each uint8 batch becomes float once, then feeds all the networks that read it
        once = self.actor.transform if self.convert_once else (lambda x: x)
        obs, actions = once(batch["obs"]), batch["actions"]
        y = self.td_target(rewards, once(batch["next_obs"]), batch["dones"])
        q1 = self.qf1(obs).gather(1, actions[:, None]).squeeze(1)
        q2 = self.qf2(obs).gather(1, actions[:, None]).squeeze(1)
        qf_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        self.q_optimizer.zero_grad(set_to_none=True)
        qf_loss.backward()
        self.q_optimizer.step()

        probs, log_probs = self.actor.probs(obs)
        with torch.no_grad():
            q_min = torch.min(self.qf1(obs), self.qf2(obs))
        alpha = self.log_alpha.exp().detach()
        actor_loss = (probs * (alpha * log_probs - q_min)).mean()  # mean over batch and actions
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()

        entropy = -(probs.detach() * log_probs.detach()).sum(-1)  # (B,)
        alpha_loss = torch.zeros((), device=self.device)
        if self.cfg.autotune:
            # = alpha (H - H_target) / |A| per state: the reference's mean over batch and actions
            alpha_loss = (probs.detach() * (-self.log_alpha.exp()
                                            * (log_probs.detach() + self.target_entropy))).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()
        # Statistics stay on the device (no host sync per update); the trainer averages them per outer iteration.
        return torch.stack([qf_loss.detach(), actor_loss.detach(), alpha_loss.detach(), entropy.mean(),
                            q1.detach().mean()])

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in
                ("actor", "qf1", "qf2", "qf1_target", "qf2_target", "q_optimizer", "actor_optimizer",
                 "alpha_optimizer")} | {"log_alpha": self.log_alpha.detach().cpu()}

    def load_state_dict(self, d: dict) -> None:
        for name in ("actor", "qf1", "qf2", "qf1_target", "qf2_target", "q_optimizer", "actor_optimizer",
                     "alpha_optimizer"):
            getattr(self, name).load_state_dict(d[name])
        with torch.no_grad():
            self.log_alpha.copy_(d["log_alpha"].to(self.device))
