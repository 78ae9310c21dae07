"""The explorer's server in process: its answers, its errors, its queue."""

import asyncio
import base64
import io
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoomreel import path, render, scene
from zoomreel.explore import images, server
from zoomreel.explore.worker import Busy, Superseded, Worker

pytestmark = pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient.")  # it works; httpx2 is not needed

START = """
[model]
steps = 20

[video]
size = [64, 32]
fps = 2

[[keyframe]]
time = 0.0
center = [1.5, 1.5]
span = 9.0
"""


@pytest.fixture
def explorer(tmp_path):
    f = tmp_path / "start.toml"
    f.write_text(START)
    s = scene.load(f)
    return server.Explorer(s, server.view_size(s.video.size, 16), tmp_path, tmp_path / "out")


@pytest.fixture
def client(explorer):
    from starlette.testclient import TestClient

    with TestClient(server.make_app(explorer)) as c:
        yield c


def _body(client, **changes):
    st = client.get("/api/start").json()
    body = {"model": st["model"], "center": st["view"]["center"], "span": st["view"]["span"], "size": st["size"], "client": "t"}
    body.update(changes)
    return body


def test_start_is_the_files_model_and_first_view(client):
    st = client.get("/api/start").json()
    assert st["model"]["steps"] == 20 and st["model"]["nonlinearity"] == "tanh"
    assert st["view"] == {"center": ["1.5", "1.5"], "span": "9"}
    assert st["size"] == [16, 16]  # 16 wide at the video's 2:1 aspect, but never under 16 high
    assert st["keyframes"] == [{"time": "0.0", "center": ["1.5", "1.5"], "span": "9.0"}]
    assert st["name"] == "start-explored.toml"


BAD = [
    ({"span": "abc"}, "not a number: 'abc' (view:span)"),
    ({"center": ["1.5", "x"]}, "not a number: 'x' (view:center)"),
    ({"span": "0"}, "span must be positive, got 0 (view:span)"),
    ({"span": "-2"}, "span must be positive, got -2 (view:span)"),
    ({"size": [2048, 16]}, "size 2048x16 is too large for the explorer (view:size)"),
    ({"size": [99999, 16]}, "is above the maximum 8192 (view:size)"),
    ({"size": ["16", 16]}, "expected a whole number, got the string '16' (view:size)"),
    ({"span": "1e-40", "center": ["2", "2"]}, "is too deep: neighbouring pixels are equal in dd (view)"),
    ({"center": ["400", "1.5"]}, "reaches hyperparameters that float64 cannot hold (view:center)"),
    ({"model": {"step": 20}}, "unknown key 'step' (view:model.step): did you mean 'steps'?"),
    ({"model": {"nonlinearity": "sigmoid"}}, "unknown value 'sigmoid' (view:model.nonlinearity)"),
    ({"precision": "float16"}, "unknown value 'float16' (view:precision)"),
]


@pytest.mark.parametrize("changes,text", BAD)
def test_bad_view_requests_get_the_cli_error_line(client, changes, text):
    r = client.post("/api/view", json=_body(client, **changes))
    assert r.status_code == 400
    e = r.json()
    assert text in e["error"] and e["error"] == f"error: {e['what']} ({e['where']}): {e['fix']}"


def test_a_body_that_is_not_json_is_a_400(client):
    for data in (b"span=9", b"[1, 2]", b""):
        r = client.post("/api/view", content=data)
        assert r.status_code == 400 and r.json()["error"].startswith("error: the request body is not a JSON object (view)")


