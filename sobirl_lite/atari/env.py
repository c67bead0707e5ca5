"""BeamRider and MinAtar environments with one batched interface (Appendix I.2 of Yang et al., "Atari wrappers").

Two Atari backends give the learner the same thing (and :class:`MinAtarEnv` gives it for MinAtar games, selected by
an ``env_id`` of the form ``"minatar:GAME"`` in :func:`make_env`):

* :class:`GymAtari` -- ``ALE/BeamRider-v5`` (``frameskip=1``, ``repeat_action_probability=0``, i.e. the old
  ``NoFrameskip-v4``) behind gymnasium's ``AtariPreprocessing`` (1..30 random no-ops at reset, frame skip 4 with a
  max-pool over the last two frames, 84x84 grayscale), a fire-on-reset step, and ``FrameStackObservation(4)``
  with zero padding. One environment, pure Python glue; its emulator state can be saved and restored, so a
  checkpointed run resumes *exactly*.
* :class:`VectorAtari` -- ale-py's native ``AtariVectorEnv``: the same preprocessing done in C++ threads for
  ``num_envs`` games at once. Faster, but its emulator state cannot be saved (a resumed run restarts the games).

Both behave like ``AtariVectorEnv`` in its ``NEXT_STEP`` autoreset mode:

* ``reset(seed)`` returns ``obs`` of shape ``(E, 4, 84, 84)`` uint8 (oldest frame first; frames before the start of a
  game are zeros) and an info dict of ``(E,)`` arrays.
* ``step(actions)`` takes ``(E,)`` int64 actions and returns ``obs, raw_reward, terminated, truncated, info``:

  - ``raw_reward`` (float64) is the *unclipped* game score increment; the learner clips it with :func:`clip_reward`;
  - ``terminated`` is True on every **life loss** and at game over (SB3's "episodic life": terminal for learning,
    but the game goes on after a life loss, with the frame stack intact);
  - ``truncated`` is True when the game hits ``max_episode_frames``;
  - ``info["game_over"]`` marks the end of a whole game (the unit of the logged episodic return);
  - after a game over, the *next* ``step`` ignores its action and returns the first observation of a new game with
    ``info["reset_step"] = True``, reward 0 and no termination. The learner must not store a transition for it.
"""
from __future__ import annotations

import pickle
from collections import deque

import numpy as np

FIRE = 1  # BeamRider's action 1 is FIRE; pressing it once after a reset starts the game (SB3 FireResetEnv)


def clip_reward(raw_reward: np.ndarray) -> np.ndarray:
    """Reward clipping to {-1, 0, +1} (the sign), as SB3's ``ClipRewardEnv``. Used by SAC and the labeller."""
    return np.sign(np.asarray(raw_reward, dtype=np.float64)).astype(np.float32)


def rom_name(env_id: str) -> str:
    """``"ALE/BeamRider-v5"`` -> ``"beam_rider"`` (the snake-case ROM name ale-py's vector env wants)."""
    name = env_id.split("/")[-1].split("-")[0].replace("NoFrameskip", "")
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class _FireOnReset:
    """Build a gymnasium wrapper that presses FIRE once after every reset (ale-py's ``use_fire_reset``)."""

    @staticmethod
    def wrap(env):
        import gymnasium as gym

        class FireOnReset(gym.Wrapper):
            def reset(self, **kwargs):
                obs, info = self.env.reset(**kwargs)
                obs, _, terminated, truncated, info = self.env.step(FIRE)
                if terminated or truncated:  # never happens in BeamRider; be safe anyway
                    obs, info = self.env.reset(**kwargs)
                return obs, info

        return FireOnReset(env)


