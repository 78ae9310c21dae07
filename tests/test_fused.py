"""The fused GPU kernel (zoomreel.engine.fused), checked on the CPU in Pallas's
interpret mode against the XLA step and the NumPy reference (tests/reference.py).

On a GPU the same kernel runs natively here, and tests/test_science.py holds it
to every test the XLA step passes.
"""

import dataclasses
import sys
from decimal import Decimal

import numpy as np
import pytest

import reference as ref
from zoomreel.plan import make_plan
from zoomreel.report import info
from zoomreel import engine, path
from zoomreel.work import FrameUnits
from zoomreel.engine import formulation, fused, gpucode
from zoomreel.errors import UserError
from zoomreel.model import Model

CONDITIONS = ref.conditions(25)
PLATFORM = __import__("jax").devices()[0].platform
FUSED_HERE = "fused" if PLATFORM == "gpu" else "fused (Pallas interpret mode: slow, for checking)"

# Median over a grid of |fused - xla| / |xla|. Measured on these grids
# (2026-11-30, development CPU, interpret mode), the largest median over the six
# conditions: float32 6.4e-8, float64 1.5e-16 (a float32 ulp is 6e-8 to 1.2e-7,
# a float64 one 1.1e-16 to 2.2e-16). Single pixels on the boundary differ more
# (up to 6e-3 in float32, 5e-5 in float64), as any change of rounding moves them.
MEDIAN_REL = {"float32": 1e-6, "float64": 1e-14}


def grid(model, k=4):
    # log10 coordinates spanning both phases of each condition
    if model.plane == "init-lr":
        xs, ys = np.linspace(-2, 2, k), np.linspace(-1, 3, k)
    else:
        xs, ys = np.linspace(-1, 4, k), np.linspace(-1, 4, k)
    return 10.0**xs, 10.0**ys


@pytest.mark.parametrize("name", list(CONDITIONS))
@pytest.mark.slow
def test_fused_equals_the_xla_step_up_to_rounding(name):
    model = CONDITIONS[name]
    hx, hy = grid(model)
    HX, HY = (a.ravel() for a in np.meshgrid(hx, hy))
    want = ref.frame(model, engine.draws(model), hx, hy).ravel()
    assert (want < 0).any() and (want > 0).any(), name  # both phases, or this proves little
    for dtype in ("float32", "float64"):
        xla = engine.train(model, HX, HY, dtype, impl="xla").values
        res = engine.train(model, HX, HY, dtype, impl="fused")
        assert (res.implementation, res.arithmetic) == ("fused", dtype)
        got = res.values
        assert np.mean(np.sign(got) == np.sign(xla)) >= 15 / 16, (name, dtype)
        rel = np.abs(got - xla) / np.abs(xla)
        assert np.median(rel) <= MEDIAN_REL[dtype], (name, dtype, np.median(rel))
        if dtype == "float64":  # and the independent NumPy reference
            assert np.mean(np.sign(got) == np.sign(want)) >= 15 / 16, name
            assert np.median(np.abs(got - want) / np.abs(want)) < 1e-9, name


