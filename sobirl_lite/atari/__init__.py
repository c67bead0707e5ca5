"""Practical SoBiRL on Atari BeamRider and MinAtar: environments, discrete SAC, reward net, preferences, (78), trainers.

Modules, lower layers first:

* :mod:`.config` -- the one dataclass of hyperparameters (defaults of Appendix I.2 of Yang et al.);
* :mod:`.env` -- gymnasium / ale-py vector BeamRider and MinAtar games behind one batched interface;
* :mod:`.buffer` -- replay buffer of single uint8 frames, stacks rebuilt from indices;
* :mod:`.sac` -- discrete SAC with automatic temperature;
* :mod:`.reward_net` -- the reward model r_x(s, a), one output per action;
* :mod:`.networks` -- the per-environment encoders (Nature CNN, MinAtar's conv 16@3x3 -> FC 128) and reward nets;
* :mod:`.estimator` -- the practical hyper-gradient (78) as a loss;
* :mod:`.preferences` -- segments, synthetic labels, preference buffer, reward learning, accuracy;
* :mod:`.checkpoint`, :mod:`.trainers`, :mod:`.cli` -- runs that log, checkpoint and resume;
* :mod:`.sweep`, :mod:`.study` -- grids of runs (local processes or Ray tasks) and their statistics over seeds.

Importing this package does not import gymnasium or ale-py; building an environment does.
"""
from .config import Config
from .estimator import practical_sobirl_loss, sobirl_coefficient

__all__ = ["Config", "practical_sobirl_loss", "sobirl_coefficient"]
