"""BeamRider environments: preprocessing, episodic life, autoreset, exact state save/restore (sobirl_lite.atari.env)."""
from __future__ import annotations

import numpy as np
import pytest

from sobirl_lite.atari.config import Config
from sobirl_lite.atari.env import EpisodeTracker, GymAtari, VectorAtari, clip_reward, make_env, rom_name

BACKENDS = ["gym", "vector"]


def build(backend, **kw):
    cfg = Config(env_backend=backend, **kw)
    return make_env(cfg, seed=kw.get("seed", 0))


def test_clip_reward_is_the_sign():
    assert clip_reward(np.array([-44.0, 0.0, 0.5, 44.0, 1e6])).tolist() == [-1, 0, 1, 1, 1]


def test_rom_names():
    assert rom_name("ALE/BeamRider-v5") == "beam_rider"
    assert rom_name("BeamRiderNoFrameskip-v4") == "beam_rider"


@pytest.mark.parametrize("backend", BACKENDS)
def test_observation_format_and_action_set(backend):
    env = build(backend)
    obs, info = env.reset(seed=0)
    assert obs.shape == (1, 4, 84, 84) and obs.dtype == np.uint8
    assert env.n_actions == 9  # NOOP FIRE UP RIGHT LEFT UPRIGHT UPLEFT RIGHTFIRE LEFTFIRE
    # a fresh game shows three zero frames (padding) and one real frame
    assert [int(obs[0, j].sum()) == 0 for j in range(4)] == [True, True, True, False]
    assert int(info["lives"][0]) == 3
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_life_loss_is_terminal_but_the_game_goes_on(backend):
    """SB3's episodic life: terminated=True on a life loss, yet no reset -- the frame stack just shifts."""
    env = build(backend)
    obs, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    lives = int(info["lives"][0])
    for _ in range(3000):
        nxt, r, term, trunc, info = env.step(rng.integers(0, 9, size=1))
        if int(info["lives"][0]) < lives:
            assert term[0] and not trunc[0] and not info["game_over"][0]
            assert np.array_equal(nxt[0, :3], obs[0, 1:]), "a life loss must not reset the frame stack"
            nxt2, r2, term2, _, info2 = env.step(rng.integers(0, 9, size=1))
            assert not info2["reset_step"][0] and np.array_equal(nxt2[0, :3], nxt[0, 1:])
            break
        obs = nxt
    else:
        pytest.fail("no life was lost in 3000 random steps")
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncation_ends_the_game_and_the_next_step_is_a_reset(backend):
    env = build(backend, max_episode_frames=200)  # 50 agent steps
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for t in range(200):
        nxt, r, term, trunc, info = env.step(rng.integers(0, 9, size=1))
        if info["game_over"][0]:
            assert trunc[0]
            nxt, r, term, trunc, info = env.step(rng.integers(0, 9, size=1))
            assert info["reset_step"][0] and not term[0] and not trunc[0] and r[0] == 0
            assert [int(nxt[0, j].sum()) == 0 for j in range(4)] == [True, True, True, False]
            break
    else:
        pytest.fail("the game was not truncated")
    assert 35 <= t <= 50  # 200 frames = 50 steps, minus the 1..30 no-op frames and the fire step at reset
    env.close()


def test_gym_state_roundtrip_is_exact():
    """Checkpoints store the emulator (with RNG), the no-op sampler and the frame stack: continuation is bit-exact."""
    a = GymAtari(seed=5, max_episode_frames=600)
    a.reset()
    rng = np.random.default_rng(1)
    for _ in range(170):  # crosses a truncation + autoreset (150 steps per game)
        a.step(rng.integers(0, 9, size=1))
    state, obs_at_state = a.get_state(), a.current_obs()
    actions = rng.integers(0, 9, size=250)
    first = [a.step(actions[i:i + 1]) for i in range(250)]
    b = GymAtari(seed=123, max_episode_frames=600)  # a different seed: everything must come from the state
    b.reset()
    b.set_state(state)
    assert np.array_equal(b.current_obs(), obs_at_state)
    second = [b.step(actions[i:i + 1]) for i in range(250)]
    for x, y in zip(first, second):
        assert np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
        assert np.array_equal(x[2], y[2]) and x[4]["reset_step"][0] == y[4]["reset_step"][0]


def test_vector_env_runs_several_games():
    env = VectorAtari(num_envs=3, seed=0, max_episode_frames=400)
    obs, _ = env.reset()
    assert obs.shape == (3, 4, 84, 84)
    obs, r, term, trunc, info = env.step(np.zeros(3, dtype=np.int64))
    assert r.shape == term.shape == info["game_over"].shape == (3,)
    env.close()


def test_episode_tracker_counts_whole_games_unclipped():
    tr = EpisodeTracker(2)
    z = np.zeros(2, bool)
    assert tr.update(np.array([44.0, 0.0]), {"reset_step": z, "game_over": z}) == []
    # env 0 loses a life (not a game over), env 1's game ends
    done = tr.update(np.array([0.0, 132.0]), {"reset_step": z, "game_over": np.array([False, True])})
    assert done == [(1, 132.0, 2)]
    # the autoreset step of env 1 is not part of any game
    done = tr.update(np.array([44.0, 0.0]), {"reset_step": np.array([False, True]), "game_over": np.array([True, False])})
    assert done == [(0, 88.0, 3)]
    assert tr.lengths.tolist() == [0, 0]
