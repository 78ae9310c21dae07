"""The explorer's server in process: its answers, its errors, its queue."""

import asyncio
import base64
import io
import json
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoomreel import path, render, report, scene, work
from zoomreel.plan import make_plan
from zoomreel.explore import drafts, guard, images, levels, server
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
    return server.Explorer(s, server.view_size(s.video.size, 16), tmp_path, tmp_path / "out", token="tok", hosts={"testserver"})


HEADERS = {"authorization": "token tok", "origin": "http://testserver"}  # what the page's own requests carry


@pytest.fixture
def client(explorer):
    from starlette.testclient import TestClient

    with TestClient(server.make_app(explorer), headers=HEADERS) as c:
        yield c


def lines(r) -> list[dict]:
    """A view's answer: its JSON lines (one JSON when it was over at once)."""
    return [json.loads(x) for x in r.text.splitlines() if x.strip()]


def final(r) -> dict:
    return lines(r)[-1]


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
    for data in (b"span=9", b"[1, 2]", b"", b"[" * 100000, b'{"span": 1' + b"9" * 5000 + b"}", b"\xff\xfe"):
        r = client.post("/api/view", content=data, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"].startswith("error: the request body is not a JSON object (view)")
    r = client.post("/api/view", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"].startswith("error: the request body is text/plain, not JSON (view)")


def test_view_is_the_frame_a_pyramid_render_shows_and_shares_its_tiles(client, explorer, tmp_path):
    for changes, _ in BAD[:3]:  # bad requests first: nothing else breaks
        assert client.post("/api/view", json=_body(client, **changes)).status_code == 400
    body = _body(client, center=["2.5", "2.1298"], span="1.0")
    r = client.post("/api/view", json=body)
    assert r.status_code == 200, r.text
    got = final(r)
    assert got["final"] is True and got["cached"] is False
    assert got["axes"]["x"].startswith("input-layer lr: ") and got["axes"]["y"].startswith("output-layer lr: ")
    # a pyramid-mode render of the same view under the same --out trains nothing,
    # and its frame is the picture the page showed
    f = tmp_path / "same.toml"
    f.write_text(START.replace("size = [64, 32]", 'size = [16, 16]\nmode = "pyramid"')
                 .replace("center = [1.5, 1.5]", 'center = ["2.5", "2.1298"]').replace("span = 9.0", 'span = "1.0"'))
    plan = make_plan(scene.load(f), out=explorer.out_dir)
    assert report.info(plan)["cached"] == report.info(plan)["tiles"] > 0
    units, trained = work.train_tiles(plan, None, False, work.Reporter())
    assert trained == 0
    rgb, frac, _ = render.pyramid_frame(plan, 0, work.TileReader(units))
    png = base64.b64decode(got["image"].split(",", 1)[1])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), rgb)
    assert got["converged"] == float(np.mean(frac)) and 0 < got["converged"] < 1
    metas = [units.lookup(t)[2] for t in plan.tiles()]
    assert got["dtype"] in {m["dtype"] for m in metas}
    assert got["resolved"] == min(m["resolved"] for m in metas if m["dtype"] == got["dtype"])
    again = final(client.post("/api/view", json=body))
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
    ("zoom.toml", ("time", 'x", steps = 1, #'), "not a number"),  # quoted: cannot inject TOML
    ("zoom.toml", ("time", 'x"\n[model]\nsteps = 1\n#'), "the request holds a control character or a lone surrogate (save)"),
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
    """The first request, still training, is cancelled at its next check."""
    import httpx

    started = threading.Event()
    trained = []

    def slow_steps(st, model, view, mode, task, emit):
        emit({"image": None, "final": False})
        started.set()
        yield
        while view.span == 9:  # the first view trains until it is cancelled: no timing involved
            task.check()
            started.wait(0.01)
            yield
        trained.append(view.span)
        return {"span": str(view.span), "final": True}

    monkeypatch.setattr(server, "view_steps", slow_steps)
    app = server.make_app(explorer)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=HEADERS) as c:
            st = (await c.get("/api/start")).json()
            body = {"model": st["model"], "center": ["1.5", "1.5"], "size": [16, 16], "client": "tab"}
            first = asyncio.create_task(c.post("/api/view", json=dict(body, span="9")))
            await asyncio.to_thread(started.wait, 10)
            second = await c.post("/api/view", json=dict(body, span="3"))
            return await first, second

    try:
        a, b = asyncio.run(go())
    finally:
        for w in app.state.workers.values():
            w.close()
    assert a.status_code == 200 and final(a)["superseded"] is True and final(a)["status"] == 409
    assert b.status_code == 200 and final(b) == {"span": "3", "final": True}
    assert trained == [Decimal("3")]  # the stale view never finished


