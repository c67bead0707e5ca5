"""Evaluation games: the return of the current policy measured on games of its own, apart from training.

The returns that training logs (``kind=episode``) are those of the stochastic policy *while it learns*, so a learner
whose policy has a lower entropy scores higher there without being better. Every ``eval_every`` agent steps (at the
end of an outer iteration) :func:`evaluate` plays ``eval_episodes`` whole games with the greedy policy
(``argmax_a pi(a|s)``) and as many with the stochastic one (``a ~ pi(.|s)``), on a separate environment. Its games
are seeded by ``(seed, step)`` and its actions drawn from a generator of its own, so evaluating changes nothing in
the training run (a test checks that a run's training rows are the same with and without evaluation), and a resumed
run evaluates exactly as an uninterrupted one.
"""
from __future__ import annotations

import numpy as np
import torch

from .env import EpisodeTracker, make_env

EVAL_STATS = ("eval_return_greedy", "eval_return_stochastic", "eval_length_greedy", "eval_length_stochastic",
              "eval_entropy", "eval_games")


def eval_seed(seed: int, step: int, stream: int) -> int:
    """A seed fixed by ``(run seed, global step, stream)``; stream 0 = the greedy games, 1 = the stochastic ones."""
    return int(np.random.SeedSequence([seed, step, 1000 + stream]).generate_state(1)[0])


@torch.no_grad()
def play_games(actor, cfg, n_games: int, greedy: bool, seed: int, device) -> tuple[list, list, list]:
    """Play ``n_games`` whole games of ``cfg.env_id`` with ``actor``.

    Args:
        actor: the SAC :class:`~.sac.Actor` (``probs(obs) -> (probs, log_probs)``, both ``(1, |A|)``).
        cfg: the run's :class:`~.config.Config` (environment settings; a game is cut at ``max_episode_frames``).
        greedy: act by ``argmax`` (True) or sample from the policy (False).
        seed: seeds the environment and, for sampled actions, a generator of its own.

    Returns ``(returns, lengths, entropies)``: the unclipped score and the length in agent steps of each game, and
    the policy's entropy (nats) averaged over the states of each game.
    """
    env = make_env(cfg, seed=seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    tracker = EpisodeTracker(env.num_envs)
    obs, _ = env.reset(seed=seed)
    returns, lengths, entropies, ent_sum, ent_n = [], [], [], 0.0, 0
    was_training = actor.training
    actor.eval()
    try:
        while len(returns) < n_games:
            probs, log_probs = actor.probs(torch.as_tensor(obs).to(device))
            ent_sum += float(-(probs * log_probs).sum(-1).mean())
            ent_n += 1
            if greedy:
                action = probs.argmax(-1)
            else:
                action = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
            obs, raw_reward, _, _, info = env.step(action.cpu().numpy())
            for _, ret, length in tracker.update(raw_reward, info):
                returns.append(ret)
                lengths.append(length)
                entropies.append(ent_sum / max(ent_n, 1))
                ent_sum, ent_n = 0.0, 0
    finally:
        actor.train(was_training)
        env.close()
    return returns[:n_games], lengths[:n_games], entropies[:n_games]


def evaluate(actor, cfg, step: int, device) -> dict:
    """One evaluation at ``step``: the means of :data:`EVAL_STATS` over ``cfg.eval_episodes`` games per policy.

    ``eval_entropy`` is the stochastic policy's mean entropy over the states of its games; ``eval_games`` the
    number of games per policy.
    """
    n = cfg.eval_episodes
    g_ret, g_len, _ = play_games(actor, cfg, n, True, eval_seed(cfg.seed, step, 0), device)
    s_ret, s_len, s_ent = play_games(actor, cfg, n, False, eval_seed(cfg.seed, step, 1), device)
    return {"eval_return_greedy": float(np.mean(g_ret)), "eval_return_stochastic": float(np.mean(s_ret)),
            "eval_length_greedy": float(np.mean(g_len)), "eval_length_stochastic": float(np.mean(s_len)),
            "eval_entropy": float(np.mean(s_ent)), "eval_games": n}


__all__ = ["EVAL_STATS", "eval_seed", "play_games", "evaluate"]
