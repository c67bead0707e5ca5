"""sobirl_lite: bilevel reinforcement learning via closed-form hyper-gradients."""
