"""Never a wrong video: every cache record is verified before it is trusted,
leftovers are swept, a read-only cache still encodes, Ctrl-C always stops."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from zoomreel.plan import make_plan
from zoomreel.report import info
from zoomreel import atomic, color, render, scene
from zoomreel.cli import app
from zoomreel.cache import Cache, decision_key, seal
from zoomreel.errors import UserError
from zoomreel.precision import Decision
from zoomreel.work import FrameUnits, Reporter

CLI = [sys.executable, "-m", "zoomreel"]
SCENE = """
title = "integrity"
[model]
steps = 20
[video]
size = [16, 16]
fps = 2
[[keyframe]]
time = 0.0
center = [1.5, 1.5]
span = 9.0
[[keyframe]]
time = 1.0
center = ["2.5", "2.1298"]
span = 1.0
"""


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    """A fully rendered 3-frame scene, copied fresh into each test."""
    root = tmp_path_factory.mktemp("master")
    (root / "s.toml").write_text(SCENE)
    res = render.render(make_plan(scene.load(root / "s.toml"), out=root / "o"))
    assert res.rendered == 3
    return root


@pytest.fixture
def work(master, tmp_path):
    shutil.copytree(master, tmp_path / "w")
    return tmp_path / "w"


def plan_of(work, **video):
    s = scene.load(work / "s.toml")
    if video:
        s = s.with_video(**video)
    return make_plan(s, out=work / "o")


def keys(plan):
    """(decision key, frame key) of each frame, from the verified cache."""
    out = []
    for k in range(plan.n_frames):
        st = FrameUnits(plan).lookup(k)
        out.append((decision_key(plan.scene.model, plan.view(k).key_fields(), plan.precision), st.key))
    return out


def jload(p):
    return json.loads(p.read_text())


def jsave(p, obj):
    p.write_text(json.dumps(obj))


def _summary_digit(m):
    m["summary"]["conv" if m["summary"]["conv"] else "div"][64] += 0.001  # one digit of one quantile
    return m


def _resealed(mutate):
    """A tampered record whose checksum is made valid again: only the schema can catch it."""

    def f(m, key):
        body = {k: v for k, v in m.items() if k not in ("key", "check")}
        return seal(key, mutate(body))

    return f


FRAME_TAMPERING = {
    "one digit of the colour summary": lambda m, key: _summary_digit(m),
    "dtype changed": lambda m, key: dict(m, dtype="float64" if m["dtype"] == "float32" else "float32"),
    "a list": lambda m, key: [1, 2, 3],
    "an empty object": lambda m, key: {},
    "the array's crc": lambda m, key: dict(m, crc=m["crc"] ^ 1),
    "a record without checksum": lambda m, key: {k: v for k, v in m.items() if k not in ("key", "check")},
    "resealed with an unknown dtype": _resealed(lambda b: dict(b, dtype="float16", decision=dict(b["decision"], dtype="float16"))),
    "resealed with a short summary": _resealed(lambda b: dict(b, summary={"conv": [0.0], "div": None})),
    "resealed with a negative time cost": _resealed(lambda b: dict(b, seconds=-1.0)),
    "resealed with quantiles out of order": _resealed(lambda b: dict(b, summary={"conv": list(range(color.Q))[::-1], "div": None})),
}


@pytest.mark.parametrize("how", sorted(FRAME_TAMPERING))
def test_tampered_frame_record_is_retrained_and_counted(work, how):
    plan = plan_of(work)
    ks = keys(plan)
    frames = plan.cache.frames
    rec = frames / f"{ks[1][1]}.json"
    good = jload(rec)
    good_raw = np.load(frames / f"{ks[1][1]}.npy")
    jsave(rec, FRAME_TAMPERING[how](jload(rec), ks[1][1]))

    d = info(plan_of(work))
    assert (d["cached"], d["damaged"]) == (2, 1)  # info counts only what render reuses
    res = render.render(plan_of(work))
    assert (res.rendered, res.reused, res.damaged) == (1, 2, 1)
    again = jload(rec)
    assert again["summary"] == good["summary"] and again["dtype"] == good["dtype"]
    assert np.array_equal(np.load(frames / f"{ks[1][1]}.npy"), good_raw)
    assert render.render(plan_of(work)).damaged == 0


def test_swapped_frames_are_not_taken_for_each_other(work):
    """A valid record and array copied under another frame's name: the key inside the record tells."""
    plan = plan_of(work)
    ks = keys(plan)
    f = plan.cache.frames
    for ext in ("json", "npy"):
        shutil.copy(f / f"{ks[2][1]}.{ext}", f / f"{ks[0][1]}.{ext}")
    assert info(plan_of(work))["cached"] == 2
    res = render.render(plan_of(work))
    assert (res.rendered, res.damaged) == (1, 1)


