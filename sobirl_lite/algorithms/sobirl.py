"""SoBiRL, Algorithm 2 of the paper (Section 5 of Yang et al.): model-free bilevel RL with a policy-mirror-descent inner solver.

Pseudocode (Algorithm 2) and where each line lives below::

    for k = 0, ..., K-1:
        π_k ≈ π*_{x_k}: T iterations of policy mirror descent on M_τ(x_k), warm-started from π_{k-1}  # inner loop
        ĝ_k = (13) + (14), estimator (15), built from π_k                                          # hyper-gradient
        x_{k+1} = x_k - β ĝ_k                                                                      # outer step

Both levels are reached through :class:`~sobirl_lite.sampling.TabularEnv` only: the lower level by rollouts from
every state-action pair (discounted visits, which give PMD's soft :math:`\\hat Q` *and* Prop. 5.1's
:math:`\\widehat{\\nabla Q},\\widehat{\\nabla V}`), the upper level by trajectory tuples from :math:`\\mu_u`. The policy
evaluation rollouts of the last PMD iteration's policy serve both the hyper-gradient at :math:`x_k` and the first PMD
step at :math:`x_{k+1}` (visits depend on the policy, not on the reward), so the hyper-gradient's step 1 costs no extra
samples. ``inner_q="exact"`` replaces PMD's sampled :math:`\\hat Q` by exact policy evaluation (model-based), which
isolates the estimator's own noise.

The two problem kinds:

* a :class:`~sobirl_lite.bilevel.BilevelProblem` whose upper level is an
  :class:`~sobirl_lite.upper.UpperValue` (reward shaping): :math:`l(\\tau)=-\\sum_t\\gamma^t r_u`, :math:`N=1`;
* an :class:`~sobirl_lite.rlhf.RLHFSetup`: :math:`l_x=` BCE of the Bradley–Terry model on labelled segment pairs,
  :math:`N=2`. Each iteration queries ``pairs_per_iteration`` new pairs from :math:`\\pi_k`, labels them and pushes
  them into a FIFO buffer; (13) is averaged over the buffer, and (14) over the fresh on-policy pairs only
  (``exploration_pairs="fresh"``, the literal (15): the score-function term is only unbiased for pairs drawn from
  :math:`\\pi_k`) or over the whole buffer (``"buffer"``, as the authors' practical code does).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from ..estimators import (ReturnLoss, estimate_hypergradient, sample_discounted_visits,
                          sample_tuples, soft_q_from_visits, truncation_horizon)
from ..hypergrad import hypergradient, phi as exact_phi
from ..bilevel import BilevelProblem
from ..rlhf import PreferenceBuffer, RLHFSetup
from ..sampling import TabularEnv
from ..soft import evaluate_policy, softmax_policy
from ..upper import UpperValue
from ._common import check_array, check_positive, descend
from .history import History


# ----------------------------------------------------------------------------------------------------------------
# Policy mirror descent (Section 5 of Yang et al.), in logit form
# ----------------------------------------------------------------------------------------------------------------
def pmd_update(logits, Q, eta: float, tau: float):
    """One KL-prox PMD step with entropy regulariser (Section 5 of Yang et al.):
    :math:`\\pi^{+}\\propto\\pi^{1/(1+\\eta\\tau)}\\exp(\\eta Q/(1+\\eta\\tau))`.

    With :math:`\\pi=\\mathrm{softmax}(z)` this is :math:`z^{+}=(z+\\eta Q)/(1+\\eta\\tau)` (the per-state normaliser drops out
    of a softmax), so we carry logits ``z`` (S, A) instead of probabilities. ``eta=inf`` is soft policy iteration,
    :math:`z^+=Q/\\tau`.
    """
    if not eta > 0:
        raise ValueError(f"the PMD step eta must be positive; got {eta}")
    if np.isinf(eta):
        return np.asarray(Q, dtype=np.float64) / tau
    z = (np.asarray(logits, dtype=np.float64) + eta * np.asarray(Q, dtype=np.float64)) / (1.0 + eta * tau)
    return z - z.max(axis=1, keepdims=True)  # keep logits bounded; the softmax is unchanged


def policy_mirror_descent(mdp, iterations: int, eta: float = 1.0, logits0=None, q_fn=None):
    """Run ``iterations`` PMD steps on ``mdp`` from ``logits0`` (uniform policy by default); returns
    ``(logits, pi)``. ``q_fn(pi) -> Q`` (S, A) evaluates the soft Q of a policy; by default exact evaluation
    (:func:`~sobirl_lite.soft.evaluate_policy`), which converges linearly to :math:`\\pi^*` at rate about
    :math:`1-(1-\\gamma)\\eta\\tau/(1+\\eta\\tau)`."""
    z = np.zeros((mdp.S, mdp.A)) if logits0 is None else np.array(logits0, dtype=np.float64)
    q_fn = (lambda p: evaluate_policy(mdp, p)[1]) if q_fn is None else q_fn
    for _ in range(int(iterations)):
        z = pmd_update(z, q_fn(softmax_policy(z, 1.0)), eta, mdp.tau)
    return z, softmax_policy(z, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class SoBiRLConfig:
    """Hyperparameters of Algorithm 2 of Yang et al.

    * ``iterations`` = K outer steps, ``step_size`` = β, ``weight_decay`` λ (the step is :math:`x-\\beta(\\hat g+\\lambda x)`).
    * ``pmd_iterations`` = T inner PMD steps per outer step (T = O(log 1/ε)), ``pmd_eta`` = η of the KL prox.
    * ``inner_q``: ``"sampled"`` (Monte Carlo soft Q: truly model-free) or ``"exact"`` (exact policy evaluation).
    * ``n_rollouts`` rollouts per state-action pair for discounted visits; ``horizon`` their truncation (default:
      :func:`~sobirl_lite.estimators.truncation_horizon` with ``truncation_tol``).
    * ``n_tuples`` upper-level trajectories per step (reward shaping; RLHF takes its pairs from the setup);
      ``upper_horizon`` their length (default: from ``truncation_tol`` and :math:`\\max|r_u|`).
    * ``terms``: which terms of (15) drive the step: ``"both"``, ``"exploitation"`` (13) only or ``"exploration"``
      (14) only (both are always recorded); ``exploration_pairs``: ``"fresh"`` (default, the literal (15)) or
      ``"buffer"`` (RLHF only, see the module docstring).
    * ``track_true_grad``: record :math:`\\|\\nabla\\phi(x_k)\\|` and :math:`\\phi(x_k)` from the closed form (9) (model-based,
      for plots only; reward shaping only); ``eval_every``: RLHF metrics every this many iterations.
    * ``seed`` for every random draw; ``progress`` shows a tqdm bar; ``keep_iterates`` stores ``x_k`` in ``h.xs``.
    """

    iterations: int = 100
    step_size: float = 0.1
    weight_decay: float = 0.0
    pmd_iterations: int = 5
    pmd_eta: float = 1.0
    inner_q: str = "sampled"
    n_rollouts: int = 10
    horizon: int | None = None
    truncation_tol: float = 1e-3
    n_tuples: int = 100
    upper_horizon: int | None = None
    terms: str = "both"
    exploration_pairs: str = "fresh"
    track_true_grad: bool = False
    eval_every: int = 1
    seed: int = 0
    progress: bool = True
    keep_iterates: bool = False

    def validate(self):
        check_positive("iterations", self.iterations, integer=True, allow_zero=True)
        for name in ("pmd_iterations", "n_rollouts", "n_tuples", "eval_every"):
            check_positive(name, getattr(self, name), integer=True)
        for name in ("horizon", "upper_horizon"):     # None picks a horizon from truncation_tol
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name), integer=True)
        check_positive("step_size", self.step_size)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        check_positive("truncation_tol", self.truncation_tol)
        if not (self.pmd_eta > 0):                        # eta = inf is allowed: soft policy iteration
            raise ValueError(f"pmd_eta must be positive (inf allowed); got {self.pmd_eta!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")
        if self.inner_q not in ("sampled", "exact"):
            raise ValueError(f"inner_q must be 'sampled' or 'exact'; got {self.inner_q!r}")
        if self.terms not in ("both", "exploitation", "exploration"):
            raise ValueError(f"terms must be 'both', 'exploitation' or 'exploration'; got {self.terms!r}")
        if self.exploration_pairs not in ("buffer", "fresh"):
            raise ValueError(f"exploration_pairs must be 'buffer' or 'fresh'; got {self.exploration_pairs!r}")


# ----------------------------------------------------------------------------------------------------------------
# Shared machinery for the two problem kinds
# ----------------------------------------------------------------------------------------------------------------
class _Inner:
    """The lower level as the learner sees it: a sampling environment (dynamics only) plus the learner's own
    reward :math:`r_x`. Computes discounted visits of a policy (sampled, or exact when ``inner_q="exact"``) and runs
    PMD with them; counts transitions."""

    def __init__(self, env: TabularEnv, reward, gamma, tau, config: SoBiRLConfig, rng, exact_mdp_fn=None):
        self.env, self.reward, self.gamma, self.tau, self.cfg, self.rng = env, reward, gamma, tau, config, rng
        self.horizon = config.horizon or truncation_horizon(gamma, config.truncation_tol)
        self.exact_mdp_fn = exact_mdp_fn  # x -> TabularMDP, only used when inner_q == "exact"
        self.samples = 0
        self._cached = None  # visits of the current policy, reused across the x-step

    def sampled_visits(self, pi):
        v = sample_discounted_visits(self.env, pi, self.gamma, self.cfg.n_rollouts, self.horizon, self.rng)
        self.samples += v.transitions
        return v

    def solve(self, x, logits, need_visits: bool = True):
        """T PMD steps on M_τ(x) from ``logits``; returns the new logits, the policy π_k and sampled visits of π_k
        (``None`` when not needed and Q is exact; with sampled Q they are always drawn, as the next PMD step's
        evaluation)."""
        r = self.reward.value(x)
        for _ in range(int(self.cfg.pmd_iterations)):
            pi = softmax_policy(logits, 1.0)
            if self.cfg.inner_q == "exact":
                Q = evaluate_policy(self.exact_mdp_fn(x), pi)[1]
            else:
                visits = self._cached if self._cached is not None else self.sampled_visits(pi)
                Q = soft_q_from_visits(visits, r, self.tau)
            self._cached = None
            logits = pmd_update(logits, Q, self.cfg.pmd_eta, self.tau)
        pi = softmax_policy(logits, 1.0)
        if self.cfg.inner_q == "exact" and not need_visits:
            return logits, pi, None
        visits = self.sampled_visits(pi)
        if self.cfg.inner_q == "sampled":
            self._cached = visits  # the next PMD step evaluates the same policy: reuse its rollouts
        return logits, pi, visits


def _step_direction(est, terms: str):
    """The direction of line 4: the whole estimate (15), or one of its terms for ablations."""
    return {"both": est.total, "exploitation": est.exploitation, "exploration": est.exploration}[terms]


def _check_x0(x0, n):
    return check_array("x0", x0, (n,))


def _outer_step(x, step, cfg, name, k, x0_norm):
    """Line 4, :math:`x-\\beta(\\text{step}+\\lambda x)`, with the divergence check of the model-based methods."""
    return descend(x, step + cfg.weight_decay * x, cfg.step_size, name, k, x0_norm, hint="reduce step_size")


def sobirl(problem, x0, config: SoBiRLConfig | None = None) -> History:
    """Algorithm 2 on a reward-shaping :class:`BilevelProblem` (upper level :class:`UpperValue`) or an
    :class:`RLHFSetup`. Returns a :class:`History`; ``h.extra`` holds per-iteration arrays ``exploitation`` and
    ``exploration`` (the terms (13), (14), each (K, n)) and, for RLHF, ``true_return``, ``pref_accuracy``,
    ``buffer_accuracy``, ``labels`` (cumulative) at the evaluated iterations ``eval_iteration``.
    """
    cfg = SoBiRLConfig() if config is None else config
    cfg.validate()
    if isinstance(problem, RLHFSetup):
        return _sobirl_rlhf(problem, x0, cfg)
    if isinstance(problem, BilevelProblem):
        return _sobirl_shaping(problem, x0, cfg)
    raise TypeError(f"sobirl needs a BilevelProblem or an RLHFSetup; got {type(problem).__name__}")


def _sobirl_shaping(problem: BilevelProblem, x0, cfg: SoBiRLConfig) -> History:
    if not isinstance(problem.upper, UpperValue):
        raise ValueError("model-free SoBiRL needs an upper level that is an expectation over trajectories; for a "
                         "BilevelProblem that is UpperValue (reward shaping). Use an RLHFSetup for preferences.")
    x = _check_x0(x0, problem.n)
    x0_norm = float(np.linalg.norm(x))
    rng = np.random.default_rng(cfg.seed)
    env_lower = TabularEnv(problem.mdp(x))   # dynamics only: rewards come from the learner's r_x
    env_upper = TabularEnv(problem.upper.mdp)  # M_u: its rewards are r_u
    gamma_u = problem.upper.mdp.gamma
    H_u = cfg.upper_horizon or truncation_horizon(gamma_u, cfg.truncation_tol,
                                                   max(np.abs(problem.upper.mdp.r).max(), 1e-12))
    loss = ReturnLoss(gamma_u)
    inner = _Inner(env_lower, problem.reward, problem.gamma, problem.tau, cfg, rng, exact_mdp_fn=problem.mdp)
    h = History("SoBiRL", asdict(cfg))
    h.extra.update(exploitation=[], exploration=[], upper_horizon=H_u, lower_horizon=inner.horizon)
    logits = np.zeros((problem.S, problem.A))
    upper_samples = 0
    for k in tqdm(range(int(cfg.iterations)), desc="SoBiRL", disable=not cfg.progress):
        logits, pi, visits = inner.solve(x, logits)                                    # line 2: π_k ≈ π*_{x_k}
        batch = sample_tuples(env_upper, pi, cfg.n_tuples, 1, H_u, rng)
        upper_samples += cfg.n_tuples * H_u
        est = estimate_hypergradient(x, visits, problem.reward, problem.tau, loss, batch)  # line 3: (15)
        step = _step_direction(est, cfg.terms)
        row = dict(iteration=k, grad_norm=np.linalg.norm(step), phi=est.upper_value,
                   inner_iterations=cfg.pmd_iterations, samples=inner.samples + upper_samples)
        if cfg.track_true_grad:
            row.update(true_grad_norm=np.linalg.norm(hypergradient(problem, x)), phi=exact_phi(problem, x))
        h.record(**row)
        h.extra["exploitation"].append(est.exploitation)
        h.extra["exploration"].append(est.exploration)
        if cfg.keep_iterates:
            h.xs.append(x.copy())
        x = _outer_step(x, step, cfg, "SoBiRL", k, x0_norm)                          # line 4
    h.extra["exploitation"] = np.array(h.extra["exploitation"]).reshape(-1, problem.n)
    h.extra["exploration"] = np.array(h.extra["exploration"]).reshape(-1, problem.n)
    h.extra["policy"] = softmax_policy(logits, 1.0)
    h.x = x
    return h


# ----------------------------------------------------------------------------------------------------------------
# RLHF
# ----------------------------------------------------------------------------------------------------------------
class _RLHFLoop:
    """The RLHF bookkeeping shared by SoBiRL, DRLHF and RL on the true reward: environment, query/label budget,
    FIFO buffer, metrics. Keeps evaluation draws on their own random stream so they never change a run."""

    def __init__(self, setup: RLHFSetup, cfg, name: str):
        self.setup, self.cfg = setup, cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.eval_rng = np.random.default_rng([cfg.seed, 1])
        self.env = setup.make_env()           # upper MDP: ground-truth reward inside (only the gatherer reads it)
        self.eval_env = setup.make_env()
        self.buffer = PreferenceBuffer(setup.buffer_capacity)
        self.query_samples = 0
        self.h = History(name, asdict(cfg))
        self.h.extra.update(eval_iteration=[], true_return=[], pref_accuracy=[], buffer_accuracy=[], labels=[],
                            samples_at_eval=[])

    def query(self, pi, n_pairs):
        before = self.env.transitions_sampled
        pairs = self.setup.query(self.env, pi, n_pairs, self.rng)
        self.query_samples += self.env.transitions_sampled - before
        return pairs

    def evaluate(self, k, x, pi, samples):
        ex = self.h.extra
        ex["eval_iteration"].append(k)
        ex["true_return"].append(self.setup.true_return(pi))
        ex["pref_accuracy"].append(np.nan if x is None else
                                   self.setup.preference_accuracy(x, self.eval_env, pi, self.eval_rng))
        ex["buffer_accuracy"].append(np.nan if (x is None or len(self.buffer) == 0) else
                                     self.setup.model.accuracy(x, self.buffer.batch()))
        ex["labels"].append(self.buffer.total_pushed)
        ex["samples_at_eval"].append(samples)

    def finish(self, x, logits):
        for key in ("eval_iteration", "true_return", "pref_accuracy", "buffer_accuracy", "labels", "samples_at_eval"):
            self.h.extra[key] = np.asarray(self.h.extra[key], dtype=np.float64)
        self.h.extra["policy"] = softmax_policy(logits, 1.0)
        self.h.x = None if x is None else np.asarray(x)
        return self.h


def _sobirl_rlhf(setup: RLHFSetup, x0, cfg: SoBiRLConfig) -> History:
    x = _check_x0(x0, setup.n)
    x0_norm = float(np.linalg.norm(x))
    loop = _RLHFLoop(setup, cfg, "SoBiRL")
    mdp, model = setup.mdp, setup.model
    inner = _Inner(TabularEnv(mdp), setup.reward, mdp.gamma, mdp.tau, cfg, loop.rng, exact_mdp_fn=setup.lower_mdp)
    h = loop.h
    h.extra.update(exploitation=[], exploration=[])
    logits = np.zeros((mdp.S, mdp.A))
    if setup.initial_pairs:
        loop.buffer.push(loop.query(softmax_policy(logits, 1.0), setup.initial_pairs))   # warm-up labels from π_{-1}
    for k in tqdm(range(int(cfg.iterations)), desc="SoBiRL (RLHF)", disable=not cfg.progress):
        logits, pi, visits = inner.solve(x, logits)                                       # line 2
        fresh = loop.query(pi, setup.pairs_per_iteration)                                 # d ~ ρ²(π_k), labelled
        loop.buffer.push(fresh)
        data = loop.buffer.batch()
        explore_on = data if cfg.exploration_pairs == "buffer" else fresh
        est = estimate_hypergradient(x, visits, setup.reward, mdp.tau, model, data, exploration_batch=explore_on)
        step = _step_direction(est, cfg.terms)
        samples = inner.samples + loop.query_samples
        h.record(iteration=k, grad_norm=np.linalg.norm(step), phi=model.loss(x, fresh),
                 inner_iterations=cfg.pmd_iterations, samples=samples)
        h.extra["exploitation"].append(est.exploitation)
        h.extra["exploration"].append(est.exploration)
        if k % cfg.eval_every == 0 or k == cfg.iterations - 1:
            loop.evaluate(k, x, pi, samples)
        if cfg.keep_iterates:
            h.xs.append(x.copy())
        x = _outer_step(x, step, cfg, "SoBiRL (RLHF)", k, x0_norm)                   # line 4
    h.extra["exploitation"] = np.array(h.extra["exploitation"]).reshape(-1, setup.n)
    h.extra["exploration"] = np.array(h.extra["exploration"]).reshape(-1, setup.n)
    return loop.finish(x, logits)
