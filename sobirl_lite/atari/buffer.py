"""The replay buffer of the SAC agent and of the preference learner: draws from a :class:`~.frame_store.FrameStore`.

* :meth:`FrameReplayBuffer.sample`: a SAC batch, transitions drawn uniformly from the usable slots (the store's
  ``valid`` flags never link two games, so **no sampled transition crosses a reset**);
* :meth:`FrameReplayBuffer.segment_starts` / :meth:`~FrameReplayBuffer.segments`: the 25-step segments that the
  preference learner pairs, cut from the newest steps of each environment.

Sampling uses the buffer's own generator (saved in checkpoints with the store), on the buffer's device.
"""
from __future__ import annotations

import torch

from .frame_store import DELTA_PATTERN, FRAME_STORE, FrameStore  # noqa: F401 (re-exported)


class FrameReplayBuffer(FrameStore):
    """A :class:`~.frame_store.FrameStore` with uniform sampling of transitions and segments.

    Args:
        capacity_per_env, num_envs, frame_shape, stack, device: as for :class:`~.frame_store.FrameStore`.
        seed: seeds the buffer's own sampling generator (saved in checkpoints).
    """

    def __init__(self, capacity_per_env: int, num_envs: int = 1, frame_shape=(84, 84), stack: int = 4,
                 device="cpu", seed: int = 0):
        super().__init__(capacity_per_env, num_envs, frame_shape, stack, device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def sample_slots(self, n: int):
        """``n`` uniformly drawn stored transitions (with replacement): ``(slots, envs)``, each ``(n,)`` int64.

        Uniform over the valid slots of the usable age range, drawn by inverting the cumulative count of valid slots:
        no rejection loop and no device-to-host transfer, so a GPU run never waits for the device here.
        """
        if self.count < 2 or not self.has_valid:  # host-side flags, no reduction over the buffer
            raise RuntimeError("the replay buffer holds no transition yet")
        max_age = self.max_age()
        age = (self.pos - torch.arange(self.C, device=self.device)) % self.C  # (C,) steps back from the newest
        usable = (age >= 1) & (age <= max_age)
        weights = (self.valid & usable[:, None]).reshape(-1).to(torch.int64)  # (C * E,) slot-major
        cum = weights.cumsum(0)  # cum[-1] = number of usable valid transitions
        u = torch.rand(n, generator=self.generator, device=self.device, dtype=torch.float64)
        k = (u * cum[-1]).to(torch.int64)  # the k-th valid transition, 0-based, k < cum[-1]
        flat = torch.searchsorted(cum, k, right=True)
        return flat // self.E, flat % self.E

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
    def state_dict(self, frames: bool = True) -> dict:
        """The store's :meth:`~.frame_store.FrameStore.state_dict` plus the sampling generator."""
        return super().state_dict(frames) | {"generator": self.generator.get_state()}

    def load_state_dict(self, d: dict, directory: str | None = None, reseed: int | None = None) -> None:
        """Restore from :meth:`state_dict`. ``reseed``: seed the sampling generator with it instead of restoring its
        state (a state saved on another device type cannot be loaded)."""
        super().load_state_dict(d, directory)
        if reseed is None:
            self.generator.set_state(d["generator"])
        else:
            self.generator.manual_seed(reseed)
