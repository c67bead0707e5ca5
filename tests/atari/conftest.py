"""Fixtures of the BeamRider tests: one torch thread (the machine has 2 shared cores) and tiny run settings."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# A run small enough for a test (seconds on one core): 100-step outer iterations, SAC learning from step 150, games
# truncated after 100 agent steps, 25-step segments, checkpoints every 100 steps.
TINY_FLAGS = ["--learning-starts", "150", "--inner-steps", "100", "--buffer-size", "1000", "--batch-size", "8",
              "--initial-pairs", "4", "--warmup-epochs", "1", "--pairs-per-iter", "2", "--pref-buffer-size", "10",
              "--reward-batch-size", "4", "--hyper-warmup-steps", "250", "--checkpoint-every", "100",
              "--max-episode-frames", "400", "--threads", "1", "--no-progress"]


@pytest.fixture
def tiny_flags():
    return list(TINY_FLAGS)
