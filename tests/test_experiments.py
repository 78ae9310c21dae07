"""Experiments past the paper: other optimizers, networks, data and a user's
Python module, described in the keyframe file and trained by the generic step."""

from decimal import Decimal

import numpy as np
import pytest

import reference
import reference_optimizers as ropt
from zoomreel import engine, kinds, path, scene, work
from zoomreel.cache import Cache
from zoomreel.errors import UserError
from zoomreel.model import Model
from zoomreel.view import View



def _scene(tmp_path, model: str, plane: str = "", video: str = "", name="s.toml", center=("1.5", "1.5"), span="9"):
    p = tmp_path / name
    p.write_text(f'[model]\n{model}\n\n{plane}\n\n[video]\nsize = [16, 16]\n{video}\n\n'
                 f'[[keyframe]]\ntime = 0.0\ncenter = ["{center[0]}", "{center[1]}"]\nspan = "{span}"\n')
    return p


# -- the optimizers against an independent NumPy implementation

# (lr0, lr1) per pixel: converging and diverging runs, none on the chaotic
# boundary itself (there any two correct implementations part after a few
# steps, as they do between float64 and float64 with the rates nudged by ulps)
PIXELS = {
    "momentum": [(1, 1), (10, 3), (30, 30), (300, 300)],
    "nesterov": [(1, 3), (10, 10), (30, 30), (300, 300)],
    "adam": [(0.01, 0.01), (1, 1), (0.3, 3), (1e4, 1e4), (1e5, 1e5)],
}


