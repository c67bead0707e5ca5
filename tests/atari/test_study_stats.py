"""The statistics of chapter 9's evaluation study (``sobirl_lite.atari.study``), on data whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sobirl_lite.atari import study
from sobirl_lite.atari.config import arm_name, config_arm
from sobirl_lite.atari.logs import RunLog


def fake_run(seed, evals, episodes=((10, 1.0), (20, 0.0))):
    steps, rets = zip(*episodes)
    return RunLog(f"r{seed}", {"config": {"seed": seed}},
                  {"global_step": np.array(steps, float), "episode_return": np.array(rets, float)}, {}, "",
                  {"eval_return_greedy": np.array(evals, float)})


def test_final_eval_return_and_random_play():
    run = fake_run(0, [0.0, 1.0, 3.0, 5.0])
    assert study.final_eval_return(run) == 4.0  # the last two evaluations
    assert np.isnan(study.final_eval_return(fake_run(0, [2.0])))  # fewer evaluations than asked: no number
    runs = [fake_run(0, [], ((5, 1.0), (50, 9.0))), fake_run(1, [], ((7, 3.0),))]
    assert study.random_play_return(runs, learning_starts=10) == 2.0  # games after step 10 are not random play
    with pytest.raises(ValueError, match="no game ended"):
        study.random_play_return(runs, learning_starts=1)


def test_normalised_scores():
    np.testing.assert_allclose(study.normalised_scores([1.0, 3.0, 5.0], 1.0, 5.0), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="does not exceed random play"):
        study.normalised_scores([1.0], 2.0, 2.0)


def test_paired_difference_uses_the_pairing():
    rng = np.random.default_rng(0)
    base = {s: v for s, v in enumerate(rng.normal(0, 10, 10))}  # large seed-to-seed spread
    shifted = {s: v + 1.0 + 0.01 * rng.normal() for s, v in base.items()}  # a small, consistent difference
    d = study.paired_difference(shifted, base)
    assert d["n"] == 10 and d["low"] > 0.9 and d["high"] < 1.1  # paired: the spread of the seeds cancels
    unpaired = study.difference_ci(np.array(list(shifted.values())), np.array(list(base.values())))
    assert unpaired[1] < 0 < unpaired[2]  # Welch's interval cannot see it
    # the interval is scipy's paired t interval over the common seeds only
    d2 = study.paired_difference({0: 1.0, 1: 2.0, 2: 4.0, 9: 100.0}, {0: 0.0, 1: 1.5, 2: 2.0})
    ci = stats.ttest_rel([1.0, 2.0, 4.0], [0.0, 1.5, 2.0]).confidence_interval()
    assert d2["seeds"] == [0, 1, 2] and (d2["low"], d2["high"]) == pytest.approx((ci.low, ci.high))
    with pytest.raises(ValueError, match="two seeds"):
        study.paired_difference({0: 1.0}, {0: 2.0})


def test_bonferroni_and_verdicts():
    assert study.bonferroni_level(6) == pytest.approx(1 - 0.05 / 6)
    with pytest.raises(ValueError):
        study.bonferroni_level(0)
    assert study.MARGIN == 0.2  # the margin PROTOCOL.md fixed before the results were read
    assert study.equivalence_verdict(-0.1, 0.15) == "on a par"
    assert study.equivalence_verdict(0.05, 0.15) == "on a par"  # equivalent beats "ahead" inside the margin
    assert study.equivalence_verdict(0.05, 0.5) == "ahead"
    assert study.equivalence_verdict(-0.5, -0.05) == "behind"
    assert study.equivalence_verdict(-0.3, 0.1) == "inconclusive"
    assert study.equivalence_verdict(-0.1, 0.1, margin=None) == "inconclusive"


def test_iqm_and_probability_of_improvement_from_rliable():
    scores = {"a": np.arange(1.0, 21.0), "b": np.arange(1.0, 21.0) + 100}
    out = study.iqm_intervals(scores, reps=2000)
    assert out["a"][0] == pytest.approx(10.5)  # IQM of 1..20: the mean of 6..15
    assert out["a"][1] <= 10.5 <= out["a"][2] and out["b"][0] == pytest.approx(110.5)
    p, lo, hi = study.improvement_probability(scores["b"], scores["a"], reps=2000)
    assert p == 1.0 and lo == 1.0  # every b run beats every a run
    p, lo, hi = study.improvement_probability(scores["a"], scores["a"], reps=2000)
    assert p == pytest.approx(0.5) and lo < 0.5 < hi


def test_arm_names():
    assert arm_name("sobirl") == "sobirl"
    assert arm_name("sobirl", "uniform") == "sobirl-uniform"
    assert arm_name("sobirl", "policy", "leave-one-out") == "sobirl-loo"
    assert config_arm({"algo": "drlhf"}) == "drlhf"  # a config written before the variants existed
    assert config_arm({"algo": "sobirl", "hyper_expectation": "uniform", "hyper_baseline": "none"}) == \
        "sobirl-uniform"
