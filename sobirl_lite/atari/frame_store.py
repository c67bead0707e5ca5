"""Where the replay buffer keeps its data: each 84x84 uint8 frame stored once, the 4-frame stacks rebuilt from
indices, and the frames saved to disk incrementally between checkpoints.

A stacked observation is 4 frames, 3 of which the previous observation already held. Storing stacks (as CleanRL's
SB3 buffer does, twice: ``obs`` and ``next_obs``) costs 8 frames per transition; storing single frames costs 1. At the
paper's 10^6 transitions that is 7 GB instead of 56 GB, small enough to keep the whole buffer on the GPU, where a
batch is sampled and assembled without ever leaving the device. How batches and segments are drawn from the store is
:mod:`.buffer`'s business.

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
games, **no sampled transition crosses a reset** (checked by ``tests/atari/test_atari_buffer.py``).
"""
from __future__ import annotations

import glob
import os

import numpy as np
import torch

FRAME_STORE = "replay_frames.u8"  # the frames of the replay buffer, on disk beside checkpoint.pt
DELTA_PATTERN = "replay_delta.{tag}.pt"  # frames written since the previous checkpoint


class FrameStore:
    """Circular store of single frames and their transitions; see the module docstring for the layout.

    Args:
        capacity_per_env: ``C``, time slots per environment (total capacity ``C * num_envs`` transitions).
        num_envs: ``E``.
        frame_shape: ``(H, W)``, ``(84, 84)``.
        stack: frames per observation, 4.
        device: where the arrays live (``"cuda"`` keeps sampling on the GPU).
    """

    def __init__(self, capacity_per_env: int, num_envs: int = 1, frame_shape=(84, 84), stack: int = 4,
                 device="cpu"):
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
        self.has_valid = False  # host-side: some stored transition is valid (so sampling needs no device check)
        self.unsaved = 0  # slots written since the frames were last saved to disk (they end at pos)
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
        self.unsaved = min(self.unsaved + 1, self.C)

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
        self.has_valid = self.has_valid or not bool(np.all(reset_step))  # host arrays: no device sync
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
        self.unsaved = min(self.unsaved + 1, self.C)

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

    # -- checkpointing --------------------------------------------------------------------------------------
    def state_dict(self, frames: bool = True) -> dict:
        """Only the written part, as CPU tensors.

        ``frames=False`` leaves out the frames (99.6 % of the bytes): the trainer saves those incrementally with
        :meth:`save_frames`.
        """
        n = self.count if self.count < self.C else self.C
        # copies, never views of the live arrays (on a CPU buffer .cpu() would return the tensor itself)
        take = lambda x: x[:n].to("cpu", copy=True)  # noqa: E731
        d = {"C": self.C, "E": self.E, "stack": self.stack, "frame_shape": self.frame_shape, "pos": self.pos,
             "count": self.count, "ep_step": take(self.ep_step),
             "actions": take(self.actions), "rewards": take(self.rewards), "dones": take(self.dones),
             "valid": take(self.valid), "has_valid": self.has_valid}
        if frames:
            d["frames"] = take(self.frames)
        return d

    def load_state_dict(self, d: dict, directory: str | None = None) -> None:
        """Restore from :meth:`state_dict`; a state without frames reads them from ``directory`` (see
        :meth:`save_frames`)."""
        if (d["C"], d["E"], d["stack"], tuple(d["frame_shape"])) != (self.C, self.E, self.stack, self.frame_shape):
            raise ValueError(f"replay buffer shape mismatch: checkpoint has C={d['C']}, E={d['E']}, "
                             f"stack={d['stack']}, frames {tuple(d['frame_shape'])}; this run has C={self.C}, "
                             f"E={self.E}, stack={self.stack}, frames {self.frame_shape}")
        n = d["valid"].shape[0]
        for name in ("ep_step", "actions", "rewards", "dones", "valid"):
            getattr(self, name)[:n] = d[name].to(self.device)
        self.pos, self.count = int(d["pos"]), int(d["count"])
        self.has_valid = bool(d.get("has_valid", bool(d["valid"].any())))
        if "frames" in d:
            self.frames[:n] = d["frames"].to(self.device)
        else:
            if directory is None:
                raise ValueError("this buffer state keeps its frames on disk: pass the run directory")
            self._load_frames(directory, d["frames_delta"], n)
        self.unsaved = 0

    # Incremental saving. The frames live in one raw file, ``replay_frames.u8`` (C x E x H x W bytes, written in place),
    # and each checkpoint adds a *delta*: the frames of the slots written since the previous one. Crash-safe order:
    # (1) write the delta, (2) write checkpoint.pt (atomic) naming that delta, (3) copy the delta into the store and
    # remove older deltas. A crash before (2) leaves the previous checkpoint and a store that matches it; a crash
    # during (3) is repaired on loading, which applies the named delta again (it is idempotent).
    def save_frames(self, directory: str, tag: int) -> str:
        """Write the frames written since the last save to ``directory/replay_delta.<tag>.pt``; returns its name.

        Call :meth:`commit_frames` once the checkpoint that names the delta is safely on disk.
        """
        from .checkpoint import atomic_torch_save

        w = self.unsaved
        slots = (self.pos - torch.arange(w - 1, -1, -1, device=self.device)) % self.C  # oldest first
        name = DELTA_PATTERN.format(tag=tag)
        atomic_torch_save({"slots": slots.cpu(), "frames": self.frames[slots].cpu()}, os.path.join(directory, name))
        return name

    def commit_frames(self, directory: str, delta: str) -> None:
        """Copy ``delta`` into the frame store and delete the deltas no checkpoint names any more."""
        path = os.path.join(directory, delta)
        _apply_delta(self._store(directory, create=True), torch.load(path, map_location="cpu"))
        for old in glob.glob(os.path.join(directory, DELTA_PATTERN.format(tag="*"))):
            if os.path.basename(old) != delta:
                os.remove(old)
        self.unsaved = 0

    def disk_bytes(self, checkpoint_every: int) -> int:
        """Disk a run's checkpoints need for this buffer: the frame store plus one delta of ``checkpoint_every``
        agent steps, plus the small per-slot arrays (25 bytes per slot)."""
        frame = int(np.prod(self.frame_shape))
        return self.C * self.E * frame + min(checkpoint_every, self.C * self.E) * frame + self.C * self.E * 25

    def _store(self, directory: str, create: bool = False) -> np.memmap:
        path = os.path.join(directory, FRAME_STORE)
        shape = (self.C, self.E, *self.frame_shape)
        if create and (not os.path.exists(path) or os.path.getsize(path) != int(np.prod(shape))):
            return np.memmap(path, dtype=np.uint8, mode="w+", shape=shape)  # sparse file: untouched pages cost nothing
        if not os.path.exists(path):
            raise FileNotFoundError(f"replay frame store {path} is missing")
        return np.memmap(path, dtype=np.uint8, mode="r+", shape=shape)

    def _load_frames(self, directory: str, delta: str, n: int, chunk: int = 50_000) -> None:
        store = self._store(directory)
        path = os.path.join(directory, delta)
        if not os.path.exists(path):
            raise FileNotFoundError(f"replay delta {path} named by the checkpoint is missing")
        _apply_delta(store, torch.load(path, map_location="cpu"))  # finish an interrupted commit (idempotent)
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            self.frames[lo:hi] = torch.from_numpy(np.array(store[lo:hi])).to(self.device)

def _apply_delta(store: np.memmap, delta: dict) -> None:
    slots = delta["slots"].numpy()
    if slots.size:
        store[slots] = delta["frames"].numpy()
    store.flush()  # msync: the store is on disk before an older delta is deleted