def test_view_is_the_frame_a_pyramid_render_shows_and_shares_its_tiles(client, explorer, tmp_path):
    for changes, _ in BAD[:3]:  # bad requests first: nothing else breaks
        assert client.post("/api/view", json=_body(client, **changes)).status_code == 400
    body = _body(client, center=["2.5", "2.1298"], span="1.0")
    r = client.post("/api/view", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["cached"] is False
    assert got["axes"]["x"].startswith("input-layer lr: ") and got["axes"]["y"].startswith("output-layer lr: ")
    # a pyramid-mode render of the same view under the same --out trains nothing,
    # and its frame is the picture the page showed
    f = tmp_path / "same.toml"
    f.write_text(START.replace("size = [64, 32]", 'size = [16, 16]\nmode = "pyramid"')
                 .replace("center = [1.5, 1.5]", 'center = ["2.5", "2.1298"]').replace("span = 9.0", 'span = "1.0"'))
    plan = render.make_plan(scene.load(f), out=explorer.out_dir)
    assert render.info(plan)["cached"] == render.info(plan)["tiles"] > 0
    units, trained = render.train_tiles(plan, None, False, render.Reporter())
    assert trained == 0
    rgb, frac, _ = render.pyramid_frame(plan, 0, render.TileReader(units))
    png = base64.b64decode(got["image"].split(",", 1)[1])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), rgb)
    assert got["converged"] == float(np.mean(frac)) and 0 < got["converged"] < 1
    metas = [units.lookup(t)[2] for t in plan.tiles()]
    assert got["dtype"] in {m["dtype"] for m in metas}
    assert got["resolved"] == min(m["resolved"] for m in metas if m["dtype"] == got["dtype"])
    again = client.post("/api/view", json=body).json()
    assert again["cached"] is True and again["image"] == got["image"]


def test_navigate_keeps_every_digit(client):
    c = ["2.12982527591884718", "1.5"]
    r = client.post("/api/navigate", json=_body(client, center=c, span="1e-10", size=[64, 64], rect=[16, 16, 48, 48]))
    assert r.json() == {"center": c, "span": "5e-11"}
    # a box in the top-right quarter: the centre moves right and up by a quarter span
    r = client.post("/api/navigate", json=_body(client, center=["1", "1"], span="8", size=[64, 64], rect=[32, 0, 64, 32]))
    assert r.json() == {"center": ["3", "3"], "span": "4"}
    for rect, text in (([0, 0, 0, 10], "the rectangle is empty"), ([0, "a", 1, 1], "not a number: 'a'"), ([1, 2], "expected [x0, y0, x1, y1]"),
                       ([0, 0, 1e-300, 1e-300], "the rectangle is out of range")):
        r = client.post("/api/navigate", json=_body(client, rect=rect))
        assert r.status_code == 400 and text in r.json()["error"]


def _keyframes():
    return [{"time": "0", "center": ["1.5", "1.5"], "span": "9"},
            {"time": "1.5", "center": ["2.5", "2.12982527591884718"], "span": "1e-3"}]


def test_save_writes_a_file_the_cli_accepts(client, explorer):
    st = client.get("/api/start").json()
    r = client.post("/api/save", json={"name": "zoom.toml", "model": st["model"], "keyframes": _keyframes()})
    assert r.status_code == 200, r.text
    s = scene.load(explorer.save_dir / "zoom.toml")
    assert s.model == explorer.start.model and s.video == explorer.start.video
    assert s.keyframes[1].center[1] == Decimal("2.12982527591884718") and s.keyframes[1].time == Decimal("1.5")


@pytest.mark.parametrize("name,edit,text", [
    ("../zoom.toml", None, "bad file name '../zoom.toml' (save:name)"),
    ("zoom.txt", None, "bad file name 'zoom.txt' (save:name)"),
    ("zoom.toml", ("time", "soon"), "not a number: 'soon' (zoom.toml:keyframe[1].time)"),
    ("zoom.toml", ("time", "0"), "is not after the previous keyframe's 0 (zoom.toml:keyframe[1].time)"),
    ("zoom.toml", ("span", "-1"), "span must be positive, got -1 (zoom.toml:keyframe[1].span)"),
    ("zoom.toml", ("time", 'x"\n[model]\nsteps = 1\n#'), "not a number"),  # quoted: cannot inject TOML
])
def test_save_shows_the_parsers_errors_and_writes_nothing(client, explorer, name, edit, text):
    st = client.get("/api/start").json()
    kfs = _keyframes()
    if edit:
        kfs[1][edit[0]] = edit[1]
    r = client.post("/api/save", json={"name": name, "model": st["model"], "keyframes": kfs})
    assert r.status_code == 400 and text in r.json()["error"]
    assert not (explorer.save_dir / "zoom.toml").exists() and not (explorer.save_dir.parent / "zoom.toml").exists()


def test_locate_zooms_a_hundredfold_onto_the_boundary(client):
    r = client.post("/api/locate", json=_body(client))
    assert r.status_code == 200, r.text
    got = r.json()
    span = Decimal(got["span"])
    assert span == Decimal("0.09")
    cx, cy = (Decimal(c) for c in got["center"])
    assert abs(cx - Decimal("1.5")) < 4.5 and abs(cy - Decimal("1.5")) < 4.5  # inside the start view
    assert 0.05 < got["converged"] < 0.95  # both phases in the last level's grid