@pytest.mark.slow
def test_same_class_at_the_standard_view():
    """The standard view: float64 classes as the XLA step's for at least 99.9 %
    of the pixels (measured: all of them); in float32 only pixels that no
    float32 run decides change class.

    A pixel changes class under any change of rounding where its class is not
    decided by the arithmetic: the XLA step's float32 and float64 classes
    differ, or its loss barely moves, so the mean of its last normalised
    losses is 1 up to rounding and its value is +-steps, or its run is
    chaotic: float64's own two steps give it measures more than 1e-3 apart.
    Measured (2026-11-30, 32x32, 50 steps): 3 of 1024 pixels changed class in
    float32, two of each kind; none in float64. On another 2-core AMD EPYC
    host (2026-12-02, same jax) 2 changed: pixel 94, and pixel 542, which is
    diverged in both float64 steps with measures 21.7 and 23.1 (chaotic),
    diverged in XLA's float32 (4.3) and converged in the kernel's (-557).
    """
    model = Model(steps=50)
    view = path.View((Decimal("1.5"), Decimal("1.5")), Decimal(9), (32, 32))
    hx, hy = path.pixel_hypers(model, view, engine.FLOAT32)
    got, xla = {}, {}
    for dtype in ("float32", "float64"):
        xla[dtype] = engine.train(model, hx, hy, dtype, impl="xla", early_exit=False).values
        got[dtype] = engine.train(model, hx, hy, dtype, impl="fused", early_exit=False).values
    assert (xla["float32"] < 0).sum() > 100 and (xla["float32"] > 0).sum() > 100
    assert np.mean((got["float64"] < 0) == (xla["float64"] < 0)) >= 0.999
    flipped = (got["float32"] < 0) != (xla["float32"] < 0)
    # chaotic runs: float64's two roundings (the two steps) already move the measure by more than 1e-3
    chaotic = np.abs(got["float64"] - xla["float64"]) > 1e-3 * np.abs(xla["float64"])
    undecided = (((xla["float32"] < 0) != (xla["float64"] < 0)) | (np.abs(np.abs(xla["float32"]) / model.steps - 1) < 1e-2)
                 | chaotic)
    assert flipped.sum() <= 4 and not (flipped & ~undecided).any(), np.flatnonzero(flipped & ~undecided)


@pytest.mark.parametrize("name, dtype", [("tanh", "float32"), ("minibatch", "float64")])
@pytest.mark.slow
def test_early_exit_changes_no_value(name, dtype):
    """Blocks that stop inside a segment, NaN pixels and pixels past RETIRE_V
    retire without changing a value, bit for bit."""
    model = Model(nonlinearity="tanh", batch=CONDITIONS[name].batch, steps=50)
    hx, hy = grid(model, k=8)
    HX, HY = (a.ravel() for a in np.meshgrid(hx, hy))
    # chunks of 16 pixels, two kernel blocks of 8 each
    res = engine.train(model, HX, HY, dtype, chunk=16, impl="fused")
    full = engine.train(model, HX, HY, dtype, chunk=16, impl="fused", early_exit=False)
    assert (full.values > 0).sum() > 5 and res.computed < full.computed == HX.size * model.steps
    np.testing.assert_array_equal(res.values, full.values)


def test_a_block_that_blows_up_stops_and_retires():
    """Eight pixels blowing up share a chunk with eight of which one converges:
    their block stops inside the first segment, the other block runs on."""
    model = Model(steps=50)
    big = 10.0 ** np.linspace(4, 5, 16)
    hx, hy = big.copy(), big[::-1].copy()
    hx[12], hy[12] = 1.0, 1e-2  # converges, in the second block
    res = engine.train(model, hx, hy, "float32", chunk=16, impl="fused")
    full = engine.train(model, hx, hy, "float32", chunk=16, impl="fused", early_exit=False).values
    assert res.values[12] < 0 and (np.delete(res.values, 12) > 0).all()
    # the first segment, then the converging pixel alone: the stopped block retired
    assert res.computed == 16 * engine.SEGMENT_STEPS + 1 * (50 - engine.SEGMENT_STEPS), res
    np.testing.assert_array_equal(res.values, full)


@pytest.mark.skipif(sys.platform != "linux", reason="the triton package has Linux wheels only")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.slow
def test_the_kernel_compiles_for_an_h100_in_full_precision_without_spilling(dtype):
    """Every condition's segment lowers, on this machine, to one Triton kernel
    for a CUDA GPU, and Triton compiles it for an H100/H200 (sm_90):

    - ptxas spills nothing of note (measured: 0 bytes of stack, 24 for relu
      in float64; holding X in registers instead spilled 5.8 to 10.7 KB);
    - float32 products are FMAs, not tensor-core (tf32) instructions, which
      would round the operands; float64 ones are FMAs or DMMA, exact float64;
    - the pass over a tile is a loop, not the whole step written out.
    """
    for model in CONDITIONS.values():
        hlo, ttir = gpucode.lower_for_cuda(model, dtype)
        assert hlo.count("__gpu$xla.gpu.triton") == 1, model
        code = gpucode.compile_cuda(ttir, cc=90)
        assert code.stack <= 64, (model, code.registers, code.stack)
        mix = code.hottest_loop_mix()
        if dtype == "float32":
            assert not {"HMMA", "HGMMA"} & {op for _, op, _ in code.sass}, model  # no tf32 anywhere
            assert mix["FFMA"] >= 500, (model, mix.most_common(6))
        else:
            assert mix["DFMA"] + 64 * mix["DMMA"] >= 500 and mix["FFMA"] <= 8, (model, mix.most_common(6))
        assert sum(mix.values()) < 4000, model  # one tile's pass, 700 to 2300 instructions


