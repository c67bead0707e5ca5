"""Frame replay buffer: stacks rebuilt from single frames, no transition across a reset, segments, checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sobirl_lite.atari.buffer import FrameReplayBuffer
from sobirl_lite.atari.config import Config
from sobirl_lite.atari.env import clip_reward, make_env


def record_run(env, buf, steps, seed=0):
    """Random play into ``buf``; returns the history ``obs[t]`` (E,4,84,84) and per-step data for checks."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    buf.start(obs)
    hist = {"obs": [obs], "actions": [], "rewards": [], "dones": [], "reset_step": []}
    for _ in range(steps):
        a = rng.integers(0, env.n_actions, size=env.num_envs)
        nxt, r, term, trunc, info = env.step(a)
        buf.add(a, clip_reward(r), term, nxt, info["reset_step"])
        for k, v in (("obs", nxt), ("actions", a), ("rewards", clip_reward(r)), ("dones", term),
                     ("reset_step", info["reset_step"])):
            hist[k].append(v)
    return hist


def slot_time(buf, slots, total_steps):
    """Global time index of each slot (the newest slot holds time ``total_steps``)."""
    age = (buf.pos - slots) % buf.C
    return total_steps - age


@pytest.mark.parametrize("backend,num_envs", [("gym", 1), ("vector", 2)])
def test_stacks_rebuilt_from_single_frames_equal_the_env_observations(backend, num_envs):
    """Over several resets and a wrap-around of the circular buffer, every sampled (obs, next_obs) equals what the
    environment showed, and no sampled transition links two games."""
    steps = 700
    env = make_env(Config(env_backend=backend, num_envs=num_envs, max_episode_frames=400), seed=0)  # 100-step games
    buf = FrameReplayBuffer(300, num_envs, seed=0)  # 300 slots per env < 700 steps: wraps around
    hist = record_run(env, buf, steps)
    env.close()
    assert buf.count == buf.C
    resets = np.array(hist["reset_step"])  # (steps, E); entry t-1 refers to the step that produced obs t
    assert resets.sum() >= 2 * num_envs, "the run must cross several resets"
    for _ in range(20):
        batch = buf.sample(64)
        t = slot_time(buf, batch["slots"], steps).numpy()
        e = batch["envs"].numpy()
        assert (t < steps).all(), "the newest observation has no successor yet"
        assert (t >= steps - buf.C + 3).all(), "stacks must not reach overwritten slots"
        # the step t -> t+1 is not an autoreset: the transition stays inside one game
        assert not resets[t, e].any()
        true_obs = np.stack([hist["obs"][ti][ei] for ti, ei in zip(t, e)])
        true_next = np.stack([hist["obs"][ti + 1][ei] for ti, ei in zip(t, e)])
        assert np.array_equal(batch["obs"].numpy(), true_obs)
        assert np.array_equal(batch["next_obs"].numpy(), true_next)
        assert np.array_equal(batch["actions"].numpy(), np.array([hist["actions"][ti][ei] for ti, ei in zip(t, e)]))
        assert np.array_equal(batch["rewards"].numpy(), np.array([hist["rewards"][ti][ei] for ti, ei in zip(t, e)]))
        assert np.array_equal(batch["dones"].numpy(), np.array([hist["dones"][ti][ei] for ti, ei in zip(t, e)]))


def synthetic_buffer(C=20, E=1, steps=50, reset_every=7, life_loss_every=None):
    """A buffer filled with 2x2 frames whose value is the global time (mod 250): stacks are easy to predict."""
    buf = FrameReplayBuffer(C, E, frame_shape=(2, 2), seed=0)
    frame = lambda t: np.full((E, 4, 2, 2), (t % 250) + 1, dtype=np.uint8)  # noqa: E731 - only [-1] is stored
    buf.start(frame(0))
    resets = []
    for t in range(1, steps + 1):
        reset = (t % reset_every == 0)
        done = life_loss_every is not None and t % life_loss_every == 0
        buf.add(np.full(E, t % 9), np.full(E, float(t % 3 == 0)), np.full(E, done), frame(t), np.full(E, reset))
        resets.append(reset)
    return buf