@pytest.mark.parametrize("optimizer,hp", [
    ("momentum", {"momentum": 0.9}),
    ("nesterov", {"momentum": 0.8}),
    ("adam", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
])
def test_optimizers_match_a_numpy_reference(optimizer, hp):
    model = Model(steps=50, optimizer=optimizer, hypers=tuple(sorted(hp.items())))
    lr0, lr1 = (np.array(v, dtype=float) for v in zip(*PIXELS[optimizer]))
    got = engine.train(model, lr0, lr1, "float64").values
    want = np.array([ropt.pixel(optimizer, engine.draws(model), (a, b), 50, **hp) for a, b in zip(lr0, lr1)])
    assert np.all(np.abs(got - want) <= 1e-10 * np.abs(want)), (got, want)
    assert set(np.sign(want)) == {-1.0, 1.0}  # both phases among the pixels


class _Deep:
    """A deeper network's shared draws, as the reference takes them: its
    initial weights, inputs and targets (only the draws are shared)."""

    def __init__(self, model):
        from zoomreel.engine import generic

        p = generic.problem(model)
        ws = p.init({"init.scale": 1.0, "init.offset": 0.0})
        self.weights = [np.asarray(ws[g]) for g in sorted(ws, key=int)]
        self.x, self.y = np.asarray(p.data["xt"]).T, np.asarray(p.data["yt"]).T


# name: (model, the reference's keywords, pixels (x, y), the fixed rates after them)
FRAMES = {
    "rmsprop": (Model(steps=50, optimizer="rmsprop", hypers=(("decay", 0.9), ("eps", 1e-8))),
                {"decay": 0.9, "eps": 1e-8}, [(0.1, 0.1), (0.1, 3), (0.1, 10), (0.1, 100), (1e4, 1), (1e4, 30)]),
    "clip": (Model(steps=50, hypers=(("clip", 1.0),)), {"clip": 1.0},
             [(1, 1), (10, 100), (100, 10), (3, 300), (1, 1e4)]),
    "weight_decay": (Model(steps=50, optimizer="momentum", hypers=(("momentum", 0.5), ("weight_decay", 0.1))),
                     {"momentum": 0.5, "weight_decay": 0.1}, [(1, 1), (10, 10), (1, 30), (30, 100)]),
    "residual": (Model(steps=50, widths=(16, 16), residual=True, plane="", axes=(("lr.1", "log"), ("lr.2", "log"))),
                 {"residual": True}, [(1, 30), (100, 30), (1, 1000), (100, 1000)]),
}


@pytest.mark.parametrize("name", FRAMES)
def test_rmsprop_clip_weight_decay_and_residual_match_a_numpy_reference(name):
    """The rest of the optimizer frame and the residual network, float64, 50 steps."""
    model, kw, pixels = FRAMES[name]
    hx, hy = (np.array(v, dtype=float) for v in zip(*pixels))
    got = engine.train(model, hx, hy, "float64").values
    if model.widths:
        d = _Deep(model)
        lrs = [(0.1, a, b) for a, b in pixels]  # lr.0 is lr's default
        want = np.array([ropt.pixel(model.optimizer, d, r, 50, weights=d.weights, **kw) for r in lrs])
    else:
        want = np.array([ropt.pixel(model.optimizer, engine.draws(model), p, 50, **kw) for p in pixels])
    assert np.all(np.abs(got - want) <= 1e-10 * np.abs(want)), (got, want)
    assert set(np.sign(want)) == {-1.0, 1.0}


@pytest.mark.slow
def test_the_generic_step_agrees_with_the_hand_written_one():
    """The paper's network through jax.grad + optax GD: the same class as the
    hand-written step on at least 99.9 % of the standard view (48 x 48, the
    size of the paper's precision measurements), and every pixel where they
    part is one the hand-written step itself flips when its learning rates
    move by 4 ulps (undetermined in float64)."""
    for m in (Model(steps=100), Model(steps=100, plane="init-lr", nonlinearity="relu")):
        center = (Decimal("1.5"), Decimal("1.5")) if m.plane == "lr-lr" else (Decimal(0), Decimal("1.5"))
        view = View(center, Decimal(9), (48, 48))
        hx, hy = path.pixel_hypers(m, view, engine.FLOAT64)
        hand = engine.train(m, hx, hy, "float64")
        generic = engine.train(m, hx, hy, "float64", impl="generic")
        assert (hand.implementation, generic.implementation) == ("xla", "generic")
        part = np.sign(hand.values) != np.sign(generic.values)
        assert 1 - part.mean() >= 0.999
        assert len(set(np.sign(hand.values))) == 2
        nudged = engine.train(m, engine.FLOAT64.nudge(hx, 4), engine.FLOAT64.nudge(hy, 4), "float64").values
        assert np.all(np.sign(nudged[part]) != np.sign(hand.values[part]))


def test_gd_written_as_the_generic_model_matches_the_paper_reference():
    """A [plane] table naming lr.0 and lr.1 is the paper's lr-lr plane (and its fast path)."""
    m = scene.validate({"model": {"steps": 30}, "plane": {"x": "lr.0", "y": "lr.1"},
                        "keyframe": [{"time": 0, "center": [1, 1], "span": 1}]}, "t.toml").model
    assert m == Model(steps=30) and engine.implementation(m).impl == "xla"
    deep = Model(steps=30, widths=(16, 16))
    assert engine.implementation(deep).impl == "generic"


# -- the keyframe file


def test_a_file_describes_an_adam_run_in_the_lr_beta1_plane(tmp_path):
    p = _scene(tmp_path, 'optimizer = "adam"\nwidths = [8, 8]\ninit = "xavier"\nsteps = 20\nbeta2 = 0.99',
               '[plane]\nx = "lr"\ny = "beta1"', center=("-2", "0.5"), span="2")
    s = scene.load(p)
    m = s.model
    assert (m.optimizer, m.widths, m.init, m.hypers) == ("adam", (8, 8), "xavier", (("beta2", 0.99),))
    assert [(a.name, a.log) for a in kinds.axes(m)] == [("lr", True), ("beta1", False)]
    assert engine.implementation(m).impl == "generic"
    hx, hy = path.pixel_hypers(m, View((Decimal(-2), Decimal("0.5")), Decimal(2), (4, 4)), engine.FLOAT64)
    assert np.allclose(hx[:4], 10 ** np.array([-2.75, -2.25, -1.75, -1.25])) and np.allclose(hy[::4], [-0.25, 0.25, 0.75, 1.25])
    # an edited hyperparameter, axis or optimizer is another cache key
    keys = {str(kinds.key_fields(x)) for x in (m, Model(**{**m.__dict__, "hypers": (("beta2", 0.9),)}),
                                               Model(**{**m.__dict__, "optimizer": "rmsprop"}))}
    assert len(keys) == 3


def test_paper_models_keep_their_cache_keys():
    assert kinds.key_fields(Model(steps=100)) == {"kind": "network", "nonlinearity": "tanh", "width": 16, "dataset": 1.0,
                                                  "batch": "full", "plane": "lr-lr", "steps": 100, "seed": 0}
    assert kinds.key_fields(Model(kind="mandelbrot", steps=50)) == {"kind": "mandelbrot", "steps": 50}


BAD = [
    ('optimizer = "adamw"', "", "model.optimizer", "did you mean 'adam'"),
    ("beta1 = 0.9", "", "model.beta1", "not a hyperparameter of optimizer 'gd'"),
    ('optimizer = "adam"\nbeta1 = "x"', "", "model.beta1", "not a number"),
    ("lr = -1", "", "model.lr", "must be positive"),
    ("clip = 0", "", "model.clip", "must be positive"),
    ("widths = []", "", "model.widths", "list of 1 to 8"),
    ("widths = [0]", "", "model.widths", "below the minimum"),
    ('widths = "16"', "", "model.widths", "list of 1 to 8"),
    ("width = 8\nwidths = [8]", "", "model.width", "both width and widths"),
    ('init = "glorot"', "", "model.init", "unknown value"),
    ('data = "mnist"', "", "model.data", "unknown value"),
    ('data = "missing.npz"', "", "model.data", "not found"),
    ('loss = "hinge"', "", "model.loss", "unknown value"),
    ('loss = "cross-entropy"', "", "model.loss", "needs class labels"),
    ("residual = 1", "", "model.residual", "true or false"),
    ("residual = true", "", "model.residual", "at least two hidden layers"),
    ('"lr.5" = 0.1', "", "model.lr.5", "unknown key"),
    ("", '[plane]\nx = "bogus"\ny = "lr"', "plane.x", "no hyperparameter 'bogus'"),
    ("", '[plane]\nx = "lr"\ny = "lr"', "plane.y", "both axes"),
    ("", '[plane]\nx = "lr"', "plane.y", "no y axis"),
    ("", '[plane]\nx = "lr"\ny = "init.scale"\nx_scale = "ln"', "plane.x_scale", "unknown value"),
    ("", '[plane]\nx = "lr"\ny = "init.scale"\nz = 1', "plane.z", "unknown key"),
    ('plane = "init-lr"', '[plane]\nx = "lr"\ny = "init.scale"', "model.plane", "keep one of them"),
    ("lr = 0.1", '[plane]\nx = "lr"\ny = "init.scale"', "model.lr", "also given a value"),
    ('criterion = "finite"', "", "model.criterion", "unknown value"),
    ("criterion = 1", "", "model.criterion", "unknown value"),
]


@pytest.mark.parametrize("model,plane,where,what", BAD)
def test_bad_values_are_one_error_line_naming_the_key(tmp_path, model, plane, where, what):
    with pytest.raises(UserError) as e:
        scene.load(_scene(tmp_path, model + "\nsteps = 20", plane))
    assert e.value.where == f"s.toml:{where}" and what in e.value.line(), e.value.line()
    assert "\n" not in e.value.line()


def test_dataset_applies_to_gaussian_data_only_and_dd_to_the_hand_written_step(tmp_path):
    with pytest.raises(UserError, match="gaussian"):
        scene.load(_scene(tmp_path, 'data = "digits"\ndataset = 2\nsteps = 20'))
    with pytest.raises(UserError) as e:
        scene.load(_scene(tmp_path, 'optimizer = "adam"\nsteps = 20', video='precision = "dd"'))
    assert e.value.where == "s.toml:video.precision" and "float64" in e.value.fix
    s = scene.load(_scene(tmp_path, 'optimizer = "adam"\nsteps = 20'))
    with pytest.raises(UserError, match="dd cannot train"):
        scene.with_overrides(s, precision="dd")
    with pytest.raises(UserError, match="dd cannot train"):
        engine.train(s.model, np.array([0.1]), np.array([0.1]), "dd")


def test_npz_data_is_read_beside_the_file_and_checked(tmp_path):
    x = np.random.default_rng(1).normal(size=(40, 5))
    np.savez(tmp_path / "d.npz", X=x, y=(x[:, 0] > 0).astype(np.int64))
    s = scene.load(_scene(tmp_path, 'data = "d.npz"\nloss = "cross-entropy"\nsteps = 20\noptimizer = "momentum"',
                          '[plane]\nx = "lr"\ny = "momentum"', center=("-1", "0.5"), span="1"))
    assert s.model.data_hash and s.model.data_bytes
    raw = work.train_view(s.model, View((Decimal(-1), Decimal("0.5")), Decimal(1), (4, 4)), "float64").raw
    assert np.all(np.isfinite(raw)) and np.all(raw < 0)  # a small lr trains a linearly separable set
    np.savez(tmp_path / "d.npz", X=x)
    with pytest.raises(UserError) as e:
        scene.load(_scene(tmp_path, 'data = "d.npz"\nsteps = 20'))
    assert "no array 'y'" in e.value.what and "d.npz" in e.value.where


def test_digits_data_trains_with_adam():
    from zoomreel import data

    x, y, classes = data.digits()
    assert x.shape == (data.DIGITS_POINTS, 64) and classes == 10 and set(y) == set(range(10))
    assert np.allclose(x.mean(axis=0), 0) and np.all((np.abs(x.std(axis=0) - 1) < 1e-9) | (x.std(axis=0) == 0))
    m = Model(steps=20, optimizer="adam", data="digits", loss="cross-entropy", widths=(8, 8), init="he",
              plane="", axes=(("lr", "log"), ("beta1", "linear")))
    v = engine.train(m, np.array([1e-3, 1e-2, 1e4]), np.array([0.9, 0.9, 0.9]), "float32").values
    assert v[0] < 0 and v[1] < 0 and v[2] > 0  # small steps converge, a huge one diverges


# -- the Python kind

QUADRATIC = '''
import jax.numpy as jnp

HYPERS = {"curvature": {"default": 1.0, "scale": "log"}}
OPTIMIZER = {"optimizer": "gd", "lr": 0.1}

def init(seed, hp):
    return {"w": jnp.array([1.0, -2.0])}

def loss(params, data, hp):
    return 0.5 * hp["curvature"] * jnp.sum(params["w"] ** 2)
'''


def _quadratic_measure(lr, h, steps):
    """The paper's measure of GD on 0.5 h |w|^2: L_t = L_0 (1 - lr h)^(2t), exactly."""
    return reference.measure([(1.0 - lr * h) ** (2 * t) for t in range(steps)])


def test_a_python_module_trains_as_an_independent_computation_says(tmp_path):
    (tmp_path / "quad.py").write_text(QUADRATIC)
    p = _scene(tmp_path, 'kind = "python"\nmodule = "quad.py"\nsteps = 30', '[plane]\nx = "lr"\ny = "curvature"',
               center=("0", "0"), span="1")
    s = scene.load(p)
    assert s.model.hypers == () or dict(s.model.hypers).get("lr") is None  # lr is the axis
    view = View((Decimal(0), Decimal(0)), Decimal(1), (4, 4))
    raw = work.train_view(s.model, view, "float64").raw
    xs, ys = path.axis_coords(view)
    want = np.array([[_quadratic_measure(10 ** float(x), 10 ** float(y), 30) for x in xs] for y in ys])
    assert np.allclose(raw, want, rtol=1e-12) and (raw < 0).any() and (raw > 0).any()


BROKEN = [
    ("def init(:\n", "loading the module raised SyntaxError"),
    ("import jax.numpy as jnp\ndef init(seed, hp):\n    return {'w': jnp.ones(2)}\n", "no function loss()"),
    (QUADRATIC.replace('return {"w"', 'raise RuntimeError("no weights")\n    return {"w"'), "init() raised RuntimeError: no weights"),
    (QUADRATIC.replace("return 0.5 * hp", "return params['w'] * hp"), "not a scalar"),
    (QUADRATIC.replace("return 0.5 * hp", "return jnp.nan * hp"), "NaN"),
    (QUADRATIC.replace("return {\"w\": jnp.array([1.0, -2.0])}", "return [1.0]"), "not a non-empty dict"),
    (QUADRATIC.replace('"scale": "log"', '"scale": "ln"'), "scale 'ln'"),
    (QUADRATIC.replace('"lr": 0.1', '"beta1": 0.1'), "OPTIMIZER names 'beta1'"),
]


@pytest.mark.parametrize("source,what", BROKEN)
def test_a_broken_module_is_one_error_line_naming_it(tmp_path, source, what):
    (tmp_path / "quad.py").write_text(source)
    with pytest.raises(UserError) as e:
        scene.load(_scene(tmp_path, 'kind = "python"\nmodule = "quad.py"\nsteps = 30', '[plane]\nx = "lr"\ny = "curvature"'))
    assert e.value.where == "quad.py" and what in e.value.what, e.value.line()
    assert "\n" not in e.value.line()


def test_a_module_is_read_only_beside_a_file_loaded_from_disk(tmp_path):
    doc = {"model": {"kind": "python", "module": "elsewhere.py", "steps": 30}, "plane": {"x": "lr", "y": "curvature"},
           "keyframe": [{"time": 0, "center": [0, 0], "span": 1}]}
    (tmp_path / "elsewhere.py").write_text(QUADRATIC)
    with pytest.raises(UserError, match="was not loaded with the keyframe file"):
        scene.validate(doc, "request")  # as the explorer validates a request: no folder, no new module
    with pytest.raises(UserError, match="module not found"):
        scene.load(_scene(tmp_path, 'kind = "python"\nmodule = "nowhere.py"'))


def test_editing_the_module_trains_the_cached_view_again(tmp_path):
    (tmp_path / "quad.py").write_text(QUADRATIC)
    p = _scene(tmp_path, 'kind = "python"\nmodule = "quad.py"\nsteps = 30', '[plane]\nx = "lr"\ny = "curvature"',
               center=("0", "0"), span="1")
    cache = Cache(tmp_path / "c")
    view = View((Decimal(0), Decimal(0)), Decimal(1), (4, 4))
    first = work.train_view(scene.load(p).model, view, cache=cache)
    assert work.train_view(scene.load(p).model, view, cache=cache).cached
    (tmp_path / "quad.py").write_text(QUADRATIC.replace("0.5 * hp", "0.25 * hp"))
    again = work.train_view(scene.load(p).model, view, cache=cache)
    assert not again.cached and not np.array_equal(again.raw, first.raw)


def test_a_model_carries_its_module_to_another_process(tmp_path):
    """Ray workers share no files: the job's model holds the module's source."""
    import pickle
    import subprocess
    import sys

    (tmp_path / "quad.py").write_text(QUADRATIC)
    m = scene.load(_scene(tmp_path, 'kind = "python"\nmodule = "quad.py"\nsteps = 30',
                          '[plane]\nx = "lr"\ny = "curvature"')).model
    (tmp_path / "quad.py").unlink()
    blob = tmp_path / "m.pkl"
    blob.write_bytes(pickle.dumps(m))
    code = ("import pickle,sys,numpy as np; from zoomreel import engine; m = pickle.load(open(sys.argv[1],'rb'));"
            "print(engine.train(m, np.array([0.5]), np.array([1.0]), 'float64').values[0])")
    out = subprocess.run([sys.executable, "-c", code, str(blob)], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert float(out.stdout) == pytest.approx(_quadratic_measure(0.5, 1.0, 30), rel=1e-12)


def test_the_explorer_writes_an_experiment_back_as_it_was_read(tmp_path):
    import json

    from zoomreel.explore import keyframes, server

    (tmp_path / "quad.py").write_text(QUADRATIC)
    files = [
        _scene(tmp_path, 'optimizer = "adam"\nwidths = [8, 8]\nbeta2 = 0.99\n"lr.2" = 0.5\nsteps = 20',
               '[plane]\nx = "lr.0"\ny = "beta1"\ny_scale = "log"', name="a.toml", center=("-2", "-0.1"), span="1"),
        _scene(tmp_path, 'kind = "python"\nmodule = "quad.py"\nsteps = 30\nlr = 0.2', '[plane]\nx = "curvature"\ny = "seed"'
               .replace('"seed"', '"lr.w"'), name="p.toml", center=("0", "-1"), span="1"),
    ]
    for f in files:
        s = scene.load(f)
        text = keyframes.compose("t", s.model, s.video, [{"time": "0", "center": ["0", "-1"], "span": "1"}])
        assert scene.loads(text, "k.toml").model == s.model, text
        table = json.loads(json.dumps(keyframes.model_table(s.model)), parse_float=Decimal)
        got, _, _ = server.parse_view({"model": table, "center": ["0", "-1"], "span": "1"}, "view")
        assert got == s.model


def test_a_data_file_is_keyed_by_its_bytes_not_its_name(tmp_path):
    x = np.random.default_rng(2).normal(size=(20, 3))
    for name in ("a.npz", "b.npz"):
        np.savez(tmp_path / name, X=x, y=x[:, :1])
    a, b = (scene.load(_scene(tmp_path, f'data = "{n}"\nsteps = 20', name=f"{n}.toml")).model for n in ("a.npz", "b.npz"))
    assert kinds.key_fields(a) == kinds.key_fields(b)
    np.savez(tmp_path / "b.npz", X=x, y=x[:, 1:2])
    b = scene.load(_scene(tmp_path, 'data = "b.npz"\nsteps = 20', name="b2.toml")).model
    assert kinds.key_fields(a) != kinds.key_fields(b)
    fixed = scene.load(_scene(tmp_path, '"init.offset" = -0.5\nsteps = 20', name="o.toml")).model
    assert fixed.hyper("init.offset") == -0.5 and engine.implementation(fixed).impl == "generic"


# -- the trainability criterion

def test_the_bounded_criterion_classes_by_the_whole_record_in_every_form():
    """Trainable iff every v_t is finite and at most the cap; the values are
    the paper's measure's. Accumulated by segments, with pixels retired, in
    double-double too, it equals the whole record's."""
    rng = np.random.default_rng(3)
    T, N = 40, 12
    v = np.exp(rng.normal(0, 1, (T, N)).cumsum(axis=0) * 0.5)
    v /= v[:1]  # v_0 = 1
    v[:, 0] = 1.0  # oscillating at its starting loss: bounded, never converged
    v[5, 1] = 2e6  # past the cap once, then back
    v[7:, 2] = np.nan  # parameters gone
    v[9, 3] = np.inf
    v[1:, 4] = 1e6  # at the cap exactly: bounded
    losses = 3.0 * v
    want_class = np.array([np.all(np.isfinite(c) & (c <= 1e6)) for c in v.T])
    paper = engine.network_measure(losses)
    got = engine.network_measure(losses, "bounded")
    assert np.array_equal(got < 0, want_class) and want_class[[0, 4]].all() and not want_class[[1, 2, 3]].any()
    with np.errstate(invalid="ignore"):
        vv = losses / losses[:1]
    capped = np.minimum(np.where(np.isfinite(vv), vv, 1e6), 1e6)
    assert np.array_equal(got, np.where(want_class, -capped.sum(axis=0), (1 / capped).sum(axis=0)))  # the paper's sums
    assert paper[0] > 0 and got[0] == -T
    m = engine.measure.NetworkMeasure(T, N, criterion="bounded")
    ids = np.arange(N)
    m.add(0, ids, losses[:15])
    m.add(15, ids[:6], losses[15:25, :6])
    m.retire(ids[6:], 15)  # retired pixels: NaN from step 15 on
    m.add(25, ids[:6], losses[25:, :6])
    record = losses.copy()
    record[15:, 6:] = np.nan
    assert np.array_equal(m.result(), engine.network_measure(record, "bounded"))
    dd = np.stack([losses, np.zeros_like(losses)], axis=-1)
    assert np.array_equal(engine.network_measure(dd, "bounded") < 0, want_class)


FLIP = """
import jax.numpy as jnp

HYPERS = {"curvature": {"default": 1.0, "scale": "linear"}}
CRITERION = "bounded"

def init(seed, hp):
    return {"w": jnp.array([1.0, -2.0])}

def loss(params, data, hp):
    return 0.5 * hp["curvature"] * jnp.sum(params["w"] ** 2)
"""


def test_a_run_that_oscillates_forever_is_trainable_when_bounded_counts(tmp_path):
    """Gradient descent on 0.5 h |w|^2 with lr h = 2 flips w to -w at every
    step: L_t = L_0 forever. Never converged (the paper's criterion), always
    bounded (Liu et al.'s); lr h = 1.5 converges, 3 diverges past the cap."""
    (tmp_path / "flip.py").write_text(FLIP)
    lrs = np.array([1.5, 2.0, 3.0])
    h = np.ones(3)

    def values(toml_extra, name):
        s = scene.load(_scene(tmp_path, f'kind = "python"\nmodule = "flip.py"\nsteps = 30\n{toml_extra}',
                              '[plane]\nx = "lr"\ny = "curvature"\nx_scale = "linear"', name=name))
        r = engine.train(s.model, lrs, h, "float64")
        assert r.implementation == "generic"
        return s.model, r.values

    bounded, got = values("", "b.toml")  # the module's CRITERION
    converged, paper = values('criterion = "converged"', "c.toml")  # the file wins
    assert (bounded.criterion, converged.criterion) == ("bounded", "converged")
    want = [_quadratic_measure(lr, 1.0, 30) for lr in lrs]
    assert np.allclose(paper, want, rtol=1e-12) and list(np.sign(paper)) == [-1, 1, 1]
    assert got[0] == paper[0] and got[1] == -30.0 and got[2] == paper[2] > 0
    assert kinds.key_fields(bounded) != kinds.key_fields(converged)
    assert "criterion" not in kinds.key_fields(converged)


def test_only_the_generic_step_trains_a_bounded_network(tmp_path):
    m = scene.load(_scene(tmp_path, 'criterion = "bounded"\nsteps = 20')).model
    assert m.criterion == "bounded" and m == Model(steps=20, criterion="bounded")
    assert engine.implementation(m).impl == "generic"
    assert not any(f.supports(m) for f in engine.implementations("network") if f.impl != "generic")
    assert kinds.key_fields(m) == {**kinds.key_fields(Model(steps=20)), "criterion": "bounded"}
    with pytest.raises(UserError) as e:
        scene.load(_scene(tmp_path, 'criterion = "bounded"\nsteps = 20', video='precision = "dd"'))
    assert e.value.where == "s.toml:video.precision" and "float64" in e.value.fix
    with pytest.raises(UserError) as e:
        engine.train(m, np.array([1.0]), np.array([1.0]), "float64", impl="xla")
    assert "\n" not in e.value.line()
    # the paper's pixels, whole-record measure with the bounded class
    lr0, lr1 = np.array([1.0, 10.0, 300.0]), np.array([1.0, 3.0, 300.0])
    got = engine.train(m, lr0, lr1, "float64").values
    d = engine.draws(m)
    want = [engine.network_measure(ropt.losses("gd", d, (a, b), 20)[:, None], "bounded")[0] for a, b in zip(lr0, lr1)]
    assert np.allclose(got, want, rtol=1e-10) and got[0] < 0 < got[2]


def test_a_bad_module_criterion_is_one_error_line(tmp_path):
    (tmp_path / "flip.py").write_text(FLIP.replace('"bounded"', '"finite"'))
    with pytest.raises(UserError) as e:
        scene.load(_scene(tmp_path, 'kind = "python"\nmodule = "flip.py"\nsteps = 30', '[plane]\nx = "lr"\ny = "curvature"'))
    assert e.value.where == "flip.py" and "CRITERION" in e.value.what


def test_a_loss_falling_past_float64s_range_is_measured_without_a_warning():
    """A run converging faster than geometrically (Liu et al.'s multiplicative
    ripple) reaches losses of 1e-300 and below: 1/v_t overflows, silently, and
    the values are the whole record's."""
    import warnings

    T = 25
    losses = np.stack([np.logspace(0, -320, T), np.r_[1.0, np.full(T - 1, 1e-308)], np.logspace(0, 10, T)], axis=1)
    for criterion in ("converged", "bounded"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = engine.measure.NetworkMeasure(T, 3, criterion=criterion)
            m.add(0, np.arange(3), losses[:10])
            m.add(10, np.arange(3), losses[10:])
            got = m.result()
        assert np.array_equal(got, engine.network_measure(losses, criterion))
        assert got[0] < 0 and got[1] < 0 and got[2] > 0
