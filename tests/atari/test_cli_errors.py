"""The CLI's bad-input table: every mistake on the command line of ``python -m sobirl_lite.atari`` that we know of,
one row each, with the line it gets. Each must end with status 2, an ``error:`` line that names the mistake and
what to do, nothing left behind, and no traceback (an uncaught exception would fail the test). Mistakes argparse
itself reports (unknown flag, bad number, invalid choice) are in ``test_atari_cli.py``.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from sobirl_lite.atari.cli import main

TINY = ["--learning-starts", "100", "--inner-steps", "100", "--buffer-size", "500", "--steps", "200",
        "--no-progress"]
SWEEP = ["--algos", "sac", "--seeds", "0", "--dry-run"]


def _sys_is_read_only() -> bool:
    """/sys refuses new directories even to root on Linux: a location nobody can write to."""
    try:
        os.makedirs("/sys/sobirl-cli-test")
    except PermissionError:
        return True
    except OSError:
        return False
    os.rmdir("/sys/sobirl-cli-test")
    return False


# (arguments; FILE stands for an existing file, DIR for a fresh directory) -> words the error line must contain
TABLE = [
    # train: the environment
    (["train", "--algo", "sac", "--env", "ALE/Nope-v5", "--out", "DIR/r", *TINY],
     ["unknown environment 'ALE/Nope-v5'", "Did you mean", "ALE/BeamRider-v5"]),
    (["train", "--algo", "sac", "--env", "ALE/BeamRider-v9", "--out", "DIR/r", *TINY],
     ["unknown environment 'ALE/BeamRider-v9'", "v5"]),
    (["train", "--algo", "sac", "--env", "not an id", "--out", "DIR/r", *TINY], ["unknown environment 'not an id'"]),
    (["train", "--algo", "sac", "--env", "CartPole-v1", "--out", "DIR/r", *TINY], ["not an Atari game"]),
    (["train", "--algo", "sac", "--env", "minatar:seaquest", "--out", "DIR/r", "--no-progress"],
     ["unknown MinAtar game 'seaquest'", "minatar:breakout"]),
    (["train", "--algo", "sac", "--env", "minatar:breakout", "--preset", "smoke", "--out", "DIR/r"],
     ["describes a BeamRider run", "drop --preset"]),
    # train: the output directory
    (["train", "--algo", "sac", "--out", "FILE", *TINY], ["--out", "is a file, not a directory"]),
    (["train", "--algo", "sac", "--out", "FILE/run", *TINY], ["cannot create --out", "Not a directory"]),
    (["train", "--algo", "sac", "--out", "/sys/sobirl-run", *TINY], ["cannot create --out /sys/sobirl-run"]),
    (["train", "--algo", "sac", "--out", "FILE", "--resume", *TINY], ["is a file, not a directory"]),
    (["train", "--algo", "sac", "--out", "DIR/none", "--resume", *TINY], ["no checkpoint at", "drop --resume"]),
    # train: values argparse accepts but a run cannot use
    (["train", "--algo", "sac", "--seed", "-3", "--out", "DIR/r"], ["seed must be >= 0"]),
    (["train", "--algo", "sac", "--steps", "0", "--out", "DIR/r"], ["total_steps must be positive"]),
    (["train", "--algo", "sac", "--device", "cuda", "--out", "DIR/r", *TINY], ["--device cuda", "no CUDA device"]),
    # sweep
    (["sweep", "--env", "ALE/Nope-v5", "--out", "DIR/s", *SWEEP], ["unknown environment 'ALE/Nope-v5'"]),
    (["sweep", "--env", "minatar:nope", "--out", "DIR/s", *SWEEP], ["unknown MinAtar game 'nope'"]),
    (["sweep", "--env", ",", "--out", "DIR/s", *SWEEP], ["--env names no environment"]),
    (["sweep", "--out", "FILE", "--algos", "sac", "--seeds", "0"], ["is a file, not a directory"]),
    (["sweep", "--out", "FILE", *SWEEP], ["is a file, not a directory"]),
    (["sweep", "--seeds", "3-1", "--out", "DIR/s", "--dry-run"], ["bad seed range '3-1'"]),
    (["sweep", "--seeds", "0,0", "--out", "DIR/s", "--dry-run"], ["repeats a seed"]),
    (["sweep", "--algos", "ppo", "--seeds", "0", "--out", "DIR/s", "--dry-run"], ["unknown algorithm", "ppo"]),
    (["sweep", "--workers", "-1", "--out", "DIR/s", *SWEEP], ["--workers -1"]),
    (["sweep", "--gpus-per-run", "-1", "--out", "DIR/s", *SWEEP], ["--gpus-per-run >= 0"]),
    (["sweep", "--cpus-per-run", "0", "--out", "DIR/s", *SWEEP], ["--cpus-per-run must be > 0"]),
    (["sweep", "--hyper-baseline", "leave-one-out", "--algos", "sobirl,sac", "--seeds", "0", "--out", "DIR/s",
      "--dry-run"], ["--algos sobirl alone"]),
    (["sweep", "--steps", "0", "--out", "DIR/s", *SWEEP], ["total_steps must be positive"]),
    # summary and plot
    (["summary", "DIR/missing"], ["neither a run directory", "nor a folder of runs"]),
    (["summary", "FILE"], ["neither a run directory"]),
    (["summary", "DIR", "--last", "0"], ["--last 0", ">= 1"]),
    (["plot", "DIR/missing", "--out", "DIR/fig.png"], ["neither a run directory"]),
    (["plot", "DIR", "--window", "0", "--out", "DIR/fig.png"], ["--window 0", ">= 1"]),
    (["plot", "DIR", "--out", "DIR"], ["is a directory", "PNG"]),
]


@pytest.mark.parametrize("argv,words", TABLE, ids=[" ".join(a[:1] + a[1:5]) for a, _ in TABLE])
def test_cli_mistake_gets_one_clear_line(argv, words, tmp_path, capsys):
    if "/sys/" in " ".join(argv) and not _sys_is_read_only():
        pytest.skip("/sys is writable here")
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    (tmp_path / "afile").write_text("not a directory")
    args = [a.replace("FILE", str(tmp_path / "afile")).replace("DIR", str(tmp_path)) for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        status = main(args)
    except SystemExit as exc:  # argparse's parser.error
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2, err
    line = [ln for ln in err.splitlines() if "error:" in ln]
    assert line, err
    for w in words:
        assert w in err, f"{w!r} missing from:\n{err}"
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # a run that failed to start leaves nothing


def test_the_real_command_prints_no_traceback(tmp_path):
    """The same through ``python -m``: an unknown Atari game and an --out that is a file, status 2, one error line."""
    (tmp_path / "afile").write_text("x")
    for extra in (["--env", "ALE/Nope-v5", "--out", str(tmp_path / "r")], ["--out", str(tmp_path / "afile")]):
        proc = subprocess.run([sys.executable, "-m", "sobirl_lite.atari", "train", "--algo", "sac", *extra, *TINY],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert sum("error:" in ln for ln in proc.stderr.splitlines()) == 1, proc.stderr