def explorer_decision():
    from zoomreel.precision import Decision

    return Decision("float64", 1.0, "test")


def test_worker_holds_one_task_a_lane_and_a_bounded_number_of_lanes():
    w = Worker("test", maxsize=2)
    gate = threading.Event()
    try:
        running = w.submit("a", lambda t: (gate.wait(10), "first")[1], total=1, label="a")
        while w.progress()["busy"] is False:  # until the thread holds it
            gate.wait(0.01)
        queued = w.submit("b", lambda t: "b1")
        with pytest.raises(Superseded):  # a newer task of its lane drops it at once
            newer = w.submit("b", lambda t: "b2")
            queued.future.result(0)
        w.submit("c", lambda t: "c")
        with pytest.raises(Busy):  # lanes b and c wait: no room for a third
            w.submit("d", lambda t: "d")
        gate.set()
        assert running.future.result(10) == "first" and newer.future.result(10) == "b2"
        assert w.progress()["busy"] is False
    finally:
        w.close()
    assert not w.thread.is_alive()


def test_lanes_take_turns_a_step_each_and_the_pages_views_go_first():
    """A long request in one lane never holds up another lane's view for more than a step."""
    w = Worker("test")
    gate, order = threading.Event(), []

    def steps(name, n):
        def fn(task):
            for k in range(n):
                gate.wait(10)
                order.append(f"{name}{k}")
                yield
            return name
        return fn

    try:
        big = w.submit("other", steps("o", 4), priority=1)  # another lane's long request, behind the page
        while w.progress()["busy"] is False:
            gate.wait(0.01)
        tab = w.submit("view:tab", steps("v", 2))
        tab2 = w.submit("view:tab2", steps("w", 2))
        gate.set()
        assert (tab.future.result(10), tab2.future.result(10), big.future.result(10)) == ("v", "w", "o")
    finally:
        w.close()
    assert order == ["o0", "v0", "w0", "v1", "w1", "o1", "o2", "o3"]


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


def test_a_cancelled_view_or_draft_stops_in_the_probe_of_its_first_unit(explorer):
    """The cancel reaches the precision probe of the view's tiles and of a draft's frames."""
    from zoomreel.explore.worker import Task

    st = server.make_app(explorer).state.zoomreel
    checks = []

    class Cancelled(Task):
        def check(self):
            checks.append(1)
            if len(checks) > 1:  # past the view's own first check: inside the first tile's probe
                raise Superseded("test")

    view = path.View((Decimal("2.5"), Decimal("2.1298")), Decimal("0.5"), (16, 16))
    task = Cancelled("t", None, 0, "t")
    steps = server.view_steps(st, explorer.start.model, view, "auto", task, lambda item: None)
    with pytest.raises(Superseded):
        for _ in steps:
            checks.clear()
    assert not list(st.cache.frames.iterdir()) and not list(st.cache.decisions.iterdir())

    text = START + '\n[[keyframe]]\ntime = 1.0\ncenter = ["2.5", "2.1298"]\nspan = "1"\n'
    f = explorer.save_dir / "d.toml"
    f.write_text(text)
    plan = make_plan(scene.load(f), True, explorer.out_dir / "drafts")
    checks.clear()
    task = Cancelled("d", None, 0, "d")
    with pytest.raises(Superseded):
        render.render(plan, False, drafts.DraftReporter(task), cancel=task.check)
    assert len(checks) == 2  # stopped at the second check, before any frame was finished
    assert not any(plan.cache.frames.iterdir()) if plan.cache.frames.exists() else True


def test_the_view_shows_a_coarse_picture_before_its_own_and_ends_on_the_frame(client, explorer):
    body = _body(client, center=["2.5", "2.1298"], span="1.0", size=[64, 32])
    got = lines(client.post("/api/view", json=body))
    pictures = [g for g in got if g.get("image")]
    assert pictures[0]["preview"] is True and pictures[0]["final"] is False  # a picture before any tile
    assert [g["final"] for g in got].count(True) == 1 and got[-1]["final"] is True
    trained = [g["trained"] for g in got]
    assert trained == sorted(trained) and trained[-1] == got[-1]["tiles"]
    shown = [g["level"] for g in pictures if g["level"] is not None]
    assert shown == sorted(shown) and shown[-1] == got[-1]["levels"][-1]  # coarse to fine
    # a view inside this one starts from the cached tiles at once
    inner = lines(client.post("/api/view", json=dict(body, span="0.5")))
    assert inner[0]["image"] and inner[0]["level"] is not None and inner[0]["preview"] is False
    # so does one zoomed out of it, from its finer tiles, before anything of its own is trained
    outer = lines(client.post("/api/view", json=dict(body, span="2.5")))
    assert levels.chain(path.View((Decimal("2.5"), Decimal("2.1298")), Decimal("2.5"), (64, 32)))[-1] == 3  # body's view is level 4
    assert outer[0]["image"] and outer[0]["trained"] == 0 and outer[0]["preview"] is False


