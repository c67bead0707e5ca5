"""Networks and the discrete SAC update: architectures of Appendix I.2 of Yang et al., TD target by hand, temperature direction, LR anneal."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn

from sobirl_lite.atari.config import Config
from sobirl_lite.atari.reward_net import RewardNet
from sobirl_lite.atari.sac import Actor, DiscreteSAC, SoftQNetwork, nature_cnn


def frames(B, seed=0):
    return torch.randint(0, 256, (B, 4, 84, 84), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_reward_net_matches_appendix_I_2():
    net = RewardNet(9)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [7, 5, 3, 3]
    assert [c.stride[0] for c in convs] == [3, 2, 1, 1]
    assert all(c.out_channels == 16 for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 4
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.5] * 4
    assert {m.negative_slope for m in net.modules() if isinstance(m, nn.LeakyReLU)} == {0.01}
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(16 * 7 * 7, 64), (64, 9)]
    assert net(frames(3)).shape == (3, 9)


def test_reward_for_sac_is_eval_mode_and_clamped():
    torch.manual_seed(0)
    net = RewardNet(9)
    with torch.no_grad():
        net.head[-1].bias.fill_(5.0)  # push every reward above the clamp
    obs, a = frames(4), torch.tensor([0, 3, 8, 1])
    net.train()
    r1, r2 = net.reward(obs, a), net.reward(obs, a)
    assert net.training  # mode restored
    assert torch.equal(r1, r2), "eval mode: no dropout, running BatchNorm statistics"
    assert torch.all(r1 <= 1.0) and torch.all(r1 >= -1.0)
    assert torch.allclose(net.reward(obs, a, clamp=None), net.eval()(obs).gather(1, a[:, None]).squeeze(1))


def test_nature_cnn_and_heads():
    assert nature_cnn()(torch.rand(2, 4, 84, 84)).shape == (2, 512)
    actor, q = Actor(9), SoftQNetwork(9)
    p, logp = actor.probs(frames(5))
    assert p.shape == (5, 9) and torch.allclose(p.sum(-1), torch.ones(5)) and torch.allclose(p.log(), logp, atol=1e-5)
    assert q(frames(5)).shape == (5, 9)


def test_td_target_by_hand():
    torch.manual_seed(0)
    sac = DiscreteSAC(9, Config(alpha0=0.3))
    nxt, r, d = frames(6, 1), torch.randn(6), torch.tensor([0, 1, 0, 0, 1, 0.0])
    y = sac.td_target(r, nxt, d)
    with torch.no_grad():
        p, logp = sac.actor.probs(nxt)
        q = torch.minimum(sac.qf1_target(nxt), sac.qf2_target(nxt))
        v = sum(p[:, a] * (q[:, a] - 0.3 * logp[:, a]) for a in range(9))
    assert torch.allclose(y, r + 0.99 * (1 - d) * v, atol=1e-5)
    assert torch.allclose(y[d == 1], r[d == 1])  # terminal (life loss or game over): no bootstrap


def test_update_moves_networks_and_temperature_the_right_way():
    torch.manual_seed(0)
    sac = DiscreteSAC(9, Config())
    assert sac.target_entropy == pytest.approx(0.89 * math.log(9))
    batch = {"obs": frames(8), "next_obs": frames(8, 1), "actions": torch.randint(0, 9, (8,)),
             "dones": torch.zeros(8)}
    before = [p.clone() for p in sac.actor.parameters()]
    stats = sac.update(batch, torch.ones(8))
    assert stats.shape == (5,) and torch.isfinite(stats).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, sac.actor.parameters()))
    # a fresh policy is near-uniform: entropy ~ log 9 > 0.89 log 9, so the temperature must go down
    assert float(stats[3]) > sac.target_entropy and sac.alpha < 1.0
    # the targets only move on update_targets()
    assert not all(torch.equal(a, b) for a, b in zip(sac.qf1.parameters(), sac.qf1_target.parameters()))
    sac.update_targets()
    assert all(torch.equal(a, b) for a, b in zip(sac.qf1.parameters(), sac.qf1_target.parameters()))


def test_losses_equal_cleanrl_reference_expressions():
    """Critic, actor and temperature losses (and the steps they drive) equal CleanRL's sac_atari expressions,
    written out here term by term: the actor and temperature losses average over the batch *and* the actions."""
    torch.manual_seed(1)
    sac = DiscreteSAC(9, Config(alpha0=0.7))
    B = 8
    batch = {"obs": frames(B, 2), "next_obs": frames(B, 3), "actions": torch.randint(0, 9, (B,)),
             "dones": torch.tensor([0, 0, 1, 0, 0, 0, 1, 0.0])}
    rewards = torch.rand(B) * 2 - 1
    ref = copy.deepcopy(sac)  # same weights, same optimiser states, updated by the reference below
    stats = sac.update(batch, rewards)

    obs, a = batch["obs"], batch["actions"]
    # critics (CleanRL): y = r + gamma (1 - d) sum_a' pi(a'|s') (min Q_targ - alpha log pi), two MSEs
    with torch.no_grad():
        p_next, logp_next = ref.actor.probs(batch["next_obs"])
        q_next = torch.min(ref.qf1_target(batch["next_obs"]), ref.qf2_target(batch["next_obs"]))
        alpha = ref.log_alpha.exp()
        y = rewards + (1 - batch["dones"]) * 0.99 * (p_next * (q_next - alpha * logp_next)).sum(1)
    q1, q2 = ref.qf1(obs)[torch.arange(B), a], ref.qf2(obs)[torch.arange(B), a]
    qf_loss = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
    ref.q_optimizer.zero_grad()
    qf_loss.backward()
    ref.q_optimizer.step()
    # actor (CleanRL): (action_probs * (alpha * log_pi - min_qf_values)).mean() over a (B, |A|) tensor
    p, logp = ref.actor.probs(obs)
    with torch.no_grad():
        q_min = torch.min(ref.qf1(obs), ref.qf2(obs))
    terms = [p[b, i] * (alpha * logp[b, i] - q_min[b, i]) for b in range(B) for i in range(9)]
    actor_loss = sum(terms) / (B * 9)
    ref.actor_optimizer.zero_grad()
    actor_loss.backward()
    ref.actor_optimizer.step()
    # temperature (CleanRL): (action_probs * (-exp(log_alpha) * (log_pi + target_entropy))).mean()
    h_target = 0.89 * math.log(9)
    alpha_terms = [p[b, i].detach() * (-ref.log_alpha.exp() * (logp[b, i].detach() + h_target))
                   for b in range(B) for i in range(9)]
    alpha_loss = sum(alpha_terms) / (B * 9)
    ref.alpha_optimizer.zero_grad()
    alpha_loss.backward()
    ref.alpha_optimizer.step()

    assert float(stats[0]) == pytest.approx(qf_loss.item(), rel=1e-5)
    assert float(stats[1]) == pytest.approx(actor_loss.item(), rel=1e-5, abs=1e-7)
    assert float(stats[2]) == pytest.approx(alpha_loss.item(), rel=1e-5, abs=1e-9)
    entropy = -(p * logp).sum(1).detach()
    assert alpha_loss.item() == pytest.approx(float((alpha * (entropy - h_target)).mean() / 9), rel=1e-5)
    for mine, theirs in zip(sac.actor.parameters(), ref.actor.parameters()):
        assert torch.allclose(mine, theirs, atol=1e-6)
    assert sac.log_alpha.item() == pytest.approx(ref.log_alpha.item(), abs=1e-7)
    assert sac.log_alpha.item() != pytest.approx(math.log(0.7))  # the temperature did move


def test_linear_learning_rate_anneal():
    sac = DiscreteSAC(9, Config(lr_anneal_steps=1000))
    assert sac.set_learning_rate(1) == 1.0
    assert sac.set_learning_rate(501) == pytest.approx(0.5)
    assert sac.actor_optimizer.param_groups[0]["lr"] == pytest.approx(0.5e-4)
    assert sac.set_learning_rate(5000) == 0.0


def test_sac_state_roundtrip():
    a, b = DiscreteSAC(9, Config()), DiscreteSAC(9, Config(alpha0=0.5))
    b.load_state_dict(a.state_dict())
    assert b.alpha == a.alpha
    obs = frames(2)
    assert torch.equal(a.actor(obs), b.actor(obs))
