"""Atomic checkpoints and the checks that make ``--resume`` either exact or a clear error.

A checkpoint is one ``torch.save`` file, ``<out>/checkpoint.pt``. It is written to ``checkpoint.pt.tmp``, flushed
to disk, then moved over the old one with ``os.replace`` (atomic on POSIX): a run killed at any moment -- even
during the write -- leaves the previous checkpoint intact, never a half-written one.

Loading never falls back to a fresh start: an unreadable file, a file from another program or format, or a file
whose configuration differs from the requested run raises :class:`CheckpointError` with the reason.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from .config import config_differences

FORMAT = "sobirl_lite.atari/checkpoint/v1"
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used to resume this run (missing, corrupt, or for a different experiment)."""


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save(obj, path)`` via a temporary file, ``fsync`` and ``os.replace``."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def load_checkpoint(path: str) -> dict:
    """Read and sanity-check a checkpoint; raise :class:`CheckpointError` if it is missing, corrupt or foreign."""
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}: nothing to resume (a run is never restarted silently; "
                              f"drop --resume and use a new --out to start afresh)")
    try:
        # weights_only=False: the file holds numpy RNG states and emulator snapshots besides tensors. Only load
        # checkpoints you wrote yourself.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle means the file is unusable
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a sobirl_lite.atari checkpoint of format {FORMAT!r}")
    missing = [k for k in ("config", "global_step", "agent", "buffer", "rng", "csv_pos") if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {missing}")
    return state


def check_compatible(saved_config: dict, new_config: dict, path: str) -> None:
    """Raise :class:`CheckpointError` when the requested run is not the one the checkpoint belongs to."""
    from .config import Config

    # a field added after the checkpoint was written takes its default (older runs keep resuming)
    saved_config = {**Config().to_dict(), **saved_config}
    diff = config_differences(saved_config, new_config)
    if diff:
        lines = "\n".join(f"  {k}: checkpoint has {a!r}, this command asks for {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(f"checkpoint {path} belongs to a different run; refusing to resume.\n{lines}\n"
                              f"Resume with the original settings, or start a new run in another --out directory.")


def rng_state() -> dict:
    """States of the global RNGs (Python, NumPy, torch CPU and CUDA): dropout and friends draw from them."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(d: dict) -> None:
    random.setstate(d["python"])
    np.random.set_state(d["numpy"])
    torch.set_rng_state(d["torch"])
    if d.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(d["cuda"])
