"""A replay buffer that stores each 84x84 uint8 frame once and rebuilds the 4-frame stacks from indices.

A stacked observation is 4 frames, 3 of which the previous observation already held. Storing stacks (as CleanRL's
SB3 buffer does, twice: ``obs`` and ``next_obs``) costs 8 frames per transition; storing single frames costs 1. At the
paper's 10^6 transitions that is 7 GB instead of 56 GB, small enough to keep the whole buffer on the GPU, where a
batch is sampled and assembled without ever leaving the device.

Layout: ``C = capacity_per_env`` time slots times ``E`` environments. Slot ``t`` of environment ``e`` holds

* ``frames[t, e]``: the newest frame of the observation at time ``t``, ``(84, 84)`` uint8;
* ``ep_step[t, e]``: how many agent steps into its game that observation is (0 = first observation of a game);
* ``actions/rewards/dones[t, e]``: the action taken at ``t``, the clipped true reward and the termination flag
  (life loss or game over) that followed it;
* ``valid[t, e]``: True when slot ``t`` starts a stored transition, i.e. slot ``t + 1`` is its successor in the same
  game. It is False for the newest slot (no successor yet) and for a game's last observation (the next slot is the
  first observation of a new game: the action written there was ignored by the autoreset).

The stack of slot ``t`` is ``frames[t-3 .. t]`` with the frames from before the game's start replaced by zeros
(``offset > ep_step[t]``), which is what both environment backends show the agent. Because ``valid`` never links two
games, **no sampled transition crosses a reset** (checked by ``tests/atari/test_buffer.py``).
"""
from __future__ import annotations

import numpy as np
import torch