def test_the_kernel_is_chosen_on_gpus_it_fits(monkeypatch):
    f = formulation.get("network", "fused")
    monkeypatch.setattr(f, "verified", {})
    monkeypatch.setattr(formulation, "warned_fallbacks", set())
    monkeypatch.setattr(fused, "compare_with_xla", lambda model, dtype: None)  # as on a GPU where it compiles right
    assert f.tag and f.tag != formulation.get("network", "xla").tag  # frames keyed apart
    assert f.suits("gpu", Model()) and f.suits("gpu", Model(width=32))
    assert not f.suits("gpu", Model(width=12)) and not f.suits("cpu", Model())
    monkeypatch.delenv(formulation.KERNEL_ENV, raising=False)
    assert formulation.choose(Model(), "gpu").impl == "fused"
    assert formulation.choose(Model(width=12), "gpu").impl == "xla"
    assert formulation.choose(Model(), "cpu").impl == "xla"
    monkeypatch.setenv(formulation.KERNEL_ENV, "fused")
    assert formulation.choose(Model(), "cpu").impl == "fused"
    monkeypatch.setenv(formulation.KERNEL_ENV, "xla")
    assert formulation.choose(Model(), "gpu").impl == "xla"
    monkeypatch.setenv(formulation.KERNEL_ENV, "triton")
    with pytest.raises(UserError):
        formulation.choose(Model(), "gpu")


def test_frames_of_the_two_kernels_are_keyed_apart(write_scene, tmp_path, monkeypatch):
    """A video never mixes frames of the XLA step and the fused kernel: their cache keys differ."""
    from zoomreel import render, scene

    s = scene.load(write_scene(steps=20, w=16, h=16, fps=2, t1="0.5"))
    out = tmp_path / "o"
    monkeypatch.delenv("ZOOMREEL_KERNEL", raising=False)
    xla = make_plan(s, out=out)
    render.render(xla)
    assert xla.kernel == "xla" and info(xla)["cached"] == xla.n_frames == 2
    monkeypatch.setenv("ZOOMREEL_KERNEL", "fused")
    fused = make_plan(s, out=out)
    assert fused.kernel == "fused" and fused.kernel_tag
    assert info(fused)["cached"] == 0  # nothing the XLA step trained counts for the kernel
    job = FrameUnits(fused).job(0)
    assert job.kernel == "fused" and job.decision is None  # the XLA step's decision is not reused either


@pytest.mark.slow
def test_the_check_passes_a_working_kernel_and_catches_a_broken_one(monkeypatch):
    """Before a GPU trains any frame with the kernel, it compares the kernel
    with the XLA step on 16 pixels (here in interpret mode): a kernel that
    computes something else, or fails to compile, does not pass."""
    import jax

    from zoomreel.engine import scheduler

    model = Model(nonlinearity="tanh", batch=16, steps=25, seed=5)
    for dtype in ("float32", "float64"):
        assert fused.compare_with_xla(model, dtype) is None, dtype
    monkeypatch.setattr(fused.OnChip, "tanh", staticmethod(lambda u: 0.9 * jax.numpy.tanh(u)))
    scheduler.shard_fn.cache_clear()
    why = fused.compare_with_xla(dataclasses.replace(model, seed=6), "float64")
    assert why is not None and "differ from the XLA step" in why, why

    def no_compiler(*args, **kwargs):
        raise RuntimeError("ptxas fatal: Value 'sm_90a' is not defined\nmore lines")

    monkeypatch.setattr(fused, "build_fused_segment", no_compiler)
    scheduler.shard_fn.cache_clear()
    assert fused.compare_with_xla(dataclasses.replace(model, seed=7), "float32") == "RuntimeError: ptxas fatal: Value 'sm_90a' is not defined"
    scheduler.shard_fn.cache_clear()