def test_draft_renders_the_keyframes_and_serves_the_mp4(client):
    st = client.get("/api/start").json()
    kfs = _keyframes()[:1] + [{"time": "1", "center": ["2.5", "2.1298"], "span": "1"}]
    r = client.post("/api/draft", json={"name": "d.toml", "model": st["model"], "keyframes": kfs, "client": "t"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["frames"] == 3 and got["rendered"] == 3
    v = client.get(got["video"])
    assert v.status_code == 200 and v.headers["content-type"] == "video/mp4" and v.content[4:8] == b"ftyp"


def test_a_newer_view_supersedes_the_one_in_training(explorer, monkeypatch):
    """The first request, still training, is cancelled at its next progress report."""
    import httpx

    started, release = threading.Event(), threading.Event()
    trained = []

    def slow_image(cache, model, view, mode, where, on_progress=None, palette=None):
        started.set()
        for _ in range(200):
            release.wait(0.05)
            on_progress(1)  # raises Superseded once a newer view is queued
        trained.append(view.span)
        rgb = np.zeros((16, 16, 3), dtype=np.uint8)
        return images.Image(rgb, 0.5, explorer_decision(), False)

    monkeypatch.setattr(server.images, "image_for", slow_image)
    app = server.make_app(explorer)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            st = (await c.get("/api/start")).json()
            body = {"model": st["model"], "center": ["1.5", "1.5"], "size": [16, 16], "client": "tab"}
            first = asyncio.create_task(c.post("/api/view", json=dict(body, span="9")))
            await asyncio.to_thread(started.wait, 10)
            second = asyncio.create_task(c.post("/api/view", json=dict(body, span="3")))
            await asyncio.sleep(0.2)
            release.set()
            return await first, await second

    try:
        a, b = asyncio.run(go())
    finally:
        for w in app.state.workers.values():
            w.close()
    assert a.status_code == 409 and a.json()["superseded"] is True
    assert b.status_code == 200 and b.json()["span"] == "3"
    assert trained == [Decimal("3")]  # the stale view never finished


def explorer_decision():
    from zoomreel.precision import Decision

    return Decision("float64", 1.0, "test")


def test_worker_queue_is_bounded_and_drops_superseded_work():
    w = Worker("test", maxsize=2)
    gate = threading.Event()
    try:
        running = w.submit("a", lambda p: (gate.wait(10), "first")[1], total=1, label="a")
        while w.progress()["busy"] is False:  # until the thread holds it
            gate.wait(0.01)
        queued = w.submit("b", lambda p: "b1")
        newer = w.submit("b", lambda p: "b2")  # supersedes b1 while it waits
        with pytest.raises(Busy):
            w.submit("c", lambda p: "c")
        gate.set()
        assert running.result(10) == "first" and newer.result(10) == "b2"
        with pytest.raises(Superseded):
            queued.result(10)
        assert w.progress()["busy"] is False
    finally:
        w.close()
    assert not w.thread.is_alive()


def test_explore_without_the_extra_is_one_error_line(tmp_path):
    code = "import sys; sys.modules['uvicorn'] = None; from zoomreel.cli import main; sys.argv = ['zoomreel', 'explore']; main()"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={"PYTHONPATH": str(Path(__file__).parent.parent), "PATH": "/usr/bin:/bin",
                            "ZOOMREEL_JAX_CACHE": "off"})
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: the explorer needs Starlette and uvicorn, which are not installed "
                                "(zoomreel explore): install them with pip install 'zoomreel[explore]'")


def test_a_superseded_view_stops_inside_its_precision_probe(explorer):
    calls = []

    def superseded(n):
        calls.append(n)
        raise Superseded("view")

    cache = images.view_cache(explorer.out_dir)
    view = path.View((Decimal("2.5"), Decimal("2.1298")), Decimal("0.5"), (16, 16))
    with pytest.raises(Superseded):
        images.image_for(cache, explorer.start.model, view, "auto", "view", superseded)
    assert calls == [0]  # the probe's first segment, before any of the frame's own pixels
    assert not list(cache.frames.iterdir()) and not list(cache.decisions.iterdir())
