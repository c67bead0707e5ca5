"""Tabular RLHF pieces: BCE, Bradley-Terry preference model, fragmenter, synthetic gatherer, FIFO buffer, trainer."""
import numpy as np
import pytest

import sobirl_lite as sl
from sobirl_lite.estimators import TupleBatch
from sobirl_lite.rlhf import (PreferenceBuffer, PreferenceModel, RandomFragmenter, RewardTrainer, RLHFSetup,
                              SyntheticGatherer, bce_loss, example_setup, sigmoid)


@pytest.fixture(scope="module")
def setup():
    return example_setup(size=3, segment_length=4, pairs_per_iteration=4, initial_pairs=8, buffer_capacity=20)


def _pairs(setup, n, seed=0, pi=None):
    env = setup.make_env()
    env.reset(seed=seed)
    pi = np.full((setup.mdp.S, setup.mdp.A), 1 / setup.mdp.A) if pi is None else pi
    return setup.query(env, pi, n, np.random.default_rng(seed))


def test_bce_loss_formula_and_stability():
    z = np.array([-3.0, 0.0, 2.0])
    y = np.array([1.0, 0.3, 0.0])
    p = 1 / (1 + np.exp(-z))
    assert np.allclose(bce_loss(z, y), -y * np.log(p) - (1 - y) * np.log(1 - p))
    big = bce_loss(np.array([800.0, -800.0]), np.array([0.0, 1.0]))
    assert np.allclose(big, 800.0) and np.all(np.isfinite(big))
    assert np.allclose(sigmoid(np.array([-800.0, 0.0, 800.0])), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="labels"):
        bce_loss(np.zeros(2), np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="shape"):
        bce_loss(np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_bce_gradient_matches_finite_differences(setup, kind):
    S, A = setup.mdp.S, setup.mdp.A
    rng = np.random.default_rng(3)
    reward = sl.TabularReward(S, A) if kind == "tabular" else sl.LinearReward(rng.normal(size=(S, A, 5)))
    model = PreferenceModel(reward, discount=0.9)
    batch = _pairs(setup, 30)
    x = rng.normal(size=reward.n)
    eps = 1e-6
    fd = np.array([(model.loss(x + eps * e, batch) - model.loss(x - eps * e, batch)) / (2 * eps)
                   for e in np.eye(reward.n)])
    assert np.allclose(model.grad_x(x, batch), fd, atol=1e-8)
    # Bradley-Terry: P(τ1 ≻ τ2) = σ(R(τ1) - R(τ2)) with discounted segment sums
    r = reward.value(x)
    R1 = sum(0.9 ** h * r[batch.states[:, 0, h], batch.actions[:, 0, h]] for h in range(4))
    R2 = sum(0.9 ** h * r[batch.states[:, 1, h], batch.actions[:, 1, h]] for h in range(4))
    assert np.allclose(model.probability(x, batch), 1 / (1 + np.exp(-(R1 - R2))))


def test_fragmenter_shapes_and_windows(setup):
    env = setup.make_env()
    env.reset(seed=0)
    traj = env.rollouts(np.full((9, 4), 0.25), 5, 12)
    pairs = RandomFragmenter(4)(traj, 50, np.random.default_rng(0))
    assert pairs.states.shape == (50, 2, 4) and pairs.labels is None
    # every segment is a contiguous window of some trajectory, and the two segments come from different ones
    for b in range(50):
        found = []
        for i in range(2):
            hits = [(j, t) for j in range(5) for t in range(9)
                    if np.array_equal(traj.states[j, t:t + 4], pairs.states[b, i])
                    and np.array_equal(traj.actions[j, t:t + 4], pairs.actions[b, i])]
            assert hits
            found.append({j for j, _ in hits})
        assert any(j1 != j2 for j1 in found[0] for j2 in found[1])
    with pytest.raises(ValueError, match="shorter"):
        RandomFragmenter(20)(traj, 3, np.random.default_rng(0))


def test_gatherer_labels(setup):
    batch = _pairs(setup, 400)
    G = SyntheticGatherer().true_returns(batch)
    diff = G[:, 0] - G[:, 1]
    det = SyntheticGatherer(temperature=0.0)(batch, np.random.default_rng(0)).labels
    assert np.array_equal(det, np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5)))
    soft = SyntheticGatherer(temperature=0.5, sample=False)(batch, np.random.default_rng(0)).labels
    assert np.allclose(soft, 1 / (1 + np.exp(-diff / 0.5)))
    # sampled labels are Bernoulli(σ(ΔG)): check the frequency on one repeated pair
    one = batch.take(np.full(20_000, int(np.argmax(np.abs(diff) > 0.2))))
    y = SyntheticGatherer(temperature=1.0, sample=True)(one, np.random.default_rng(1)).labels
    p = sigmoid(diff[int(np.argmax(np.abs(diff) > 0.2))])
    assert set(np.unique(y)) <= {0.0, 1.0} and abs(y.mean() - p) < 0.015
    with pytest.raises(ValueError, match="temperature"):
        SyntheticGatherer(temperature=-1)