class GymAtari:
    """One gymnasium-wrapped BeamRider behind the batched ``(E=1, ...)`` interface described in the module doc.

    Args:
        env_id: gymnasium id, ``"ALE/BeamRider-v5"``.
        seed: seeds the emulator and the no-op sampler at the first reset.
        noop_max, frame_skip, screen_size, frame_stack, max_episode_frames: see :class:`~.config.Config`.
    """

    num_envs = 1

    def __init__(self, env_id="ALE/BeamRider-v5", seed=0, noop_max=30, frame_skip=4, screen_size=84, frame_stack=4,
                 max_episode_frames=108_000):
        import ale_py
        import gymnasium as gym
        from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

        gym.register_envs(ale_py)
        base = gym.make(env_id, frameskip=1, repeat_action_probability=0.0, full_action_space=False,
                        max_num_frames_per_episode=max_episode_frames)
        self.fire_reset = base.unwrapped.get_action_meanings()[FIRE] == "FIRE"
        env = AtariPreprocessing(base, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size,
                                 terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
        if self.fire_reset:
            env = _FireOnReset.wrap(env)
        # FrameStackObservation sits outside the fire step, so a fresh game shows [0, 0, 0, first frame].
        self.env = FrameStackObservation(env, frame_stack, padding_type="zero")
        self._stacker = self.env  # holds the deque of the last `frame_stack` frames
        self.ale = base.unwrapped.ale
        self.n_actions = int(base.action_space.n)
        self.action_meanings = base.unwrapped.get_action_meanings()
        self.obs_shape = (frame_stack, screen_size, screen_size)
        self._seed = seed
        self._lives = 0
        self._needs_reset = False

    def _info(self, lives, game_over, reset_step):
        return {"lives": np.array([lives], dtype=np.int32), "game_over": np.array([game_over]),
                "reset_step": np.array([reset_step])}

    def reset(self, seed=None):
        """Start a new game. Returns ``obs (1, 4, 84, 84) uint8`` and the info dict."""
        obs, info = self.env.reset(seed=self._seed if seed is None else seed)
        self._lives = int(info["lives"])
        self._needs_reset = False
        return np.asarray(obs)[None], self._info(self._lives, False, False)

    def step(self, actions):
        """One agent step; see the module doc for the autoreset and life-loss conventions."""
        if self._needs_reset:
            obs, _ = self.env.reset()
            self._lives = self.ale.lives()
            self._needs_reset = False
            return (np.asarray(obs)[None], np.zeros(1), np.zeros(1, bool), np.zeros(1, bool),
                    self._info(self._lives, False, True))
        obs, reward, term, trunc, info = self.env.step(int(np.asarray(actions).reshape(-1)[0]))
        lives = int(info["lives"])
        life_lost = lives < self._lives
        self._lives = lives
        game_over = bool(term or trunc)
        self._needs_reset = game_over
        return (np.asarray(obs)[None], np.array([float(reward)]), np.array([bool(term or life_lost)]),
                np.array([bool(trunc)]), self._info(lives, game_over, False))

    # -- exact save / restore (used by checkpoints) -----------------------------------------------------------
    def get_state(self) -> dict:
        """Everything needed to continue this game bit-for-bit: emulator (with its RNG), the no-op sampler's RNG,
        the frame-stack contents, lives and the pending-reset flag."""
        return {
            "ale": pickle.dumps(self.ale.cloneState(include_rng=True)),
            "np_random": self.env.unwrapped.np_random.bit_generator.state,
            "stack": np.stack([np.asarray(f) for f in self._stacker.obs_queue]),
            "lives": self._lives,
            "needs_reset": self._needs_reset,
        }

    def set_state(self, state: dict) -> None:
        """Inverse of :meth:`get_state` (call after :meth:`reset` on a freshly built env)."""
        self.ale.restoreState(pickle.loads(state["ale"]))
        self.env.unwrapped.np_random.bit_generator.state = state["np_random"]
        self._stacker.obs_queue = deque([f.copy() for f in state["stack"]], maxlen=len(state["stack"]))
        self._lives = int(state["lives"])
        self._needs_reset = bool(state["needs_reset"])

    def current_obs(self) -> np.ndarray:
        """The stacked observation the agent sees now, ``(1, 4, 84, 84)`` uint8."""
        return np.stack([np.asarray(f) for f in self._stacker.obs_queue])[None]

    def close(self):
        self.env.close()


class VectorAtari:
    """``num_envs`` BeamRider games in ale-py's C++ ``AtariVectorEnv``, same interface as :class:`GymAtari`.

    Settings map one-to-one: ``reward_clipping=False`` (we clip ourselves, and log the unclipped score),
    ``episodic_life=False`` + ``life_loss_info=True`` (terminal on life loss without restarting the game),
    ``use_fire_reset=True``, ``maxpool=True``, zero-padded frame stack.
    """

    def __init__(self, env_id="ALE/BeamRider-v5", num_envs=1, seed=0, noop_max=30, frame_skip=4, screen_size=84,
                 frame_stack=4, max_episode_frames=108_000, num_threads=0):
        from ale_py.vector_env import AtariVectorEnv

        self.num_envs = num_envs
        self.env = AtariVectorEnv(
            rom_name(env_id), num_envs, num_threads=num_threads, repeat_action_probability=0.0,
            max_num_frames_per_episode=max_episode_frames, img_height=screen_size, img_width=screen_size,
            grayscale=True, stack_num=frame_stack, frameskip=frame_skip, maxpool=True, noop_max=noop_max,
            episodic_life=False, life_loss_info=True, reward_clipping=False, use_fire_reset=True,
            autoreset_mode="NextStep")
        self.n_actions = int(self.env.single_action_space.n)
        self.obs_shape = (frame_stack, screen_size, screen_size)
        self._seed = seed
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def reset(self, seed=None):
        seed = self._seed if seed is None else seed
        # ale-py's vector reset takes each game's seed as a C int: fold larger seeds (e.g. a SeedSequence's uint32)
        obs, info = self.env.reset(seed=int(seed) % (2**31 - 1))
        self._needs_reset[:] = False
        return obs, {"lives": info["lives"], "game_over": np.zeros(self.num_envs, bool),
                     "reset_step": np.zeros(self.num_envs, bool)}

    def step(self, actions):
        obs, reward, term, trunc, info = self.env.step(np.asarray(actions, dtype=np.int64))
        reset_step = self._needs_reset.copy()
        # With life_loss_info the game goes on after a life loss; it is over when the last life is gone (or at the
        # frame cap). This is BeamRider's rule, which ale-py also uses to decide its autoreset.
        game_over = (trunc | (term & (info["lives"] == 0))) & ~reset_step
        self._needs_reset = game_over.copy()
        return (obs, reward.astype(np.float64), term & ~reset_step, trunc & ~reset_step,
                {"lives": info["lives"], "game_over": game_over, "reset_step": reset_step})

    def get_state(self):
        return None  # the C++ vector env cannot be snapshotted

    def close(self):
        self.env.close()


# MinAtar games this pipeline runs, with their number of binary object channels. Every one fits in the 8 bits of
# a uint8 frame, so a MinAtar observation is stored like one grayscale Atari frame (see :func:`pack_channels`).
# (Seaquest has 10 channels and is left out.)
MINATAR_CHANNELS = {"breakout": 4, "space_invaders": 6, "asterix": 4, "freeway": 7}
MINATAR_PREFIX = "minatar:"


def is_minatar(env_id: str) -> bool:
    """``"minatar:breakout"`` -> True; ``"ALE/BeamRider-v5"`` -> False."""
    return env_id.startswith(MINATAR_PREFIX)


def minatar_game(env_id: str) -> str:
    """``"minatar:breakout"`` -> ``"breakout"``, with a clear error for a game we do not run."""
    game = env_id[len(MINATAR_PREFIX):]
    if game not in MINATAR_CHANNELS:
        raise ValueError(f"unknown MinAtar game {game!r} in env {env_id!r}; choose one of "
                         f"{', '.join(MINATAR_PREFIX + g for g in MINATAR_CHANNELS)}")
    return game


def pack_channels(state: np.ndarray) -> np.ndarray:
    """MinAtar state ``(10, 10, C)`` bool, ``C <= 8`` -> one ``(10, 10)`` uint8 frame, channel ``c`` in bit ``c``.

    Packing keeps one uint8 frame per step, so the replay buffer, the segments and the preference buffer handle
    MinAtar exactly as they handle Atari; the networks unpack the bits (:func:`~.networks.unpack_bits`).
    """
    state = np.asarray(state, dtype=np.uint8)
    weights = (1 << np.arange(state.shape[-1], dtype=np.uint8)).astype(np.uint8)
    return (state * weights).sum(-1, dtype=np.uint8)


class MinAtarEnv:
    """One MinAtar game (Young & Tian 2019) behind the same batched ``(E=1, ...)`` interface as :class:`GymAtari`.

    Observations are ``(1, frame_stack, 10, 10)`` uint8 frames of packed channels (:func:`pack_channels`); MinAtar
    games need no frame stacking (each game has a "trail" channel that shows motion), so the MinAtar settings use
    ``frame_stack = 1``. Actions index the game's minimal action set (3 in Breakout, 4 in Space Invaders, 5 in
    Asterix). There are no lives: ``terminated`` is the game over. Sticky actions (probability 0.1, MinAtar's
    default) make the games stochastic in place of Atari's random no-ops. A game is truncated after
    ``max_episode_frames`` steps (MinAtar has no frame skip, so frames are agent steps). The whole environment
    object is pure Python and numpy, so :meth:`get_state` pickles it and a resumed run continues exactly.
    """

    num_envs = 1

    def __init__(self, env_id="minatar:breakout", seed=0, frame_stack=1, max_episode_frames=10_000,
                 sticky_action_prob=0.1):
        from minatar import Environment

        self.game = minatar_game(env_id)
        self.env = Environment(self.game, sticky_action_prob=sticky_action_prob)
        self.actions = np.array(self.env.minimal_action_set(), dtype=np.int64)
        self.n_actions = len(self.actions)
        self.n_channels = MINATAR_CHANNELS[self.game]
        self.obs_shape = (frame_stack, 10, 10)
        self.frame_stack, self.max_steps = frame_stack, max_episode_frames
        self._seed = seed
        self._stack = deque(maxlen=frame_stack)
        self._t = 0
        self._needs_reset = False

    def _info(self, game_over, reset_step):
        return {"lives": np.array([0 if game_over else 1], dtype=np.int32), "game_over": np.array([game_over]),
                "reset_step": np.array([reset_step])}

    def _new_game(self):
        self.env.reset()
        self._t = 0
        self._needs_reset = False
        zero = np.zeros((10, 10), np.uint8)
        self._stack.extend([zero] * (self.frame_stack - 1) + [pack_channels(self.env.state())])
        return self.current_obs()

    def current_obs(self) -> np.ndarray:
        """``(1, frame_stack, 10, 10)`` uint8."""
        return np.stack(self._stack)[None]

    def reset(self, seed=None):
        self.env.seed(self._seed if seed is None else seed)
        return self._new_game(), self._info(False, False)

    def step(self, actions):
        if self._needs_reset:
            return self._new_game(), np.zeros(1), np.zeros(1, bool), np.zeros(1, bool), self._info(False, True)
        a = int(np.asarray(actions).reshape(-1)[0])
        if not 0 <= a < self.n_actions:
            raise ValueError(f"action {a} outside 0..{self.n_actions - 1} of MinAtar {self.game}")
        reward, terminal = self.env.act(int(self.actions[a]))
        self._t += 1
        self._stack.append(pack_channels(self.env.state()))
        truncated = not terminal and self._t >= self.max_steps
        self._needs_reset = bool(terminal or truncated)
        return (self.current_obs(), np.array([float(reward)]), np.array([bool(terminal)]), np.array([truncated]),
                self._info(self._needs_reset, False))

    def get_state(self) -> dict:
        return {"env": pickle.dumps(self.env), "stack": np.stack(self._stack), "t": self._t,
                "needs_reset": self._needs_reset}

    def set_state(self, state: dict) -> None:
        self.env = pickle.loads(state["env"])
        self._stack = deque(list(state["stack"]), maxlen=self.frame_stack)
        self._t, self._needs_reset = int(state["t"]), bool(state["needs_reset"])

    def close(self):
        pass


def make_env(cfg, seed: int | None = None):
    """The environment of a run: :class:`MinAtarEnv` for ``minatar:GAME``, else :class:`GymAtari` or
    :class:`VectorAtari` per ``cfg.env_backend``."""
    seed = cfg.seed if seed is None else seed
    if is_minatar(cfg.env_id):
        if cfg.num_envs != 1:
            raise ValueError("MinAtar runs one environment (num_envs=1)")
        return MinAtarEnv(cfg.env_id, seed=seed, frame_stack=cfg.frame_stack,
                          max_episode_frames=cfg.max_episode_frames)
    common = dict(env_id=cfg.env_id, seed=seed, noop_max=cfg.noop_max, frame_skip=cfg.frame_skip,
                  screen_size=cfg.screen_size, frame_stack=cfg.frame_stack, max_episode_frames=cfg.max_episode_frames)
    if cfg.env_backend == "gym":
        if cfg.num_envs != 1:
            raise ValueError("the gym backend runs one environment; use env_backend='vector' for several")
        return GymAtari(**common)
    return VectorAtari(num_envs=cfg.num_envs, num_threads=cfg.env_threads, **common)


class EpisodeTracker:
    """Accumulates the *unclipped* score and the length (agent steps) of each environment's current game.

    ``update(raw_reward, info)`` returns a list of ``(env_index, episodic_return, episode_length)`` for the games
    that ended on this step. Life losses do not end a game; ``reset_step``s are not counted.
    """

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def update(self, raw_reward, info):
        live = ~info["reset_step"]
        self.returns[live] += raw_reward[live]
        self.lengths[live] += 1
        done = []
        for e in np.flatnonzero(info["game_over"]):
            done.append((int(e), float(self.returns[e]), int(self.lengths[e])))
            self.returns[e] = 0.0
            self.lengths[e] = 0
        return done

    def state_dict(self):
        return {"returns": self.returns.copy(), "lengths": self.lengths.copy()}

    def load_state_dict(self, d):
        self.returns = np.array(d["returns"], dtype=np.float64)
        self.lengths = np.array(d["lengths"], dtype=np.int64)
