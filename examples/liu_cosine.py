"""Gradient descent on a quadratic with a cosine ripple (Liu 2024).

Y. Liu, "Complex fractal trainability boundary can arise from trivial
non-convexity", arXiv 2406.13971. Each of two scalar parameters sits on the
same one-dimensional landscape and starts at x = `start`:

- additive:        g(x) = x^2 + eps * cos(2 pi x / wavelength)
- multiplicative:  g(x) = x^2 * (1 + eps * cos(2 pi x / wavelength))

and the loss is g(x1) + g(x2). The roughness is the paper's control
parameter: eps / wavelength^2 for the additive form (its curvature
2 - eps (2 pi / wavelength)^2 cos(...) goes negative somewhere, so the loss
stops being convex, exactly when the roughness passes 1 / (2 pi^2) = 0.0507),
and eps itself for the multiplicative form (non-convex for any eps > 0).
`roughness` and `wavelength` give eps. Rescaling x by a factor b maps one
run onto another with wavelength / b and start / b at the same roughness,
so a run depends only on the roughness and on start / wavelength.

The two parameters are the groups "x1" and "x2". With one learning rate `lr`
for both, they follow the same path, and each pixel is the paper's
one-dimensional run: the shipped files put `lr` on x (linear, as the paper's
axis) and `start` on y. With `lr.x1` and `lr.x2` on the plane instead, each
coordinate runs on its own learning rate, the loss being a sum of two
independent terms: the trainable set is the paper's set of learning rates
times itself, a plaid of straight stripes whose boundary has dimension
1 + alpha, alpha being the dimension the paper measures on its line.

The additive form adds the constant eps: the gradient, hence every step, is
the paper's, and the loss stays >= 0, so the measure L_t / L_0 compares
losses on one scale.

CRITERION = "bounded": the paper calls a run trainable while its loss stays
bounded, not when it has fallen. Past lr = 1 the ripple holds some runs in an
oscillation at about their starting loss forever: bounded, hence trainable
for the paper, but never below L_0, hence diverged by zoomreel's default
criterion, whose transition sits at roughness 0.085 instead of the paper's
1 / (2 pi^2) (docs/science.md measures both).
"""

import jax.numpy as jnp

HYPERS = {
    "roughness": {"default": 0.1, "scale": "linear"},  # eps / wavelength^2 (additive) or eps (multiplicative)
    "wavelength": {"default": 0.1, "scale": "linear"},  # period of the ripple, in units of x
    "multiplicative": {"default": 0.0, "scale": "linear"},  # 0: additive form, 1: multiplicative form
    "start": {"default": 1.0, "scale": "linear"},  # both parameters at step 0
}

OPTIMIZER = {"optimizer": "gd", "lr": 0.5}
CRITERION = "bounded"  # trainable while every L_t / L_0 stays finite and at most 1e6, as the paper counts


def init(seed, hp):
    x = hp["start"] * jnp.ones(())
    return {"x1": x, "x2": x}


def _ripple(x, hp):
    """The loss of one coordinate, in the form `multiplicative` selects."""
    lam = hp["wavelength"]
    mult = hp["multiplicative"] > 0.5
    eps = jnp.where(mult, hp["roughness"], hp["roughness"] * lam**2)
    c = jnp.cos(2 * jnp.pi * x / lam)
    return jnp.where(mult, x**2 * (1 + eps * c), x**2 + eps * (1 + c))


def loss(params, data, hp):
    return _ripple(params["x1"], hp) + _ripple(params["x2"], hp)