def test_zero_padding_at_game_start_and_wraparound():
    buf = synthetic_buffer(C=20, steps=50, reset_every=7)
    # newest slot holds time 50; the game containing 50 started at time 49 (reset at 49)
    s = torch.tensor([buf.pos]); e = torch.tensor([0])
    st = buf.stacks(s, e)[0, :, 0, 0].tolist()
    assert st == [0, 0, 50, 51]  # frames are value t+1: times 49, 50; before the game start: zeros
    # slot of time 46 (game started at 42): 4 real frames, 43..46 -> values 44..47
    s46 = torch.tensor([(buf.pos - 4) % buf.C])
    assert buf.stacks(s46, e)[0, :, 0, 0].tolist() == [44, 45, 46, 47]
    # the last observation of a game (time 48) is not a transition start; time 47 is
    assert not buf.valid[(buf.pos - 2) % buf.C, 0] and buf.valid[(buf.pos - 3) % buf.C, 0]


def test_sampling_never_returns_a_transition_into_a_reset():
    buf = synthetic_buffer(C=64, steps=300, reset_every=5)
    s, e = buf.sample_slots(2000)
    nxt = (s + 1) % buf.C
    assert torch.equal(buf.ep_step[nxt, e], buf.ep_step[s, e] + 1)
    assert buf.valid[s, e].all()
    age = (buf.pos - s) % buf.C
    assert int(age.min()) >= 1 and int(age.max()) <= buf.C - 4


def test_segments_stay_inside_one_life_and_match_the_stacks():
    buf = synthetic_buffer(C=200, steps=190, reset_every=60, life_loss_every=37)
    L = 10
    slots, envs = buf.segment_starts(window=150, length=L)
    assert slots.numel() > 0
    seg = buf.segments(slots, envs, L)
    assert seg["frames"].shape == (slots.numel(), L + 3, 2, 2)
    for i in range(slots.numel()):
        steps = (slots[i] + torch.arange(L)) % buf.C
        assert buf.valid[steps, envs[i]].all()
        assert (buf.dones[steps[:-1], envs[i]] == 0).all(), "a segment may end with, but not cross, a life loss"
        for j in range(L):
            assert torch.equal(seg["frames"][i, j:j + 4], buf.stacks(steps[j:j + 1], envs[i:i + 1])[0])
        assert torch.equal(seg["rewards"][i], buf.rewards[steps, envs[i]])
    # window: no segment starts before the newest 150 slots
    age = (buf.pos - slots) % buf.C
    assert int(age.max()) <= 150