def test_array_without_record_or_record_without_array(work):
    plan = plan_of(work)
    ks = keys(plan)
    f = plan.cache.frames
    (f / f"{ks[0][1]}.json").unlink()  # a writer killed between array and record: not damage
    (f / f"{ks[1][1]}.npy").unlink()  # a record whose array is gone: damage
    d = info(plan_of(work))
    assert (d["cached"], d["damaged"]) == (1, 1)
    res = render.render(plan_of(work))
    assert (res.rendered, res.reused, res.damaged) == (2, 1, 1)


DECISION_TAMPERING = {
    "a list": lambda d, key: ["float32"],
    "an empty object": lambda d, key: {},
    "not JSON": None,
    "resolved changed": lambda d, key: dict(d, resolved=0.5),
    "a record without checksum": lambda d, key: {k: v for k, v in d.items() if k not in ("key", "check")},
    "resealed with an unknown dtype": _resealed(lambda b: dict(b, dtype="bfloat16")),
    "resealed with resolved above 1": _resealed(lambda b: dict(b, resolved=1.5)),
    "resealed with an extra field": _resealed(lambda b: dict(b, colour="red")),
    "resealed with a field missing": _resealed(lambda b: {k: v for k, v in b.items() if k != "reason"}),
}


@pytest.mark.parametrize("how", sorted(DECISION_TAMPERING))
def test_tampered_decision_is_probed_again_never_a_traceback(work, how):
    plan = plan_of(work)
    ks = keys(plan)
    p = plan.cache.decisions / f"{ks[0][0]}.json"
    if DECISION_TAMPERING[how] is None:
        p.write_text("{not json")
    else:
        jsave(p, DECISION_TAMPERING[how](jload(p), ks[0][0]))
    d = info(plan_of(work))
    res = render.render(plan_of(work))
    assert d["cached"] == res.reused == 2 and d["damaged"] == res.damaged == 1
    assert Decision.from_json(Cache(plan.cache.root).get_decision(ks[0][0])).dtype in ("float32", "float64")
    assert render.render(plan_of(work)).damaged == 0


