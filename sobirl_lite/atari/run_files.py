"""What a run writes beside its checkpoint: ``progress.csv`` (one row per game, iteration and evaluation),
``config.json`` (settings, command lines, hardware) and, when TensorBoard is installed, ``tb/``.

:class:`ProgressWriter` is the only code that writes these files; :mod:`.logs` reads them back.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import sys
import time

import torch

from .evaluation import EVAL_STATS
from .sac import SAC_STATS

CSV_FIELDS = ("kind", "global_step", "iteration", "episode_return", "episode_length", "pref_acc", "label_acc",
              "reward_loss", "bce", "hyper", "surrogate", "coef", "n_pairs", "updates", *SAC_STATS, "alpha",
              "lr_frac", "sps", "wall_s", "heldout_pref_acc", "heldout_label_acc", "heldout_pairs",
              "r_mean", "r_std", "r_clamped", "hyper_weight", "saturated", *EVAL_STATS)
# r_mean, r_std, r_clamped: the learned reward r_x(s, a) on the SAC batches of the iteration, before the clamp (mean
# over updates of the batch mean, of the batch std, and of the fraction of |r| >= reward_clamp).
# heldout_*: accuracy of the reward model on the iteration's new pairs *before* it trains on them.
# hyper_weight, saturated: see preferences.EPOCH_STATS. eval_*: the rows of kind=eval (evaluation.py).
R_STATS = ("r_mean", "r_std", "r_clamped")
CSV_NAME = "progress.csv"
CONFIG_NAME = "config.json"


def hardware_summary(device: torch.device) -> dict:
    """What the run ran on (recorded in config.json and in the book's figure captions)."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device)}
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class ProgressWriter:
    """The log files of the run in ``out_dir``.

    Args:
        out_dir: the run directory (exists).
        truncate_to: on a resume, the byte length of ``progress.csv`` at the checkpoint: the rows written after it
            are dropped (they will be written again). ``None`` for a fresh run.
        global_step: where the run (re)starts; TensorBoard drops its events past this step.
    """

    def __init__(self, out_dir: str, truncate_to: int | None, global_step: int):
        self.out_dir = out_dir
        self.csv_path = os.path.join(out_dir, CSV_NAME)
        self.config_path = os.path.join(out_dir, CONFIG_NAME)
        if truncate_to is not None:
            with open(self.csv_path, "r+b") as f:
                f.truncate(truncate_to)
        new = not os.path.exists(self.csv_path) or os.path.getsize(self.csv_path) == 0
        self.csv_file = open(self.csv_path, "a", newline="")
        fields = CSV_FIELDS
        if not new:  # a log begun by an older version keeps its columns (newer ones are left out, not misaligned)
            with open(self.csv_path, newline="") as f:
                fields = next(csv.reader(f))
        self.csv = csv.DictWriter(self.csv_file, fieldnames=fields, extrasaction="ignore")
        if new:
            self.csv.writeheader()
            self.csv_file.flush()
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency

            self.tb = SummaryWriter(os.path.join(out_dir, "tb"), purge_step=global_step or None)
        except ImportError:
            pass

    def write(self, row: dict) -> None:
        """One row of ``progress.csv`` (NaN written as an empty cell), mirrored to TensorBoard."""
        row = {k: ("" if (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()}
        self.csv.writerow(row)
        self.csv_file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("kind", "global_step") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{row['kind']}/{k}", v, row["global_step"])

    def sync(self) -> int:
        """Flush ``progress.csv`` to disk; returns its length in bytes (what a checkpoint records)."""
        self.csv_file.flush()
        os.fsync(self.csv_file.fileno())
        return self.csv_file.tell()

    def close(self) -> None:
        self.csv_file.close()
        if self.tb is not None:
            self.tb.close()


def write_config(config_path: str, cfg_dict: dict, command: list[str], device: torch.device, fresh: bool,
                 n_actions: int, global_step: int) -> None:
    """``config.json``: the settings, the command line and the hardware; a resume appends its own command, step
    and hardware to ``resumed_with``. Written atomically."""
    if fresh:
        meta = {"config": cfg_dict, "command": command, "resumed_with": [],
                "n_actions": n_actions, "hardware": hardware_summary(device),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    else:
        with open(config_path) as f:
            meta = json.load(f)
        meta["config"] = cfg_dict
        meta.setdefault("resumed_with", []).append({"command": command, "at_step": global_step,
                                                    "hardware": hardware_summary(device)})
    tmp = config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(tmp, config_path)


def _fmt_acc(x) -> str:
    """Accuracy for the progress bar: "ties" when every pair is a tie (NaN), "-" before the first measurement."""
    if x is None:
        return "-"
    return "ties" if math.isnan(x) else f"{x:.2f}"


class ProgressBar:
    """The run's tqdm bar (``cfg.progress``), or nothing; also where progress lines go while it is open."""

    def __init__(self, cfg, global_step: int, verbose: bool):
        self.bar, self.verbose = None, verbose
        if cfg.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.total_steps, initial=global_step, unit="step", dynamic_ncols=True,
                            desc=f"{cfg.algo} seed {cfg.seed}")

    def advance(self, before: int, after: int, num_envs: int, ret: float, alpha: float, last_pref: dict) -> None:
        """Move from step ``before`` to ``after``; every 500 steps, show the latest return, temperature and
        preference accuracies."""
        if self.bar is None:
            return
        self.bar.update(after - before)
        if after % 500 < num_envs:
            self.bar.set_postfix(ret=ret, alpha=round(alpha, 4), acc=_fmt_acc(last_pref.get("pref_acc")),
                                 label_acc=_fmt_acc(last_pref.get("label_acc")), refresh=False)

    def say(self, line: str) -> None:
        """A line above the bar (on stderr without one; nowhere when not verbose)."""
        if self.bar is not None:
            self.bar.write(line)
        elif self.verbose:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
