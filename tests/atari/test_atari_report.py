"""Reader-facing CLI: help without a command, presets, summary and plot (runs and sweep folders), the held-out and
learned-reward columns, Ctrl-C between reward epochs, and generators after a move between devices."""
from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest
import torch

from sobirl_lite.atari.cli import build_parser, main
from sobirl_lite.atari.flags import config_from_args
from sobirl_lite.atari.config import Config
from sobirl_lite.atari.presets import PRESETS, estimate_cpu_seconds
from sobirl_lite.atari.report import collect_runs, summarize
from sobirl_lite.atari.trainers import Trainer

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "book", "data", "beamrider")


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for word in ("train", "summary", "plot", "usage"):
        assert word in out


def test_presets_set_fields_and_flags_override_them(capsys):
    parse = build_parser().parse_args
    paper = config_from_args(parse(["train", "--algo", "sac", "--preset", "paper", "--out", "x"]))
    assert paper.to_dict() == Config(algo="sac").to_dict()  # the paper's settings are the defaults
    smoke = config_from_args(parse(["train", "--algo", "sac", "--preset", "smoke", "--out", "x",
                                    "--batch-size", "16"]))
    assert smoke.total_steps == PRESETS["smoke"]["total_steps"] and smoke.batch_size == 16
    cpu = config_from_args(parse(["train", "--algo", "sobirl", "--preset", "cpu", "--out", "x", "--steps", "6000"]))
    assert cpu.total_steps == 6000 and cpu.warmup_epochs == PRESETS["cpu"]["warmup_epochs"]
    cpu.validate()
    # the estimate behind the multi-hour warning: days for the paper on a CPU, minutes for the smoke preset
    assert estimate_cpu_seconds(paper) > 86_400 and estimate_cpu_seconds(smoke) < 600
    with pytest.raises(SystemExit):
        main(["train", "--algo", "sac", "--preset", "cpu", "--env", "minatar:breakout", "--out", "x"])
    assert "describes a BeamRider run" in capsys.readouterr().err