def test_damage_is_one_line_in_the_render_summary(work):
    plan = plan_of(work)
    ks = keys(plan)
    for _, fk in ks[:2]:
        p = plan.cache.frames / f"{fk}.json"
        jsave(p, _summary_digit(jload(p)))
    i = CliRunner().invoke(app, ["info", str(work / "s.toml"), "--out", str(work / "o")])
    assert i.exit_code == 0 and "cached 1/3" in i.stdout and "(2 records failed verification; render redoes them)" in i.stdout
    r = subprocess.run([*CLI, "render", work / "s.toml", "--out", work / "o", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "rendered 2, reused 1, 2 cache records failed verification and were redone" in r.stdout


def test_a_folder_in_place_of_a_cache_entry_is_named(work):
    plan = plan_of(work)
    ks = keys(plan)
    entry = plan.cache.frames / f"{ks[0][1]}.json"
    entry.unlink()
    (entry / "sub").mkdir(parents=True)
    with pytest.raises(UserError) as e:
        render.render(plan_of(work))
    assert e.value.where == str(entry) and "folder" in e.value.what


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_leftover_temporary_video_and_records_are_swept(work):
    plan = plan_of(work, palette="coolwarm")
    host = socket.gethostname().replace(".", "_") or "host"
    pid = _dead_pid()
    video_tmp = plan.video_path.parent / f".{plan.video_path.name}.{host}.{pid}.tmp.mp4"
    cache_tmp = plan.cache.frames / f".abc.json.{host}.{pid}.tmp"
    live = plan.video_path.parent / f".other.mp4.{host}.{os.getpid()}.tmp.mp4"
    for p in (video_tmp, cache_tmp, live):
        p.write_bytes(b"half a file")
    res = render.render(plan)
    assert res.rendered == 0 and not video_tmp.exists() and not cache_tmp.exists()
    assert live.exists()  # a running writer's file is left alone


def test_fully_cached_read_only_cache_still_encodes(work, monkeypatch):
    """A palette change needs no write to the cache; the video folder is writable."""
    plan = plan_of(work, palette="coolwarm")
    cache_root = str(plan.cache.root)
    real_access = os.access

    def access(p, mode, **kw):
        return False if str(p).startswith(cache_root) and mode & os.W_OK else real_access(p, mode, **kw)

    real_write = atomic.write_bytes

    def write_bytes(p, data, on_error=None):
        if str(p).startswith(cache_root):
            raise AssertionError(f"wrote into the read-only cache: {p}")
        return real_write(p, data, on_error)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(atomic, "write_bytes", write_bytes)
    before = plan.video_path.stat().st_mtime_ns
    res = render.render(plan)
    assert (res.rendered, res.reused) == (0, 3) and plan.video_path.stat().st_mtime_ns != before

    # with one frame missing, the same cache fails before any training
    (plan.cache.frames / f"{keys(plan)[0][1]}.json").unlink()
    steps = []

    class Rep(Reporter):
        def pixel_steps(self, n):
            steps.append(n)

    with pytest.raises(UserError) as e:
        render.render(plan_of(work, palette="coolwarm"), rep=Rep())
    assert e.value.what == "cannot write here" and steps == []


# -- Ctrl-C


@pytest.mark.parametrize("when", ["startup", "devices", "unit 1", "encoded 1"])
@pytest.mark.slow
def test_ctrl_c_at_any_moment_is_one_line_and_130(tmp_path, when):
    """Ctrl-C while JAX starts, once it has, while training, while encoding."""
    (tmp_path / "c.toml").write_text(SCENE.replace("fps = 2", "fps = 30"))  # 31 frames
    env = {**os.environ, "ZOOMREEL_SIGNAL_AT": f"INT {when}"}
    r = subprocess.run([*CLI, "render", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"), "--quiet"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 130 and r.stderr == "interrupted: finished frames are cached; run the same command again to resume\n", r.stderr
    frames = tmp_path / "o" / "c" / "cache" / "frames"
    assert len(list(frames.glob("*.json"))) == {"startup": 0, "devices": 0, "unit 1": 1, "encoded 1": 31}[when]


def test_an_interrupt_swallowed_by_a_finaliser_still_stops_the_run():
    """JAX's garbage-collection callback can catch a KeyboardInterrupt (Python
    prints "Exception ignored" and carries on); the next progress check raises it."""
    code = textwrap.dedent(
        """
        import os, signal, time
        from zoomreel import interrupt
        interrupt.install()
        interrupt.arm()
        class Finaliser:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # the handler runs here, inside __del__
        f = Finaliser()
        del f
        print("carried on", flush=True)
        try:
            interrupt.raise_pending()
        except KeyboardInterrupt:
            print("stopped", flush=True)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout == "carried on\nstopped\n" and r.stderr == "", r.stderr


def test_the_cache_checks_every_field_a_decision_has():
    """A decision the precision stage writes must pass the cache's schema, or
    every cached decision would be redone on every run."""
    from zoomreel import cache, precision

    for d in (precision.Decision("dd", 0.97, "r", {"float64": 0.5, "dd": 0.97}, 256, None),
              precision.Decision("float32", 1.0, "r", {"float32": 1.0}, 256, None)):
        assert set(d.to_json()) == set(cache.DECISION_FIELDS) and cache.valid_decision(d.to_json())
        assert precision.Decision.from_json(d.to_json()) == d
    # perturbation adds its agreement and the share redone; records without them keep their form
    d = precision.Decision("perturb", 0.99, "r", {"float64": 0.8, "perturb": 0.99}, 256, None, 0.02)
    assert set(d.to_json()) == set(cache.DECISION_FIELDS) | set(cache.DECISION_OPTIONAL)
    assert cache.valid_decision(d.to_json()) and precision.Decision.from_json(d.to_json()) == d
