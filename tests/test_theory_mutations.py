"""Mutation test of the theory checks: scale one derived constant of ``sobirl_lite.theory`` by 0.1 or by 10 and
run the constant checks of ``tests/test_theory.py``. ``CAUGHT`` lists exactly the mutations some check fails on;
the convergence chapter states the same list, so a check the chapter credits with catching a wrong constant must
catch it here, and a mutation the chapter says slips through must slip through."""
from __future__ import annotations

import pytest

import sobirl_lite.theory as theory

FACTORS = (0.1, 10.0)

# (name, how to patch): a function of theory.py scaled as a whole, or one field of a NamedTuple it returns
FUNCTIONS = ("policy_lipschitz", "value_gradient_lipschitz", "q_gradient_lipschitz", "policy_jacobian_lipschitz",
             "hypergradient_lipschitz", "estimator_bias_constant", "trajectory_drift")
FIELDS = {  # function -> fields scaled one at a time; the upper constants only for the shaping objective
    "bce_loss_constants": ("C_l", "L_l", "L_l_prime"),
    "trajectory_constants": ("L_phi", "C_est"),
    "upper_constants[UpperValue]": ("C_f", "L_f"),
}

#: every mutation, and whether the checks catch it (True) or it slips through (False)
CAUGHT = {
    **{(f, None, k): True for f in FUNCTIONS for k in FACTORS},
    **{("bce_loss_constants", fld, k): True for fld in FIELDS["bce_loss_constants"] for k in FACTORS},
    # the model-free L_phi and C_est of the paper's Theorem 6.6 are derived, not measured: nothing catches them
    **{("trajectory_constants", fld, k): False for fld in FIELDS["trajectory_constants"] for k in FACTORS},
    # C_f of the shaping objective is attained; its L_f is only bounded from above, with slack above 10
    ("upper_constants[UpperValue]", "C_f", 0.1): True,
    ("upper_constants[UpperValue]", "C_f", 10.0): True,
    ("upper_constants[UpperValue]", "L_f", 0.1): False,
    ("upper_constants[UpperValue]", "L_f", 10.0): False,
}


def _checks():
    import test_theory  # tests/ is on sys.path: pytest inserts the folder of a test module without __init__.py
    return test_theory


def _constant_checks(mod):
    """The checks of test_theory.py that read a constant, as zero-argument callables."""
    calls = []
    for name in sorted(mod.PROBLEMS):
        calls += [lambda n=name: mod.test_sampled_reward_constants_stay_below_the_exact_ones(n),
                  lambda n=name: mod.test_lipschitz_constants_bound_sampled_ratios(n),
                  lambda n=name: mod.test_expected_estimate_is_eq9_at_the_policy(n)]
    calls += [getattr(mod, n) for n in (
        "test_policy_lipschitz_constant_is_attained", "test_value_lipschitz_constant_kappa_is_attained",
        "test_upper_value_bound_is_attained", "test_quadratic_reward_constants_match_the_formula",
        "test_value_gradient_lipschitz_constant_is_attained", "test_q_gradient_lipschitz_constant_is_attained",
        "test_policy_jacobian_and_hypergradient_constants_within_a_factor_5",
        "test_estimator_bias_constant_within_a_factor_2",
        "test_trajectory_drift_is_attained_near_a_deterministic_policy",
        "test_bce_loss_constants_are_attained")]
    return calls


def _scaled(fn, field, factor, only=None):
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        if only is not None and not isinstance(args[0], only):
            return out
        if field is None:
            return out * factor
        return out._replace(**{field: getattr(out, field) * factor})
    return wrapper


def _patch(monkeypatch, mod, name, field, factor):
    from sobirl_lite.upper import UpperValue
    base, only = name, None
    if name == "upper_constants[UpperValue]":
        base, only = "upper_constants", UpperValue
    mutant = _scaled(getattr(theory, base), field, factor, only)
    monkeypatch.setattr(theory, base, mutant)
    if hasattr(mod, base):  # the name the test module imported
        monkeypatch.setattr(mod, base, mutant)


def _caught(mod) -> bool:
    for check in _constant_checks(mod):
        try:
            check()
        except AssertionError:
            return True
    return False


def test_unmutated_constants_pass_every_check():
    assert not _caught(_checks())


@pytest.mark.parametrize("mutation", sorted(CAUGHT, key=str), ids=lambda m: f"{m[0]}.{m[1]}x{m[2]:g}")
def test_each_mutation_is_caught_exactly_when_the_chapter_says(mutation, monkeypatch):
    mod = _checks()
    name, field, factor = mutation
    _patch(monkeypatch, mod, name, field, factor)
    assert _caught(mod) == CAUGHT[mutation], (
        f"{name}{'.' + field if field else ''} x {factor:g}: "
        + ("caught, but listed as slipping through" if not CAUGHT[mutation] else "not caught by any check"))