def test_a_partial_picture_paints_each_level_where_its_tiles_cover():
    from zoomreel import color

    view = path.View((Decimal("2.5"), Decimal("2.1298")), Decimal("1.0"), (256, 128))
    chain = levels.chain(view)
    assert chain[0] == levels.top_level(view) < chain[-1]  # the coarsest level (1 to 4 tiles) .. the view's own
    assert chain[0] <= levels.top_level(view) and len(levels.ordered_tiles(view, levels.top_level(view))) <= 4
    raw = lambda t: np.full((64, 64), -1.0 - t.level)  # noqa: E731  (converged, one shade a level)
    coarse = {t: raw(t) for t in levels.ordered_tiles(view, chain[0])}
    rgb, whole, painted = levels.paint(view, {chain[0]: coarse}, color.DEFAULT_PALETTE)
    assert whole == chain[0] and painted == 1.0 and rgb.shape == (128, 256, 3)
    fine = levels.ordered_tiles(view, chain[-1])
    part, whole, painted = levels.paint(view, {chain[0]: coarse, chain[-1]: {fine[0]: raw(fine[0])}}, color.DEFAULT_PALETTE)
    assert whole == chain[0] and 0 < painted <= 1.0
    blank, whole, painted = levels.paint(view, {}, color.DEFAULT_PALETTE)
    assert whole is None and painted == 0.0 and (blank == levels.BLANK).all()


def test_the_first_view_of_any_file_fits_the_caps(tmp_path):
    """A very tall video, or a model with many steps, still opens on a view the server accepts."""
    from starlette.testclient import TestClient

    f = tmp_path / "tall.toml"
    f.write_text(START.replace("size = [64, 32]", "size = [16, 8192]").replace("steps = 20", "steps = 4000").replace("span = 9.0", "span = 0.01"))
    s = scene.load(f)
    limits = server.Limits(max_pixel_steps=200_000_000)
    ex = server.Explorer(s, server.start_size(s, 256, limits), tmp_path, tmp_path / "out", token="tok",
                         hosts={"testserver"}, limits=limits)
    with TestClient(server.make_app(ex), headers=HEADERS) as c:
        st = c.get("/api/start").json()
    assert max(st["size"]) <= server.MAX_SIDE and min(st["size"]) >= 16
    doc = {"model": st["model"], "center": st["view"]["center"], "span": st["view"]["span"], "size": st["size"]}
    model, view, _ = server.parse_view(guard.parse_body(json.dumps(doc).encode(), "view"), "view")  # /api/view's checks
    server.check_trainable(model, view, "view")
    server.check_work(limits, server.view_work(model, view), "view", "the first view")
    with pytest.raises(server.UserError, match="more than the explorer's limit"):
        server.start_size(s, 256, server.Limits(max_pixel_steps=1000))


def test_a_complete_level_paints_the_views_own_picture(explorer):
    """The partial pictures are drawn the right way up and in the final colours:
    once a view's level is all there, they are its picture."""
    view = path.View((Decimal("2"), Decimal("2")), Decimal("4"), (16, 16))  # level 0's lattice, one tile
    cache = images.view_cache(explorer.out_dir)
    img = images.image_for(cache, explorer.start.model, view, "auto", "view")
    units = work.TileUnits(explorer.start.model, cache, "auto", "view")
    tile = levels.ordered_tiles(view, 0)
    assert len(tile) == 1 and levels.chain(view) == [0]
    rgb, whole, painted = levels.paint(view, {0: {tile[0]: units.read(tile[0]).raw}}, explorer.start.video.palette)
    assert whole == 0 and painted == 1.0 and np.array_equal(rgb, img.rgb)


def test_the_preview_samples_are_the_coarsest_tiles_own_pixels(explorer):
    view = path.View((Decimal("2.5"), Decimal("2.1298")), Decimal("0.6"), (64, 32))  # 40x20 of level 4's pixels
    top = levels.chain(view)[0]
    rough = levels.preview(explorer.start.model, view, top)
    assert set(rough) == set(levels.ordered_tiles(view, top))
    cache = images.view_cache(explorer.out_dir)
    units = work.TileUnits(explorer.start.model, cache, "auto", "view")
    work.train_missing(units, list(rough), False, work.Reporter())
    A = levels.preview_arithmetic(explorer.start.model, view)
    for t, stand_in in rough.items():
        raw, meta = units.read(t).raw, units.read(t).record
        assert meta["dtype"] == A.name  # the same arithmetic: the same bits
        known = np.isfinite(stand_in)
        assert known.any() and np.array_equal(stand_in[known], raw[known])  # stride 1 here: every pixel under the view
