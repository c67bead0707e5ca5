"""Sweeps: the grid, local worker processes with kill + resume, and Ray tasks surviving a killed worker."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from sobirl_lite.atari.sweep import DONE_NAME, PID_NAME, RunSpec, parse_seeds, plan, run_one, run_state, sweep

# Tiny MinAtar runs: 100-step iterations, SAC from step 150, checkpoints every 100 steps.
TINY = ["--learning-starts", "150", "--inner-steps", "100", "--buffer-size", "1000", "--batch-size", "8",
        "--initial-pairs", "4", "--warmup-epochs", "1", "--pairs-per-iter", "2", "--pref-buffer-size", "10",
        "--reward-batch-size", "4", "--hyper-warmup-steps", "250", "--checkpoint-every", "100", "--threads", "1"]
STEPS = 400


def rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in ("sps", "wall_s")} for r in csv.DictReader(f)]


def check_complete(run_dir, steps=STEPS):
    """Every iteration logged exactly once, in order; no episode row twice; the run marked done."""
    rs = rows(os.path.join(run_dir, "progress.csv"))
    iters = [int(r["global_step"]) for r in rs if r["kind"] == "iteration"]
    assert iters == list(range(100, steps + 1, 100)), iters
    episodes = [int(r["global_step"]) for r in rs if r["kind"] == "episode"]
    assert episodes == sorted(set(episodes)), "an episode row was lost order or written twice"
    assert os.path.exists(os.path.join(run_dir, DONE_NAME))
    return rs


def test_seed_lists_and_the_grid():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0-1,7") == [0, 1, 7]
    for bad in ("4-0", "a", "1,1", ""):
        with pytest.raises(ValueError):
            parse_seeds(bad)
    grid = plan(["minatar:breakout", "minatar:space_invaders"], ["sobirl", "sac"], [0, 1], 100)
    assert len(grid) == 8 and len({s.name for s in grid}) == 8
    assert [s.name for s in grid[:4]] == ["breakout-sobirl-s0", "breakout-sac-s0", "space_invaders-sobirl-s0",
                                          "space_invaders-sac-s0"]  # seed-major: an early stop keeps whole seeds
    argv = grid[0].train_argv("D/x", resume=True)
    assert argv[:3] == ["train", "--env", "minatar:breakout"] and argv[-1] == "--resume"


def test_bad_sweep_arguments_are_named(tmp_path, capsys):
    from sobirl_lite.atari.cli import main

    assert main(["sweep", "--algos", "sobirl,ppo", "--out", str(tmp_path / "s")]) == 2
    assert "ppo" in capsys.readouterr().err
    assert main(["sweep", "--seeds", "3-1", "--out", str(tmp_path / "s")]) == 2
    assert "seed range" in capsys.readouterr().err
    assert main(["sweep", "--env", "minatar:pong", "--out", str(tmp_path / "s")]) == 2
    assert "pong" in capsys.readouterr().err


def test_local_sweep_killed_then_resumed_loses_and_repeats_nothing(tmp_path):
    """kill -9 the whole sweep (driver and workers) mid-run; the same command finishes it: every iteration and game
    is logged exactly once, the rows logged up to the checkpoint are kept, and a third call skips everything.
    (That a resumed run equals an uninterrupted one is tested for single runs in test_minatar.py.)"""
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "sobirl_lite.atari", "sweep", "--algos", "sobirl,sac", "--seeds", "0",
           "--env", "minatar:breakout", "--steps", str(STEPS), "--workers", "2", "--out", str(out), *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    logs = [out / n / "progress.csv" for n in ("breakout-sobirl-s0", "breakout-sac-s0")]
    t0 = time.time()
    while not any(p.exists() and (p.parent / "checkpoint.pt").exists() and len(rows(p)) > 20 for p in logs):
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() - t0 < 300, "timed out waiting for a checkpoint"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not all((p.parent / DONE_NAME).exists() for p in logs), "killed too late to test anything"
    before = {p: rows(p) for p in logs if p.exists()}
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=600).returncode == 0
    for p in logs:
        after = check_complete(p.parent)
        kept = [r for r in before.get(p, []) if int(r["global_step"]) <= 100]  # up to the first checkpoint
        assert after[:len(kept)] == kept
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "2 already finished, 0 to run" in again.stdout
    record = json.loads((out / "sweep.json").read_text())
    assert len(record["sessions"]) == 3 and record["sessions"][0]["command"][3] == "sweep"


def test_a_run_held_by_another_process_is_left_alone(tmp_path):
    import fcntl

    spec = RunSpec("minatar:breakout", "sac", 0, 300, tuple(TINY))
    run_dir = tmp_path / spec.name
    run_dir.mkdir()
    with open(run_dir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        assert run_one(spec, str(tmp_path))["status"] == "busy"
    assert run_state(str(run_dir)) == "fresh"


def test_ray_sweep_survives_a_killed_worker(tmp_path):
    """A real local Ray instance with 2 CPUs runs 3 runs as tasks; one worker is killed with SIGKILL mid-run. Ray
    retries its task, which resumes from the checkpoint: every run finishes with no row lost or duplicated."""
    ray = pytest.importorskip("ray")
    for attempt in range(3):  # Ray gives its raylet 30 s to register, which a heavily loaded machine can miss
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:  # noqa: BLE001 - Ray raises a bare Exception for a startup timeout
            ray.shutdown()
            if attempt == 2:
                raise
    try:
        specs = plan(["minatar:breakout"], ["sobirl", "drlhf", "sac"], [1], STEPS, TINY)
        out = tmp_path / "ray"
        result = {}
        thread = threading.Thread(target=lambda: result.update(r=sweep(specs, str(out), ray_address="auto",
                                                                       log=lambda *_: None)))
        thread.start()
        killed, t0 = None, time.time()
        while killed is None:
            for s in specs:
                d = out / s.name
                if (d / "checkpoint.pt").exists() and (d / PID_NAME).exists() and len(rows(d / "progress.csv")) > 20 \
                        and not (d / DONE_NAME).exists():
                    killed = (s.name, int((d / PID_NAME).read_text()))
                    break
            assert thread.is_alive() and time.time() - t0 < 240, "no run reached a checkpoint in time"
            time.sleep(0.1)
        os.kill(killed[1], signal.SIGKILL)
        thread.join(timeout=600)
        assert not thread.is_alive()
        assert sorted(r["name"] for r in result["r"]) == sorted(s.name for s in specs)
        for s in specs:
            check_complete(out / s.name)
        # the killed run was picked up by another worker process and resumed from its checkpoint
        assert int((out / killed[0] / PID_NAME).read_text()) != killed[1]
        meta = json.loads((out / killed[0] / "config.json").read_text())
        assert len(meta["resumed_with"]) >= 1
    finally:
        ray.shutdown()


def test_a_larger_budget_reopens_a_finished_run(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    assert run_state(str(run_dir), 100) == "fresh"
    (run_dir / "checkpoint.pt").write_bytes(b"")
    assert run_state(str(run_dir), 100) == "resume"
    (run_dir / DONE_NAME).write_text(json.dumps({"steps": 100}))
    assert run_state(str(run_dir)) == run_state(str(run_dir), 100) == "done"
    assert run_state(str(run_dir), 200) == "resume"  # extended from its checkpoint, as if started with 200