def test_state_dict_roundtrip_continues_identically():
    a = synthetic_buffer(C=30, steps=45, reset_every=11)
    b = FrameReplayBuffer(30, 1, frame_shape=(2, 2), seed=99)
    b.load_state_dict(a.state_dict())
    for name in ("frames", "ep_step", "actions", "rewards", "dones", "valid"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    x, y = a.sample(16), b.sample(16)  # the sampling generator is restored too
    assert all(torch.equal(x[k], y[k]) for k in x)
    with pytest.raises(ValueError, match="mismatch"):
        FrameReplayBuffer(31, 1, frame_shape=(2, 2)).load_state_dict(a.state_dict())


def _extend(buf, t0, steps, reset_every=11, E=1):
    for t in range(t0, t0 + steps):
        buf.add(np.full(E, t % 9), np.full(E, float(t % 3 == 0)), np.zeros(E), np.full((E, 4, 2, 2), t % 250 + 1,
                                                                                         dtype=np.uint8),
                np.full(E, t % reset_every == 0))


def _same(a, b):
    """Equal written slots (unwritten frames are uninitialised memory) and equal positions."""
    n = min(a.count, a.C)
    return (a.pos, a.count) == (b.pos, b.count) and all(
        torch.equal(getattr(a, k)[:n], getattr(b, k)[:n]) for k in ("frames", "ep_step", "actions", "rewards",
                                                                   "dones", "valid"))


def test_incremental_frame_checkpoints_write_only_new_frames_and_restore_exactly(tmp_path):
    """Checkpoints of a wrapping buffer: each delta holds only the slots written since the previous checkpoint, and
    loading (store + named delta + small arrays) rebuilds the buffer exactly, sampling included."""
    buf = synthetic_buffer(C=30, steps=20, reset_every=11)
    deltas = []
    for k, (t0, steps) in enumerate(((21, 7), (28, 40), (68, 3))):  # the second one wraps the whole buffer
        name = buf.save_frames(str(tmp_path), tag=k)
        state = buf.state_dict(frames=False) | {"frames_delta": name}
        buf.commit_frames(str(tmp_path), name)
        deltas.append(torch.load(tmp_path / name)["slots"].numel())
        assert sorted(p.name for p in tmp_path.glob("replay_delta.*")) == [name]  # older deltas removed
        copy = FrameReplayBuffer(30, 1, frame_shape=(2, 2), seed=5)
        copy.load_state_dict(state, directory=str(tmp_path))
        assert _same(buf, copy)
        x, y = buf.sample(16), copy.sample(16)
        assert all(torch.equal(x[key], y[key]) for key in x)
        _extend(buf, t0, steps)
    assert deltas == [21, 7, 30]  # start + 20 adds; 7 new slots; a full lap (40 > C) rewrites all 30
    assert "frames" not in buf.state_dict(frames=False)
    assert (tmp_path / "replay_frames.u8").stat().st_size == 30 * 2 * 2


def test_a_crash_between_delta_and_checkpoint_leaves_the_previous_checkpoint_usable(tmp_path):
    buf = synthetic_buffer(C=30, steps=20, reset_every=11)
    name = buf.save_frames(str(tmp_path), tag=1)
    state = buf.state_dict(frames=False) | {"frames_delta": name}
    buf.commit_frames(str(tmp_path), name)
    snapshot = FrameReplayBuffer(30, 1, frame_shape=(2, 2))
    snapshot.load_state_dict(buf.state_dict())
    _extend(buf, 21, 25)  # wraps: overwrites slots the first checkpoint still needs
    buf.save_frames(str(tmp_path), tag=2)  # ... and the process dies before writing checkpoint 2
    restored = FrameReplayBuffer(30, 1, frame_shape=(2, 2))
    restored.load_state_dict(state, directory=str(tmp_path))
    assert _same(restored, snapshot)
    # a crash while copying a delta into the store: loading applies the named delta again
    store = np.memmap(tmp_path / "replay_frames.u8", dtype=np.uint8, mode="r+", shape=(30, 1, 2, 2))
    store[:] = 0
    store.flush()
    restored2 = FrameReplayBuffer(30, 1, frame_shape=(2, 2))
    restored2.load_state_dict(state, directory=str(tmp_path))
    assert _same(restored2, snapshot)
    with pytest.raises(FileNotFoundError, match="missing"):
        FrameReplayBuffer(30, 1, frame_shape=(2, 2)).load_state_dict(state | {"frames_delta": "replay_delta.9.pt"},
                                                                    directory=str(tmp_path))


def test_sampling_is_uniform_over_valid_transitions():
    """Inverse-CDF sampling: every usable valid (slot, env) equally likely, invalid or too-old slots never drawn."""
    buf = FrameReplayBuffer(40, 2, frame_shape=(2, 2), seed=3)
    buf.start(np.zeros((2, 4, 2, 2), np.uint8))
    for t in range(1, 100):
        buf.add(np.zeros(2), np.zeros(2), np.zeros(2), np.full((2, 4, 2, 2), t % 250, np.uint8),
                np.array([t % 6 == 0, t % 9 == 0]))
    s, e = buf.sample_slots(60_000)
    age = (buf.pos - torch.arange(buf.C)) % buf.C
    usable = ((age >= 1) & (age <= buf.max_age()))[:, None] & buf.valid
    counts = torch.zeros(buf.C, buf.E)
    counts.index_put_((s, e), torch.ones(s.numel()), accumulate=True)
    assert torch.all(counts[~usable] == 0)
    expected = 60_000 / int(usable.sum())
    assert torch.all((counts[usable] - expected).abs() < 5 * expected ** 0.5)  # within 5 sigma of uniform


def test_sampling_an_empty_buffer_is_a_clear_error():
    buf = FrameReplayBuffer(10, 1, frame_shape=(2, 2))
    buf.start(np.zeros((1, 4, 2, 2), np.uint8))
    buf.add(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros((1, 4, 2, 2), np.uint8), np.ones(1, bool))
    with pytest.raises(RuntimeError, match="no transition"):
        buf.sample_slots(4)
