"""Every hyperparameter of the BeamRider experiment, in one dataclass.

The defaults are the settings of Appendix I.2 of Yang et al., completed with what the authors' code
(``UCAS-YanYang/SoBiRL``: ``alg_config/SoBiRL_config.yaml``, ``sac_subroutine.py``, ``RLHF_util/RLHF.py``) and the
CleanRL ``sac_atari.py`` it adapts use. The comment beside each field says where the value comes from. The CLI
(``python -m sobirl_lite.atari train``) exposes the fields a smoke run has to scale down.

Units: "steps" are *agent* steps (one action = ``frame_skip`` = 4 emulator frames), summed over all parallel
environments, exactly as CleanRL and the paper's x-axes count them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

ALGOS = ("sobirl", "drlhf", "sac")
# Variants of SoBiRL's hyper term (chapter 9); the first of each is the paper's (78). See estimator.py.
HYPER_EXPECTATIONS = ("policy", "uniform")
HYPER_BASELINES = ("none", "leave-one-out")
ENV_BACKENDS = ("gym", "vector")
LABEL_MODES = ("sampled", "deterministic")

# Fields a resumed run may change: everything else must match the checkpoint exactly, otherwise the resumed run
# would silently be a different experiment.
RESUMABLE_FIELDS = ("total_steps", "checkpoint_every", "device", "threads", "progress", "deterministic")
PRECISIONS = ("fp32", "bf16")

# What differs per environment, in one place: the settings that replace the BeamRider defaults below when a run's
# environment is a MinAtar game (``Config.for_env("minatar:breakout")``, ``--env minatar:breakout``). Why:
MINATAR_SETTINGS = dict(
    screen_size=10, frame_stack=1,  # 10x10 frames whose "trail" channels show motion: no stacking (Young & Tian)
    frame_skip=1, noop_max=0,  # no frame skip, and sticky actions (p = 0.1) instead of random no-ops
    max_episode_frames=10_000,  # truncate a game after 10,000 agent steps (MinAtar itself never stops one)
    total_steps=30_000,  # the study's budget (two shared CPU cores); SAC leaves random play well before it
    buffer_size=100_000,  # the whole run fits (a 10x10 frame is 100 bytes)
    learning_starts=5_000,  # random play first, so that the warm-up pairs and the first batches are diverse
    update_every=8,  # an update costs ~90% of a step on CPU; every 4 (CleanRL) learns a bit faster per step at 2x cost
    policy_lr=3e-4, q_lr=3e-4,  # CleanRL's defaults; the paper's 1e-4 belongs to a 4M-step schedule
    target_update_every=1_000,  # hard target copy every 1000 steps, as DQN on MinAtar (8000 is a quarter of a run)
    target_entropy_scale=0.5,  # 0.89 log|A| is 98% of the maximum for |A| = 3: the temperature rose, play stayed random
    inner_steps=1_000,  # N: 30 outer iterations (reward updates) in a 30k-step run
    segment_length=10,  # random Breakout games last ~11 steps (median 6): a 25-step segment rarely fits in a game
    initial_pairs=400, warmup_epochs=32,  # rewards are sparse (4% of random Breakout steps): many ties, more pairs
    pairs_per_iter=10,  # 10 new pairs per iteration, 700 labelled pairs in a 30k-step run
    pref_buffer_size=1_000,  # FIFO: holds every pair of a run
    hyper_warmup_steps=10_000,  # (78) joins BCE after a third of the run (the paper: after 1e5 of 4.3M steps)
    checkpoint_every=5_000,
    eval_every=5_000,  # 6 evaluations in a 30k-step run, 12 in a 60k one
)


@dataclass
class Config:
    """Hyperparameters of practical SoBiRL / DRLHF / SAC on BeamRider (defaults of Appendix I.2 of Yang et al.)."""

    # --- what to run -------------------------------------------------------------------------------------------
    algo: str = "sobirl"  # "sobirl" (estimator (78)), "drlhf" (BCE only), "sac" (true clipped reward)
    total_steps: int = 4_300_000  # the code stops once iteration * 1e4 > 4.3e6 (the authors' RLHF.py)
    seed: int = 3  # config seed of the authors' code
    device: str = "auto"  # "auto" = cuda when available, else cpu
    threads: int = 0  # torch CPU threads; 0 = leave torch's default

    # --- environment (Appendix I.2 "Atari wrappers"; SB3 AtariWrapper defaults) -----------------------------------
    env_id: str = "ALE/BeamRider-v5"  # v5 with frameskip=1, repeat_action_probability=0 == NoFrameskip-v4
    env_backend: str = "gym"  # "gym": gymnasium wrappers (exact resume); "vector": ale-py AtariVectorEnv (fast)
    num_envs: int = 1  # the paper uses one environment
    env_threads: int = 0  # worker threads of the vector backend (0 = ale-py's choice)
    noop_max: int = 30  # random 1..30 no-ops at reset
    frame_skip: int = 4  # action repeat, max-pool over the last two frames
    screen_size: int = 84  # 84x84 grayscale
    frame_stack: int = 4  # 4 stacked frames
    max_episode_frames: int = 108_000  # ALE's default game cap (27,000 agent steps); truncation, not termination

    # --- discrete SAC (Appendix I.2 SAC settings; CleanRL sac_atari) -------------------------------------------
    buffer_size: int = 1_000_000  # replay capacity in agent steps (single uint8 frames, summed over envs)
    gamma: float = 0.99
    batch_size: int = 64
    policy_lr: float = 1e-4  # authors' config policy_lr (CleanRL default 3e-4)
    q_lr: float = 1e-4  # authors' config q_lr; also the temperature's learning rate, as in CleanRL
    adam_eps: float = 1e-4  # Adam eps for actor, critics and log(alpha)
    lr_anneal_steps: int = 8_000_000  # lr_t = (1 - (t-1)/8e6) lr_0, floored at 0 (authors' lr_anneal)
    alpha0: float = 1.0  # initial temperature (log alpha = 0)
    autotune: bool = True  # learn alpha towards the target entropy
    target_entropy_scale: float = 0.89  # target entropy = 0.89 * log|A|
    learning_starts: int = 20_000  # uniformly random actions and no updates before this step
    update_every: int = 4  # one gradient update per 4 agent steps
    target_update_every: int = 8_000  # hard copy (polyak tau = 1) of the critics into the targets
    reward_clamp: float = 1.0  # predicted reward clamped to [-1, 1] inside the critic target

    # --- reward learning (Appendix I.2 reward settings; imitation PreferenceComparisons as configured by the authors) -
    inner_steps: int = 10_000  # N: SAC steps per outer iteration of Algorithm 3
    segment_length: int = 25  # Christiano et al. (2017) Atari clip length
    initial_pairs: int = 600  # warm-up comparisons from the initial (random) policy
    warmup_epochs: int = 512  # reward epochs on the warm-up pairs (initial_epoch_multiplier)
    total_pairs: int = 9_000  # total_comparisons of the schedule
    schedule_iterations: int = 2_000  # num_iterations of the hyperbolic schedule 1/(1+t)
    pairs_per_iter: int = 0  # >0 replaces the schedule by a constant number of new pairs per iteration
    pref_buffer_size: int = 3_000  # FIFO of labelled pairs (comparison_queue_size)
    reward_batch_size: int = 64
    reward_epochs: int = 1  # reward epochs over the buffer per outer iteration
    reward_lr: float = 3e-4  # AdamW, constant LR
    reward_weight_decay: float = 0.01  # PyTorch's AdamW default (the code passes only lr)
    label_mode: str = "sampled"  # "sampled": y ~ Bernoulli(sigma(G1 - G2)) (code); "deterministic": y = 1[G1 > G2]
    label_temperature: float = 1.0  # temperature of the synthetic Bradley-Terry labeller
    return_diff_clip: float = 50.0  # Bradley-Terry return-difference clip
    hyper_warmup_steps: int = 100_000  # coef = 1/alpha only once global_step > 1e5, else 0 (pure BCE)
    hyper_expectation: str = "policy"  # (78)'s E_a r_x(s, a) under pi_k (paper) or "uniform" (authors' code, in effect)
    hyper_baseline: str = "none"  # weight of a pair's hyper term: l_x (paper) or "leave-one-out" (l_x minus the others' mean)

    # --- evaluation (not in the paper: separate games, so that a return is not the training policy's) ----------
    eval_every: int = 100_000  # agent steps between evaluations, at the end of an outer iteration; 0 = none
    eval_episodes: int = 5  # whole games per evaluation with the greedy policy, and as many with the stochastic one

    # --- bookkeeping ------------------------------------------------------------------------------------------
    checkpoint_every: int = 50_000  # agent steps between checkpoints (also written on Ctrl-C)
    progress: bool = True  # tqdm progress bar
    deterministic: bool = False  # deterministic cuDNN/cuBLAS kernels (GPU runs reproducible, slower); else autotuned
    precision: str = "fp32"  # "bf16": the conv encoders under bfloat16 autocast (heads, TD targets, losses in fp32)

    def validate(self) -> None:
        """Raise ``ValueError`` with a readable message for settings that cannot work together."""
        problems = []

        def need(cond: bool, msg: str) -> None:
            if not cond:
                problems.append(msg)

        need(self.algo in ALGOS, f"algo must be one of {ALGOS}, got {self.algo!r}")
        need(self.env_backend in ENV_BACKENDS, f"env_backend must be one of {ENV_BACKENDS}, got {self.env_backend!r}")
        need(self.label_mode in LABEL_MODES, f"label_mode must be one of {LABEL_MODES}, got {self.label_mode!r}")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        need(self.hyper_expectation in HYPER_EXPECTATIONS,
             f"hyper_expectation must be one of {HYPER_EXPECTATIONS}, got {self.hyper_expectation!r}")
        need(self.hyper_baseline in HYPER_BASELINES,
             f"hyper_baseline must be one of {HYPER_BASELINES}, got {self.hyper_baseline!r}")
        need(self.algo == "sobirl" or (self.hyper_expectation, self.hyper_baseline) == ("policy", "none"),
             f"--hyper-expectation and --hyper-baseline change SoBiRL's (78) term; {self.algo} has none")
        need(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
             f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("total_steps", "num_envs", "buffer_size", "batch_size", "update_every", "target_update_every",
                     "inner_steps", "segment_length", "pref_buffer_size", "reward_batch_size", "checkpoint_every",
                     "frame_skip", "frame_stack", "screen_size", "max_episode_frames", "schedule_iterations"):
            need(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        for name in ("learning_starts", "initial_pairs", "warmup_epochs", "pairs_per_iter", "total_pairs",
                     "hyper_warmup_steps", "noop_max", "reward_epochs", "threads", "env_threads", "seed",
                     "eval_every", "eval_episodes"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(0.0 < self.gamma < 1.0, f"gamma must lie in (0, 1), got {self.gamma}")
        need(self.alpha0 > 0.0, f"alpha0 must be positive, got {self.alpha0}")
        if self.env_id.startswith("minatar:"):
            from .env import MINATAR_CHANNELS

            game = self.env_id[len("minatar:"):]
            need(game in MINATAR_CHANNELS, f"unknown MinAtar game {game!r}; choose one of "
                 f"{', '.join('minatar:' + g for g in MINATAR_CHANNELS)}")
            need(self.screen_size == 10, f"MinAtar frames are 10x10 but screen_size={self.screen_size}; build the "
                 f"config with Config.for_env({self.env_id!r}) (the CLI's --env does)")
            need(self.num_envs == 1, "MinAtar runs one environment (num_envs=1)")
        need(self.num_envs == 1 or self.env_backend == "vector",
             "num_envs > 1 needs --env-backend vector")
        # The replay buffer keeps buffer_size // num_envs frames per environment; a SAC batch and a segment
        # (plus the 3 stacking frames and the terminal frame) must fit inside one environment's share.
        per_env = self.buffer_size // max(self.num_envs, 1)
        need(per_env >= max(self.segment_length, 1) + self.frame_stack + 2,
             f"buffer_size={self.buffer_size} is too small: each of the {self.num_envs} environment(s) needs at least "
             f"segment_length + frame_stack + 2 = {self.segment_length + self.frame_stack + 2} slots")
        need(self.inner_steps >= self.num_envs * (self.segment_length + 1),
             f"inner_steps={self.inner_steps} is too small to cut a {self.segment_length}-step segment from one "
             f"outer iteration's rollouts")
        need(self.inner_steps <= per_env * self.num_envs - self.num_envs * (self.frame_stack + 1),
             f"inner_steps={self.inner_steps} must fit inside the replay buffer (buffer_size={self.buffer_size}), "
             f"because segments are cut from the replay buffer's newest inner_steps transitions")
        if problems:
            raise ValueError("invalid configuration:\n  - " + "\n  - ".join(problems))

    @classmethod
    def for_env(cls, env_id: str, **overrides) -> "Config":
        """A config for ``env_id`` with its environment's settings (:data:`MINATAR_SETTINGS` for ``minatar:GAME``),
        then ``overrides`` on top. ``Config.for_env("ALE/BeamRider-v5")`` is the paper's ``Config()``."""
        base = dict(MINATAR_SETTINGS) if env_id.startswith("minatar:") else {}
        return cls(**{**base, "env_id": env_id, **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        return cls(**d)


def arm_name(algo: str, hyper_expectation: str = "policy", hyper_baseline: str = "none") -> str:
    """What a run is, for names and groups: ``"sobirl"`` for the paper's (78), plus a suffix per variant flag
    (``"sobirl-uniform"``, ``"sobirl-loo"``); ``"drlhf"`` and ``"sac"`` as they are."""
    return algo + ("-uniform" if hyper_expectation == "uniform" else "") + \
        ("-loo" if hyper_baseline == "leave-one-out" else "")


def config_arm(cfg: dict) -> str:
    """:func:`arm_name` of a run's saved config (older configs, without the variant fields, are the paper's)."""
    return arm_name(cfg["algo"], cfg.get("hyper_expectation", "policy"), cfg.get("hyper_baseline", "none"))


def config_differences(saved: dict, new: dict, ignore=RESUMABLE_FIELDS) -> dict:
    """``{field: (saved, new)}`` for every field that differs, except the ones a resume may change."""
    keys = (set(saved) | set(new)) - set(ignore)
    return {k: (saved.get(k), new.get(k)) for k in sorted(keys) if saved.get(k) != new.get(k)}


__all__ = ["Config", "ALGOS", "HYPER_EXPECTATIONS", "HYPER_BASELINES", "arm_name", "config_arm", "ENV_BACKENDS", "LABEL_MODES", "RESUMABLE_FIELDS", "config_differences"]