def test_fifo_buffer_semantics(setup):
    buf = PreferenceBuffer(capacity=5)
    with pytest.raises(ValueError, match="empty"):
        buf.batch()
    batches = [_pairs(setup, n, seed=i) for i, n in enumerate((3, 2, 4))]
    buf.push(batches[0])
    buf.push(batches[1])
    assert len(buf) == 5
    assert np.array_equal(buf.batch().states, np.concatenate([batches[0].states, batches[1].states]))
    buf.push(batches[2])                               # 9 pairs pushed, the 4 oldest evicted
    assert len(buf) == 5 and buf.total_pushed == 9
    expect = np.concatenate([b.states for b in batches])[4:]
    assert np.array_equal(buf.batch().states, expect)
    assert np.array_equal(buf.batch().labels, np.concatenate([b.labels for b in batches])[4:])
    with pytest.raises(ValueError, match="labelled"):
        buf.push(batches[0]._replace(labels=None))
    with pytest.raises(ValueError, match="capacity"):
        PreferenceBuffer(0)


def test_preference_accuracy_and_trainer(setup):
    """The true reward ranks every pair right; its negative every pair wrong; BCE training raises accuracy."""
    env = setup.make_env()
    env.reset(seed=0)
    pi = np.full((9, 4), 0.25)
    x_true = setup.mdp.r.ravel()
    assert setup.preference_accuracy(x_true, env, pi, np.random.default_rng(0), 300) == 1.0
    assert setup.preference_accuracy(-x_true, env, pi, np.random.default_rng(0), 300) == 0.0
    buf = PreferenceBuffer(200)
    buf.push(_pairs(setup, 200, seed=5))
    trainer = RewardTrainer(setup.model, lr=0.5, epochs=50, batch_size=32)
    x0 = np.zeros(setup.n)
    x1 = trainer.train(x0, buf, np.random.default_rng(0))
    assert np.all(x0 == 0)                                         # not modified in place
    assert setup.model.loss(x1, buf.batch()) < setup.model.loss(x0, buf.batch()) - 0.1
    assert setup.preference_accuracy(x1, env, pi, np.random.default_rng(1), 300) > 0.8


def test_true_return_matches_upper_value(setup):
    pi = sl.softmax_policy(np.random.default_rng(0).normal(size=(9, 4)), 1.0)
    assert np.isclose(setup.true_return(pi), -sl.UpperValue.from_mdp(setup.mdp).value(None, pi))


def test_setup_validation():
    mdp = sl.random_mdp(3, 2, seed=0)
    with pytest.raises(ValueError, match="reward model"):
        RLHFSetup(mdp, reward=sl.TabularReward(4, 2))
    with pytest.raises(ValueError, match="rollout_length"):
        RLHFSetup(mdp, segment_length=5, rollout_length=3)
    with pytest.raises(ValueError, match="pairs_per_iteration"):
        RLHFSetup(mdp, pairs_per_iteration=0)
    with pytest.raises(ValueError, match="pairs"):
        PreferenceModel(sl.TabularReward(3, 2)).logits(np.zeros(6), TupleBatch(np.zeros((2, 3, 1), int),
                                                                                 np.zeros((2, 3, 1), int),
                                                                                 np.zeros((2, 3, 1))))
    with pytest.raises(ValueError, match="no labels"):
        PreferenceModel(sl.TabularReward(3, 2)).value(np.zeros(6), TupleBatch(np.zeros((2, 2, 1), int),
                                                                                np.zeros((2, 2, 1), int),
                                                                                np.zeros((2, 2, 1))))


def test_mean_and_band():
    from sobirl_lite.plotting import mean_and_band
    Y = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 4.0]])
    mean, half = mean_and_band(Y, confidence=0.95)
    assert np.allclose(mean, [3.0, 3.0])
    from scipy import stats
    assert np.isclose(half[0], stats.t.ppf(0.975, 2) * 2.0 / np.sqrt(3))
    assert np.isclose(half[1], stats.t.ppf(0.975, 1) * np.std([2.0, 4.0], ddof=1) / np.sqrt(2))
    assert np.all(mean_and_band(Y[:1])[1] == 0)
    assert np.isclose(mean_and_band(Y, confidence=None)[1][0], 2.0 / np.sqrt(3))


def test_rlhf_widget_first_frame_and_sliders():
    import base64
    from sobirl_lite.widgets.rlhf import rlhf_widget
    box = rlhf_widget(labels=4, tau=0.5, seeds=2, iterations=10, size=3, segment_length=4, initial_pairs=8)
    (out,) = box.view.output.outputs
    png = base64.b64decode(out["data"]["image/png"])
    assert png.startswith(b"\x89PNG") and png == box.view.png and box.view.n_draws == 1
    assert len(box.view.figure.axes) == 2
    assert set(box.state["runs"]) == {"SoBiRL", "DRLHF"} and len(box.state["runs"]["SoBiRL"]) == 2
    labels_before = box.state["runs"]["DRLHF"][0].extra["labels"][-1]
    box.controls["labels"].value = 8
    assert box.view.n_draws == 2 and box.view.png != png
    assert box.state["runs"]["DRLHF"][0].extra["labels"][-1] > labels_before   # more labels per iteration
    box.controls["tau"].value = 1.0
    assert box.view.n_draws == 3
    assert box.state["runs"]["SoBiRL"][0].config["seed"] == 0
    assert all(0 <= a <= 1 for a in box.state["final_accuracy"].values())
