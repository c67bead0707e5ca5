"""MinAtar through the Atari pipeline: packed frames, the environment's conventions, exact resume, the 10x10 networks
and the per-environment settings."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from sobirl_lite.atari.cli import main
from sobirl_lite.atari.config import MINATAR_SETTINGS, Config
from sobirl_lite.atari.env import MINATAR_CHANNELS, MinAtarEnv, make_env, pack_channels
from sobirl_lite.atari.networks import MinAtarRewardNet, make_encoder, make_reward_net, unpack_bits
from sobirl_lite.atari.sac import DiscreteSAC

GAMES = ("breakout", "space_invaders")
# A tiny MinAtar run: 100-step outer iterations, SAC from step 150, the (78) term from step 250, 10-step segments.
TINY = ["--learning-starts", "150", "--inner-steps", "100", "--buffer-size", "1000", "--batch-size", "8",
        "--initial-pairs", "4", "--warmup-epochs", "1", "--pairs-per-iter", "2", "--pref-buffer-size", "10",
        "--reward-batch-size", "4", "--hyper-warmup-steps", "250", "--checkpoint-every", "100", "--threads", "1",
        "--no-progress"]


def rows_without_timings(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in ("sps", "wall_s")} for r in csv.DictReader(f)]


@pytest.mark.parametrize("game", MINATAR_CHANNELS)
def test_packing_round_trips_every_channel(game):
    rng = np.random.default_rng(0)
    c = MINATAR_CHANNELS[game]
    state = rng.random((3, 10, 10, c)) < 0.3  # (B, H, W, C) bool
    frames = np.stack([pack_channels(s) for s in state])[:, None]  # (B, 1, 10, 10) uint8
    assert frames.dtype == np.uint8
    planes = unpack_bits(torch.as_tensor(frames), c)  # (B, C, 10, 10)
    assert torch.equal(planes, torch.as_tensor(state).permute(0, 3, 1, 2).float())


def test_unpacking_keeps_stacked_frames_in_order():
    frames = torch.tensor([[[[1]], [[2]]]], dtype=torch.uint8)  # (1, 2 frames, 1, 1): channel 0, then channel 1
    assert unpack_bits(frames, 2).flatten().tolist() == [1.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("game", GAMES)
def test_env_follows_the_pipeline_conventions(game):
    env = MinAtarEnv(f"minatar:{game}", seed=0)
    obs, info = env.reset()
    assert obs.shape == (1, 1, 10, 10) and obs.dtype == np.uint8 and not info["reset_step"][0]
    assert env.n_actions == {"breakout": 3, "space_invaders": 4}[game]
    rng = np.random.default_rng(0)
    games = 0
    for _ in range(3000):
        obs, r, term, trunc, info = env.step(rng.integers(env.n_actions, size=1))
        if info["reset_step"][0]:  # the step after a game over: a new game, no reward, no termination
            assert r[0] == 0 and not term[0] and not trunc[0] and not info["game_over"][0]
            continue
        assert info["game_over"][0] == (term[0] or trunc[0])  # no lives: a terminal is the end of the game
        games += bool(info["game_over"][0])
        assert obs.max() < 2 ** MINATAR_CHANNELS[game]
    assert games > 5


def test_env_truncates_long_games():
    env = MinAtarEnv("minatar:space_invaders", seed=0, max_episode_frames=8)
    env.reset()
    lengths, t = [], 0
    for _ in range(200):
        _, _, term, trunc, info = env.step(np.array([1]))
        if info["reset_step"][0]:
            continue
        t += 1
        if info["game_over"][0]:
            lengths.append((t, bool(trunc[0]), bool(term[0])))
            t = 0
    assert lengths and all(n <= 8 for n, _, _ in lengths)
    assert any(n == 8 and tr and not te for n, tr, te in lengths)


def test_env_state_restores_the_exact_continuation():
    env = MinAtarEnv("minatar:breakout", seed=3)
    env.reset()
    rng = np.random.default_rng(1)
    for a in rng.integers(3, size=57):
        env.step(np.array([a]))
    state = env.get_state()
    actions = rng.integers(3, size=300)
    first = [env.step(np.array([a])) for a in actions]
    other = MinAtarEnv("minatar:breakout", seed=99)
    other.reset()
    other.set_state(state)
    second = [other.step(np.array([a])) for a in actions]
    for (o1, r1, t1, *_), (o2, r2, t2, *_) in zip(first, second):
        assert np.array_equal(o1, o2) and r1[0] == r2[0] and t1[0] == t2[0]


def test_settings_come_from_one_table_and_bad_input_is_named():
    cfg = Config.for_env("minatar:breakout")
    for k, v in MINATAR_SETTINGS.items():
        assert getattr(cfg, k) == v
    cfg.validate()
    assert Config.for_env("ALE/BeamRider-v5") == Config()
    assert Config.for_env("minatar:breakout", batch_size=7).batch_size == 7
    with pytest.raises(ValueError, match="unknown MinAtar game 'pong'"):
        Config.for_env("minatar:pong").validate()
    with pytest.raises(ValueError, match="screen_size=84"):
        Config(env_id="minatar:breakout").validate()
    with pytest.raises(ValueError, match="unknown MinAtar game"):
        make_env(Config.for_env("minatar:seaquest"))


@pytest.mark.parametrize("game", GAMES)
def test_networks_are_sized_for_10x10_inputs(game):
    env_id, c = f"minatar:{game}", MINATAR_CHANNELS[game]
    trunk, _, width = make_encoder(env_id, 1)
    conv, fc = trunk[0], trunk[3]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (c, 16, (3, 3))
    assert (fc.in_features, fc.out_features, width) == (16 * 8 * 8, 128, 128)
    cfg = Config.for_env(env_id)
    agent = DiscreteSAC(4, cfg, "cpu", in_frames=1)
    obs = torch.randint(0, 2 ** c, (5, 1, 10, 10), dtype=torch.uint8)
    probs, logp = agent.actor.probs(obs)
    assert probs.shape == (5, 4) and torch.allclose(probs.sum(-1), torch.ones(5))
    assert agent.qf1(obs).shape == (5, 4)
    net = make_reward_net(cfg, 4)
    assert isinstance(net, MinAtarRewardNet) and net(obs).shape == (5, 4)
    assert net.head.in_features == 128
    r = net.reward(obs, torch.zeros(5, dtype=torch.int64), clamp=1.0)
    assert r.shape == (5,) and r.abs().max() <= 1.0
    # the reward depends on the picture: another frame gives another reward
    assert not torch.allclose(net(obs), net(torch.zeros_like(obs)))


def test_atari_networks_are_unchanged_by_the_encoder_factory():
    cfg = Config()
    agent = DiscreteSAC(9, cfg, "cpu")
    assert agent.actor.head.in_features == 512 and agent.actor.encoder[0].kernel_size == (8, 8)
    assert type(make_reward_net(cfg, 9)).__name__ == "RewardNet"


@pytest.mark.parametrize("algo", ["sobirl", "drlhf", "sac"])
def test_cli_trains_minatar_with_one_flag(algo, tmp_path):
    out = tmp_path / algo
    assert main(["train", "--env", "minatar:breakout", "--algo", algo, "--steps", "300", "--out", str(out),
                 *TINY]) == 0
    rows = rows_without_timings(out / "progress.csv")
    iters = [r for r in rows if r["kind"] == "iteration"]
    assert [int(r["global_step"]) for r in iters] == [100, 200, 300]
    assert sum(r["kind"] == "episode" for r in rows) >= 5  # random Breakout games last about 10 steps
    if algo != "sac":
        assert [int(r["n_pairs"]) for r in iters] == [4, 6, 8]
        assert 0.0 <= float(iters[-1]["label_acc"]) <= 1.0


def test_minatar_resume_is_exact(tmp_path):
    """Stop a SoBiRL run at step 200 (a checkpoint), resume to 400: the log equals the uninterrupted run's."""
    common = ["train", "--env", "minatar:space_invaders", "--algo", "sobirl", "--seed", "4", *TINY]
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert main([*common, "--steps", "400", "--out", str(ref)]) == 0
    assert main([*common, "--steps", "200", "--out", str(cut)]) == 0
    assert main([*common, "--steps", "400", "--out", str(cut), "--resume"]) == 0
    assert rows_without_timings(cut / "progress.csv") == rows_without_timings(ref / "progress.csv")