def _copy_run(src, dst, seed, shift):
    """A copy of a committed run with another seed and its returns shifted by ``shift``."""
    shutil.copytree(src, dst)
    meta = json.loads(open(os.path.join(dst, "config.json")).read())
    meta["config"]["seed"] = seed
    open(os.path.join(dst, "config.json"), "w").write(json.dumps(meta))
    rows = list(csv.DictReader(open(os.path.join(src, "progress.csv"), newline="")))
    with open(os.path.join(dst, "progress.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            if r["kind"] == "episode":
                r["episode_return"] = str(float(r["episode_return"]) + shift)
            w.writerow(r)


def test_summary_and_plot_accept_runs_and_sweep_folders(tmp_path, capsys):
    runs = {a: os.path.join(DATA, f"{a}_cpu_seed1") for a in ("sobirl", "drlhf", "sac")}
    one = summarize(collect_runs(list(runs.values())), last=10)
    assert [r["algo"] for r in one] == ["sobirl", "drlhf", "sac"] and all(r["runs"] == 1 for r in one)
    from sobirl_lite.atari.logs import read_run

    ret = read_run(runs["sac"]).episodes["episode_return"][-10:]
    sac = one[2]
    assert sac["return"] == pytest.approx(ret.mean()) and sac["return_se"] == pytest.approx(
        ret.std(ddof=1) / np.sqrt(10))
    # a sweep folder: two seeds of SoBiRL -> one row, mean and s.e. over the two runs' final means
    sweep = tmp_path / "sweep"
    _copy_run(runs["sobirl"], sweep / "beamrider-sobirl-s1", 1, 0.0)
    _copy_run(runs["sobirl"], sweep / "beamrider-sobirl-s2", 2, 100.0)
    (sweep / "sweep.json").write_text("{}")  # files beside the runs are ignored
    rows = summarize(collect_runs([str(sweep)]), last=10)
    base = read_run(runs["sobirl"]).episodes["episode_return"][-10:].mean()
    assert len(rows) == 1 and rows[0]["runs"] == 2 and rows[0]["seeds"] == [1, 2]
    assert rows[0]["return"] == pytest.approx(base + 50.0) and rows[0]["return_se"] == pytest.approx(50.0)
    assert main(["summary", str(sweep), runs["sac"], "--last", "10"]) == 0
    out = capsys.readouterr().out
    assert "sobirl" in out and "sac" in out and "+- 50.0" in out
    png = tmp_path / "fig.png"
    assert main(["plot", str(sweep), runs["drlhf"], runs["sac"], "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert main(["summary", str(tmp_path / "nothing")]) == 2
    assert "neither a run directory" in capsys.readouterr().err


TINY = dict(total_steps=300, seed=0, device="cpu", progress=False, learning_starts=150, inner_steps=100,
            buffer_size=1000, batch_size=8, initial_pairs=4, warmup_epochs=4, pairs_per_iter=2, pref_buffer_size=10,
            reward_batch_size=4, hyper_warmup_steps=250, max_episode_frames=400, checkpoint_every=100, threads=1)


def _log(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in ("sps", "wall_s")} for r in csv.DictReader(f)]


def test_ctrl_c_between_reward_epochs_and_new_columns(tmp_path, monkeypatch, capsys):
    """Ctrl-C during the warm-up stops after the current reward epoch; --resume finishes the warm-up where it stopped,
    and the log equals an uninterrupted run's. The held-out and learned-reward columns are filled."""
    ref = tmp_path / "ref"
    t = Trainer(Config(algo="sobirl", **TINY), str(ref))
    assert t.train() == "done"
    t.close()
    rows = _log(ref / "progress.csv")
    its = [r for r in rows if r["kind"] == "iteration"]
    assert [int(r["heldout_pairs"]) for r in its] == [4, 2, 2]
    assert all(r["heldout_label_acc"] != "" for r in its)
    assert its[0]["r_mean"] == "" and all(r["r_mean"] != "" and float(r["r_std"]) >= 0 for r in its[1:])
    assert all(0.0 <= float(r["r_clamped"]) <= 1.0 for r in its[1:])

    from sobirl_lite.atari import preferences

    out = tmp_path / "stopped"
    t = Trainer(Config(algo="sobirl", **TINY), str(out))
    calls = {"n": 0}
    real_epoch = preferences.RewardLearner.epoch

    def epoch_then_ctrl_c(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            t.stop_requested = True  # what the SIGINT handler does
        return real_epoch(self, *a, **k)

    monkeypatch.setattr(preferences.RewardLearner, "epoch", epoch_then_ctrl_c)
    assert t.train() == "interrupted"
    t.close()
    assert "stopping between reward epochs (2/4 done)" in capsys.readouterr().err
    assert calls["n"] == 2
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["pref_progress"]["epochs_done"] == 2 and state["iteration"] == 0
    monkeypatch.setattr(preferences.RewardLearner, "epoch", real_epoch)
    t = Trainer(Config(algo="sobirl", **TINY), str(out), resume=True)
    assert t.train() == "done"
    t.close()
    assert _log(out / "progress.csv") == rows


def test_resume_on_another_device_type_reseeds_the_device_generators(tmp_path, capsys):
    """A checkpoint written on a GPU cannot hand its generator states to a CPU run: they are re-seeded from
    (seed, step), the same way every time, and the run goes on."""
    cfg = dict(TINY, total_steps=200)
    out = tmp_path / "a"
    t = Trainer(Config(algo="sac", **cfg), str(out))
    assert t.train() == "done"
    t.close()
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    state["device_type"] = "cuda"  # as if written on a GPU ...
    state["act_gen"] = torch.zeros(3, dtype=torch.uint8)  # ... with a state a CPU generator cannot load
    state["buffer"]["generator"] = torch.zeros(3, dtype=torch.uint8)
    torch.save(state, out / "checkpoint.pt")
    other = tmp_path / "b"
    shutil.copytree(out, other)
    logs = []
    for d in (out, other):
        t = Trainer(Config(algo="sac", **dict(cfg, total_steps=400)), str(d), resume=True)
        assert t.train() == "done"
        t.close()
        logs.append(_log(d / "progress.csv"))
    assert "re-seeded" in capsys.readouterr().err
    assert logs[0] == logs[1] and int(logs[0][-1]["global_step"]) == 400


@pytest.mark.parametrize("game", ["breakout", "space_invaders"])
@pytest.mark.parametrize("algo", ["sobirl", "drlhf", "sac"])
def test_cpu_estimate_of_a_minatar_run_is_within_a_factor_two_of_the_committed_logs(game, algo):
    """The announced CPU time of a MinAtar run against the study's run of seed 0. Its wall clock counts pauses (the
    study was stopped and resumed), so the measured time is the median seconds per step over its 1,000-step
    iterations times its steps: robust to a pause, not to a wrong rate (the Atari rates were 15x too slow)."""
    from sobirl_lite.atari.logs import read_progress

    run = os.path.join("book", "data", "minatar", "eval_study", f"{game}-{algo}-s0")
    with open(os.path.join(run, "config.json")) as f:
        cfg = Config.from_dict(json.load(f)["config"])
    rows = read_progress(os.path.join(run, "progress.csv"))["iteration"]
    steps, wall = np.asarray(rows["global_step"], float), np.asarray(rows["wall_s"], float)
    per_step = np.diff(wall) / np.diff(steps)
    measured = np.median(per_step[per_step > 0]) * cfg.total_steps
    assert 0.5 < estimate_cpu_seconds(cfg) / measured < 2.0, (estimate_cpu_seconds(cfg), measured)