class FrameReplayBuffer:
    """Circular buffer of single frames; see the module docstring for the layout.

    Args:
        capacity_per_env: ``C``, time slots per environment (total capacity ``C * num_envs`` transitions).
        num_envs: ``E``.
        frame_shape: ``(H, W)``, ``(84, 84)``.
        stack: frames per observation, 4.
        device: where the arrays live (``"cuda"`` keeps sampling on the GPU).
        seed: seeds the buffer's own sampling generator (saved in checkpoints).
    """

    def __init__(self, capacity_per_env: int, num_envs: int = 1, frame_shape=(84, 84), stack: int = 4,
                 device="cpu", seed: int = 0):
        if capacity_per_env < stack + 2:
            raise ValueError(f"capacity_per_env={capacity_per_env} must be at least stack + 2 = {stack + 2}")
        self.C, self.E, self.stack = int(capacity_per_env), int(num_envs), int(stack)
        self.frame_shape = tuple(frame_shape)
        self.device = torch.device(device)
        C, E, d = self.C, self.E, self.device
        # torch.empty: pages of a huge CPU buffer are only committed once written.
        self.frames = torch.empty((C, E, *self.frame_shape), dtype=torch.uint8, device=d)
        self.ep_step = torch.zeros((C, E), dtype=torch.int64, device=d)
        self.actions = torch.zeros((C, E), dtype=torch.int64, device=d)
        self.rewards = torch.zeros((C, E), dtype=torch.float32, device=d)
        self.dones = torch.zeros((C, E), dtype=torch.float32, device=d)
        self.valid = torch.zeros((C, E), dtype=torch.bool, device=d)
        self.pos = 0  # slot of the newest frame
        self.count = 0  # slots written so far, capped at C
        self.generator = torch.Generator(device=d)
        self.generator.manual_seed(seed)
        self._offsets = torch.arange(self.stack - 1, -1, -1, device=d)  # (stack,): 3, 2, 1, 0

    # -- writing --------------------------------------------------------------------------------------------
    def _t(self, x, dtype):
        return torch.as_tensor(np.asarray(x), dtype=dtype).to(self.device, non_blocking=True)

    def start(self, obs) -> None:
        """Write the first observations ``obs (E, 4, H, W)`` after ``env.reset()``: their newest frames, at ep_step 0."""
        self.frames[self.pos] = self._t(np.asarray(obs)[:, -1], torch.uint8)
        self.ep_step[self.pos] = 0
        self.valid[self.pos] = False
        self.count = max(self.count, 1)

    def add(self, actions, rewards, dones, next_obs, reset_step) -> None:
        """Record one vector step.

        Args:
            actions: ``(E,)`` actions taken from the current observations.
            rewards: ``(E,)`` *clipped* true rewards that followed.
            dones: ``(E,)`` termination flags (life loss or game over) used by the TD target.
            next_obs: ``(E, 4, H, W)`` uint8 observations returned by the step.
            reset_step: ``(E,)`` bool, True where the step was an autoreset (action ignored, ``next_obs`` is the first
                observation of a new game).
        """
        p, n = self.pos, (self.pos + 1) % self.C
        reset_step = self._t(reset_step, torch.bool)
        self.actions[p] = self._t(actions, torch.int64)
        self.rewards[p] = self._t(rewards, torch.float32)
        self.dones[p] = self._t(dones, torch.float32)
        self.valid[p] = ~reset_step
        self.frames[n] = self._t(np.asarray(next_obs)[:, -1], torch.uint8)
        self.ep_step[n] = torch.where(reset_step, torch.zeros_like(self.ep_step[p]), self.ep_step[p] + 1)
        self.valid[n] = False
        self.pos = n
        self.count = min(self.count + 1, self.C)

    # -- reading --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of stored transitions (valid slots), summed over environments."""
        return int(self.valid.sum().item())

    def max_age(self) -> int:
        """Oldest usable slot, counted in steps back from the newest: its stack must not reach overwritten slots."""
        if self.count < self.C:
            return self.count - 1  # slot 0 starts a game, so stacks never reach before it
        return self.C - self.stack  # slot (pos - a) needs (pos - a - 3) still unwritten-over: a + 3 <= C - 1

    def stacks(self, slots: torch.Tensor, envs: torch.Tensor) -> torch.Tensor:
        """Rebuild the stacked observations of ``(slots, envs)``, both ``(B,)`` int64: returns ``(B, 4, H, W)`` uint8."""
        src = (slots[:, None] - self._offsets[None, :]) % self.C  # (B, 4) slots, oldest first
        out = self.frames[src, envs[:, None]]  # (B, 4, H, W)
        keep = self._offsets[None, :] <= self.ep_step[slots, envs][:, None]  # frames from before the game are 0
        return out * keep[:, :, None, None].to(out.dtype)

    def sample_slots(self, n: int):
        """``n`` uniformly drawn stored transitions (with replacement): ``(slots, envs)``, each ``(n,)`` int64."""
        if self.count < 2:  # (cheap test: len(self) would reduce over the whole buffer on every batch)
            raise RuntimeError("the replay buffer holds no transition yet")
        max_age = self.max_age()
        slots, envs, have, rounds = [], [], 0, 0
        while have < n:  # rejection sampling: invalid slots are about one per game, so one round nearly always does
            rounds += 1
            if rounds > 1000:
                raise RuntimeError("the replay buffer holds (almost) no valid transition")
            m = 2 * (n - have) + 8
            age = torch.randint(1, max_age + 1, (m,), generator=self.generator, device=self.device)
            s = (self.pos - age) % self.C
            e = torch.randint(0, self.E, (m,), generator=self.generator, device=self.device)
            ok = self.valid[s, e]
            slots.append(s[ok])
            envs.append(e[ok])
            have += int(ok.sum().item())
        return torch.cat(slots)[:n], torch.cat(envs)[:n]

    def sample(self, batch_size: int) -> dict:
        """A SAC batch, all on ``self.device``.

        Returns a dict with ``obs`` and ``next_obs`` ``(B, 4, H, W)`` uint8, ``actions`` ``(B,)`` int64,
        ``rewards`` ``(B,)`` float32 (clipped true reward), ``dones`` ``(B,)`` float32, plus the ``slots``/``envs``.
        """
        s, e = self.sample_slots(batch_size)
        nxt = (s + 1) % self.C
        return {"obs": self.stacks(s, e), "next_obs": self.stacks(nxt, e), "actions": self.actions[s, e],
                "rewards": self.rewards[s, e], "dones": self.dones[s, e], "slots": s, "envs": e}

    # -- segments for the preference learner ------------------------------------------------------------------
    def segment_starts(self, window: int, length: int):
        """All ``(slot, env)`` that start a ``length``-step segment inside the newest ``window`` steps of each env.

        A segment ``t .. t+length-1`` must consist of stored transitions of one game (all ``valid``) and must not cross
        a life loss (``dones`` may only be set on its last step) -- the "trajectories" of the episodic-life wrapper
        that the authors' fragmenter cut.

        Returns ``(slots, envs)`` int64 tensors (possibly empty).
        """
        window = min(int(window), self.max_age())
        if window < length:
            return (torch.zeros(0, dtype=torch.int64, device=self.device),) * 2
        age = torch.arange(window, 0, -1, device=self.device)  # oldest first
        slots = (self.pos - age) % self.C  # (W,)
        valid = self.valid[slots].to(torch.int64)  # (W, E)
        live = (self.dones[slots] == 0).to(torch.int64)  # (W, E)
        zero = torch.zeros((1, self.E), dtype=torch.int64, device=self.device)
        cv = torch.cat([zero, valid.cumsum(0)])  # (W+1, E) prefix sums
        cl = torch.cat([zero, live.cumsum(0)])
        j = torch.arange(0, window - length + 1, device=self.device)  # start positions within the window
        all_valid = (cv[j + length] - cv[j]) == length  # (J, E)
        no_life_loss = (cl[j + length - 1] - cl[j]) == (length - 1)
        ok = all_valid & no_life_loss
        jj, ee = ok.nonzero(as_tuple=True)
        return slots[j[jj]], ee

    def segments(self, slots: torch.Tensor, envs: torch.Tensor, length: int) -> dict:
        """Cut segments at ``(slots, envs)`` (each ``(n,)``) of ``length`` steps.

        Returns ``frames (n, length + 3, H, W)`` uint8 -- step ``j``'s stacked observation is ``frames[:, j:j+4]`` --
        ``actions (n, length)`` int64 and ``rewards (n, length)`` float32 (clipped true rewards).
        """
        k = torch.arange(-(self.stack - 1), length, device=self.device)  # (length + 3,) offsets from the start
        src = (slots[:, None] + k[None, :]) % self.C
        frames = self.frames[src, envs[:, None]]
        keep = k[None, :] >= -self.ep_step[slots, envs][:, None]  # zero the frames from before the game
        frames = frames * keep[:, :, None, None].to(frames.dtype)
        steps = (slots[:, None] + torch.arange(length, device=self.device)[None, :]) % self.C
        return {"frames": frames, "actions": self.actions[steps, envs[:, None]],
                "rewards": self.rewards[steps, envs[:, None]]}

    # -- checkpointing --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Only the written part (plus the sampling generator), as CPU tensors."""
        n = self.count if self.count < self.C else self.C
        take = (lambda x: x[:n].cpu()) if self.count < self.C else (lambda x: x.cpu())
        return {"C": self.C, "E": self.E, "stack": self.stack, "frame_shape": self.frame_shape, "pos": self.pos,
                "count": self.count, "frames": take(self.frames), "ep_step": take(self.ep_step),
                "actions": take(self.actions), "rewards": take(self.rewards), "dones": take(self.dones),
                "valid": take(self.valid), "generator": self.generator.get_state()}

    def load_state_dict(self, d: dict) -> None:
        if (d["C"], d["E"], d["stack"], tuple(d["frame_shape"])) != (self.C, self.E, self.stack, self.frame_shape):
            raise ValueError(f"replay buffer shape mismatch: checkpoint has C={d['C']}, E={d['E']}, "
                             f"stack={d['stack']}, frames {tuple(d['frame_shape'])}; this run has C={self.C}, "
                             f"E={self.E}, stack={self.stack}, frames {self.frame_shape}")
        n = d["frames"].shape[0]
        for name in ("frames", "ep_step", "actions", "rewards", "dones", "valid"):
            getattr(self, name)[:n] = d[name].to(self.device)
        self.pos, self.count = int(d["pos"]), int(d["count"])
        self.generator.set_state(d["generator"])