def test_a_gpu_where_the_kernel_fails_its_check_trains_with_the_xla_step(monkeypatch, capsys):
    f = formulation.get("network", "fused")
    monkeypatch.setattr(f, "verified", {})
    monkeypatch.setattr(formulation, "warned_fallbacks", set())
    monkeypatch.delenv(formulation.KERNEL_ENV, raising=False)
    calls = []

    def failing(model, dtype):
        calls.append((model, dtype))
        return "RuntimeError: ptxas fatal"

    monkeypatch.setattr(fused, "compare_with_xla", failing)
    assert formulation.choose(Model(steps=100), "gpu").impl == "xla"
    assert formulation.choose(Model(steps=200, seed=3), "gpu").impl == "xla"  # checked once per condition
    assert len(calls) == 1 and calls[0][0].steps == engine.SEGMENT_STEPS
    err = capsys.readouterr().err
    assert err.count("warning: the fused kernel failed its check on this machine (RuntimeError: ptxas fatal)") == 1
    # forced on that GPU: one clear line (and no warning that the XLA step takes over), before anything is trained
    monkeypatch.setattr(fused, "native", lambda platform, model: True)
    from zoomreel.engine import scheduler

    engine.train(Model(steps=2), np.ones(2), np.ones(2), "float32", impl="xla")
    assert scheduler.shard_fn.cache_info().currsize > 0
    with pytest.raises(UserError, match="failed its check on this GPU: RuntimeError: ptxas fatal"):
        f.segment(Model(steps=100, nonlinearity="identity"), engine.FLOAT32, 8, engine.SEGMENT_STEPS, True)
    assert capsys.readouterr().err == ""
    # what the failed check compiled is not kept for a later run to reuse unchecked
    assert scheduler.shard_fn.cache_info().currsize == 0
    # another condition is checked on its own, both arithmetics
    calls.clear()
    monkeypatch.setattr(fused, "compare_with_xla", lambda model, dtype: calls.append(dtype))
    assert formulation.choose(Model(nonlinearity="relu"), "gpu").impl == "fused"
    assert calls == ["float32", "float64"]


@pytest.mark.slow
def test_dd_under_the_fused_kernel_is_the_xla_step(monkeypatch):
    """The kernel has float32 and float64 only: forced, a dd view trains with
    the XLA step, bit for bit, and says so."""
    model = Model(steps=25)
    # dd's host form: (hi, lo) pairs
    hx, hy = (np.stack([10.0 ** np.array(e), np.zeros(4)], 1) for e in ([0.0, 1.0, 2.0, 3.0], [0.5, 1.5, 2.5, 3.5]))
    got = engine.train(model, hx, hy, "dd", impl="fused").values
    want = engine.train(model, hx, hy, "dd", impl="xla").values
    np.testing.assert_array_equal(got, want)
    monkeypatch.setenv(formulation.KERNEL_ENV, "fused")
    assert engine.describe_kernel(model, "dd") == "xla (the fused kernel has no dd)"
    assert engine.describe_kernel(model, "float32") == FUSED_HERE


@pytest.mark.slow
def test_the_cli_names_the_kernel_that_trains(write_scene, tmp_path):
    import json
    import os
    import subprocess

    p = write_scene(steps=20)

    def cli(*args, kernel=None):
        env = {k: v for k, v in os.environ.items() if k != formulation.KERNEL_ENV}
        if kernel:
            env[formulation.KERNEL_ENV] = kernel
        r = subprocess.run([sys.executable, "-m", "zoomreel", *args], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout

    default = "fused" if PLATFORM == "gpu" else "xla"  # a GPU picks the kernel once it passes its check
    assert cli("frame", p, "--precision", "float32").rstrip().endswith(f"kernel {default}")
    out = cli("frame", p, "--precision", "float32", kernel="fused")
    assert out.rstrip().endswith(f"kernel {FUSED_HERE}")
    assert json.loads(cli("info", p, "--json", "--out", tmp_path / "o", kernel="fused"))["kernel"].startswith("fused")
