"""Practical SoBiRL on Atari BeamRider and MinAtar: environments, discrete SAC, reward net, preferences, (78), trainers.

Modules, lower layers first:

* :mod:`.config`, :mod:`.presets` -- the one dataclass of hyperparameters (defaults of Appendix I.2 of Yang et al.)
  and the run sizes (smoke, cpu, paper);
* :mod:`.env` -- gymnasium / ale-py vector BeamRider and MinAtar games behind one batched interface;
* :mod:`.networks`, :mod:`.reward_net`, :mod:`.sac` -- encoders, the reward model r_x(s, a) (one output per action)
  and discrete SAC with automatic temperature;
* :mod:`.frame_store`, :mod:`.buffer` -- single uint8 frames stored once (saved incrementally), and the sampling of
  SAC batches and preference segments from them;
* :mod:`.estimator`, :mod:`.preferences`, :mod:`.evaluation` -- the practical hyper-gradient (78) as a loss;
  segments, synthetic labels, preference buffer, reward learning, accuracy; evaluation games;
* :mod:`.checkpoint`, :mod:`.run_files`, :mod:`.reward_phase`, :mod:`.trainer_state`, :mod:`.trainers` -- runs that
  log, checkpoint and resume: atomic saves, the log files, lines 3-4 of Algorithm 3, what a checkpoint holds, and
  the :class:`~.trainers.Trainer` with the outer loop and the SAC phase;
* :mod:`.logs`, :mod:`.report`, :mod:`.study` -- reading run folders, summaries and figures, statistics over seeds;
* :mod:`.flags`, :mod:`.sweep`, :mod:`.cli` -- the command line: the shared train settings, grids of runs (local
  processes or Ray tasks), and ``python -m sobirl_lite.atari``.

Importing this package does not import gymnasium or ale-py; building an environment does.
"""
from .config import Config
from .estimator import practical_sobirl_loss, sobirl_coefficient

__all__ = ["Config", "practical_sobirl_loss", "sobirl_coefficient"]
