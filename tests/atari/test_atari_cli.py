"""The CLI: help for every flag, clear errors, the three algorithms, checkpoints, kill -9 / Ctrl-C and exact resume."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from sobirl_lite.atari.cli import build_parser, main
from sobirl_lite.atari.flags import FLAGS
from sobirl_lite.atari.trainers import CSV_FIELDS

STEPS = "600"
TIMING_COLUMNS = ("sps", "wall_s")  # the only columns allowed to differ between a resumed and an uninterrupted run


def cli(*args):
    return [sys.executable, "-m", "sobirl_lite.atari", *args]


def read_rows(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def wait_for(pred, proc, timeout=120.0):
    t0 = time.time()
    while not pred():
        assert proc.poll() is None, f"the run ended before the test could interrupt it:\n{proc.stderr.read()}"
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted tiny SoBiRL run (600 steps: warm-up, SAC updates from step 150, the (78) term from step 250)."""
    from conftest import TINY_FLAGS

    out = tmp_path_factory.mktemp("ref") / "run"
    proc = subprocess.run(cli("train", "--algo", "sobirl", "--steps", STEPS, "--seed", "1", "--out", str(out),
                              *TINY_FLAGS), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def test_every_flag_has_help_text():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        assert action.help and len(action.help) > 10, f"{action.option_strings} lacks a help text"
    text = train.format_help()
    for flag, *_ in FLAGS:
        assert flag in text
    for flag in ("--algo", "--steps", "--seed", "--device", "--out", "--resume"):
        assert flag in text


@pytest.mark.parametrize("args,message", [
    (["--algo", "ppo"], "invalid choice: 'ppo'"),
    (["--algo", "sac", "--bogus", "1"], "unrecognized arguments: --bogus"),
    (["--algo", "sac", "--steps", "ten"], "invalid int value: 'ten'"),
    (["--algo", "sac", "--buffer-size", "5"], "buffer_size=5 is too small"),
    (["--algo", "sac", "--num-envs", "2"], "num_envs > 1 needs --env-backend vector"),
    (["--algo", "sac", "--gamma", "1.5"], "gamma must lie in (0, 1)"),
    (["--algo", "sac", "--labels", "noisy"], "invalid choice: 'noisy'"),
])
def test_invalid_flags_get_a_clear_message(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(tmp_path / "x"), *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("algo", ["sobirl", "drlhf", "sac"])
def test_each_algorithm_trains_logs_and_checkpoints(algo, tmp_path, tiny_flags):
    out = tmp_path / algo
    assert main(["train", "--algo", algo, "--steps", "300", "--out", str(out), *tiny_flags]) == 0
    rows = read_rows(out / "progress.csv")
    assert list(rows[0]) == [c for c in CSV_FIELDS if c not in TIMING_COLUMNS]
    iters = [r for r in rows if r["kind"] == "iteration"]
    episodes = [r for r in rows if r["kind"] == "episode"]
    assert [int(r["global_step"]) for r in iters] == [100, 200, 300]
    assert len(episodes) >= 2  # games are truncated at 100 steps
    assert all(0 < int(r["episode_length"]) <= 100 for r in episodes)
    assert int(iters[-1]["updates"]) == 25  # steps 200..300, one update every 4 steps
    if algo == "sac":
        assert iters[-1]["pref_acc"] == "" and iters[-1]["n_pairs"] == ""
    else:
        assert [int(r["n_pairs"]) for r in iters] == [4, 6, 8]
        coefs = [float(r["coef"]) for r in iters]
        if algo == "sobirl":  # pure BCE until step 250, then 1/alpha
            assert coefs[:2] == [0.0, 0.0] and coefs[2] == pytest.approx(1 / float(iters[2]["alpha"]), rel=1e-6)
        else:
            assert coefs == [0.0, 0.0, 0.0]
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["algo"] == algo and meta["config"]["inner_steps"] == 100
    assert meta["command"][:4] == ["python", "-m", "sobirl_lite.atari", "train"]
    assert (out / "checkpoint.pt").exists() and not (out / "checkpoint.pt.tmp").exists()


def test_sigkill_then_resume_loses_and_duplicates_no_row(reference, tmp_path, tiny_flags):
    """kill -9 mid-run, resume: the CSV is identical (up to timings) to the uninterrupted run's."""
    out = tmp_path / "killed"
    args = ["train", "--algo", "sobirl", "--steps", STEPS, "--seed", "1", "--out", str(out), *tiny_flags]
    proc = subprocess.Popen(cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt, log = out / "checkpoint.pt", out / "progress.csv"
    # kill after a checkpoint exists *and* rows were logged after it, so that resuming must drop them
    wait_for(lambda: ckpt.exists() and log.exists() and len(read_rows(log)) >= 5, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = read_rows(log)
    assert len(before) < len(read_rows(reference / "progress.csv"))
    done = subprocess.run(cli(*args, "--resume"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_rows(log)
    assert rows == read_rows(reference / "progress.csv")
    keys = [(r["kind"], r["global_step"], r["iteration"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicated rows"
    meta = json.loads((out / "config.json").read_text())
    assert len(meta["resumed_with"]) == 1


def test_ctrl_c_checkpoints_and_resume_is_exact(reference, tmp_path, tiny_flags):
    out = tmp_path / "interrupted"
    args = ["train", "--algo", "sobirl", "--steps", STEPS, "--seed", "1", "--out", str(out), *tiny_flags]
    proc = subprocess.Popen(cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (out / "checkpoint.pt").exists(), proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    done = subprocess.run(cli(*args, "--resume"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert read_rows(out / "progress.csv") == read_rows(reference / "progress.csv")


def test_resume_can_extend_a_finished_run(reference, tmp_path, tiny_flags, capsys):
    out = tmp_path / "extended"
    shutil.copytree(reference, out)
    assert main(["train", "--algo", "sobirl", "--steps", "700", "--seed", "1", "--out", str(out), *tiny_flags,
                 "--resume"]) == 0
    rows = read_rows(out / "progress.csv")
    assert rows[:len(read_rows(reference / "progress.csv"))] == read_rows(reference / "progress.csv")
    assert rows[-1]["kind"] == "iteration" and rows[-1]["global_step"] == "700"


def test_unusable_checkpoints_are_clear_errors_never_a_silent_restart(reference, tmp_path, tiny_flags, capsys):
    base = ["train", "--algo", "sobirl", "--steps", STEPS, "--seed", "1"]

    def attempt(out, *extra):
        rows_before = (out / "progress.csv").read_bytes() if (out / "progress.csv").exists() else None
        code = main([*base, "--out", str(out), *tiny_flags, *extra])
        err = capsys.readouterr().err
        if rows_before is not None:
            assert (out / "progress.csv").read_bytes() == rows_before, "the log must not be touched"
        return code, err

    # a different configuration (here: the algorithm, then a scaled setting)
    out = tmp_path / "mismatch"
    shutil.copytree(reference, out)
    code, err = attempt(out, "--resume", "--algo", "drlhf")
    assert code == 2 and "different run" in err and "algo" in err and "'sobirl'" in err
    code, err = attempt(out, "--resume", "--batch-size", "16")
    assert code == 2 and "batch_size" in err
    # a corrupt file
    out = tmp_path / "corrupt"
    shutil.copytree(reference, out)
    with open(out / "checkpoint.pt", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00garbage" * 1000)
    code, err = attempt(out, "--resume")
    assert code == 2 and "corrupt" in err
    # an existing run without --resume, and --resume without a checkpoint
    code, err = attempt(reference)
    assert code == 2 and "already holds a run" in err
    empty = tmp_path / "empty"
    code, err = attempt(empty, "--resume")
    assert code == 2 and "no checkpoint" in err
    assert not (empty / "progress.csv").exists()


def test_read_run_parses_the_log(reference):
    from sobirl_lite.atari.logs import read_run, running_mean

    lg = read_run(str(reference))
    assert lg.steps == int(STEPS) and lg.meta["config"]["algo"] == "sobirl"
    assert lg.iterations["global_step"].tolist() == list(range(100, int(STEPS) + 1, 100))
    assert lg.episodes["episode_length"].size >= 4 and (lg.episodes["episode_length"] <= 100).all()
    assert lg.command.startswith("python -m sobirl_lite.atari train --algo sobirl")
    assert running_mean([1, 2, 3, 4], 2).tolist() == [1.0, 1.5, 2.5, 3.5]


def test_vector_backend_trains_and_resumes_with_new_games(tmp_path, tiny_flags):
    """The C++ vector env cannot be snapshotted: a resume starts new games, keeps every logged row, and goes on."""
    out = tmp_path / "vec"
    args = ["train", "--algo", "drlhf", "--seed", "2", "--out", str(out), *tiny_flags, "--env-backend", "vector",
            "--num-envs", "2"]
    assert main([*args, "--steps", "200"]) == 0
    first = read_rows(out / "progress.csv")
    assert main([*args, "--steps", "400", "--resume"]) == 0
    rows = read_rows(out / "progress.csv")
    assert rows[:len(first)] == first
    assert [int(r["global_step"]) for r in rows if r["kind"] == "iteration"] == [100, 200, 300, 400]
    assert sum(r["kind"] == "episode" for r in rows) >= 4  # two games at a time, truncated at 100 steps
