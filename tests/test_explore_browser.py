"""`zoomreel explore` used as a new user would: a real server, Debian's chromium.

The page must show a picture before the view's own level is trained, keep
one on screen while zooming, end on the frame a pyramid render shows, zoom by
dragging, take two keyframes and save them as a file `zoomreel info` accepts. ZOOMREEL_SCREENSHOTS=DIR keeps
the page's screenshots there (docs/explore.md shows them).
"""

import json
import os
import re
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = os.environ.get("ZOOMREEL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).parent.parent

START = """
[model]
steps = 20

[video]
size = [64, 64]
fps = 2

[[keyframe]]
time = 0.0
center = [1.5, 1.5]
span = 9.0
"""


@pytest.fixture
def server(tmp_path):
    f = tmp_path / "start.toml"
    f.write_text(START)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen(
        [sys.executable, "-m", "zoomreel", "explore", str(f), "--port", "0", "--no-browser", "--size", "64", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    try:
        line = p.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]+", line)
        assert m, (line, p.stderr.read() if p.poll() is not None else "")
        yield m.group(0), tmp_path, p
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _colours(png: bytes) -> int:
    import io

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return len(np.unique(img.reshape(-1, 3), axis=0))


def _shot(page, name):
    where = os.environ.get("ZOOMREEL_SCREENSHOTS")
    if where:
        page.screenshot(path=str(Path(where) / name))


def _wait_ready(page, size="64x64"):
    page.wait_for_function(f"() => {{ const p = document.getElementById('plane'); return p.dataset.state === 'ready' && p.dataset.shown === '{size}'; }}", timeout=120_000)


# samples, every animation frame, whether a picture is on screen: a decoded image over the plane
WATCH = """() => {
  window.zoomreelSeen = [];
  const step = () => {
    const img = document.getElementById('view'), plane = document.getElementById('plane');
    const a = img.getBoundingClientRect(), b = plane.getBoundingClientRect();
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left), h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    window.zoomreelSeen.push(!!img.getAttribute('src') && img.complete && img.naturalWidth > 0 && w > b.width / 4 && h > b.height / 4);
    if (window.zoomreelWatching) requestAnimationFrame(step);
  };
  window.zoomreelWatching = true;
  requestAnimationFrame(step);
}"""


def _page_png(page) -> np.ndarray:
    import base64
    import io

    src = page.evaluate("document.getElementById('view').src")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def _render_frame(tmp: Path, center, span: str) -> tuple[np.ndarray, int]:
    """The frame a pyramid render of this view shows, and the tiles it had to train."""
    from zoomreel import render, scene, work
    from zoomreel.plan import make_plan

    f = tmp / "same.toml"
    f.write_text(START.replace("fps = 2", 'fps = 2\nmode = "pyramid"').replace("center = [1.5, 1.5]", f'center = ["{center[0]}", "{center[1]}"]')
                 .replace("span = 9.0", f'span = "{span}"'))
    plan = make_plan(scene.load(f), out=tmp / "out")
    units, trained = work.train_tiles(plan, None, False, work.Reporter())
    return render.pyramid_frame(plan, 0, work.TileReader(units))[0], trained


def test_explore_in_chromium(server):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium (or set ZOOMREEL_CHROMIUM)"
    url, tmp, proc = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(  # a fresh profile folder
            str(tmp / "profile"), executable_path=CHROMIUM, args=ARGS, viewport={"width": 1080, "height": 760})
        try:
            page = browser.new_page()
            page.goto(url)
            _wait_ready(page)
            plane = page.locator("#plane")
            assert _colours(plane.screenshot()) > 20  # a trained picture, not a blank box
            # a picture came before the view's own level was trained, coarse levels first
            events = page.evaluate("window.zoomreelEvents")
            assert events[0]["final"] is False and events[0]["trained"] < events[0]["tiles"], events
            assert events[-1]["final"] is True and sum(e["final"] for e in events) == 1
            # the final picture is the frame a pyramid render of the view shows, from the same tiles
            rgb, trained = _render_frame(tmp, ["1.5", "1.5"], "9")
            assert trained == 0 and np.array_equal(_page_png(page), rgb)
            assert page.locator("#ro-span").inner_text() == "9"
            # the deepest arithmetic any of the view's tiles needed, and its resolved share
            assert re.fullmatch(r"(float32|float64|dd), resolved \d+\.\d %", page.locator("#ro-dtype").inner_text())
            assert "input-layer lr: 1.00e-3 .. 1.00e+6" in page.locator("#ro-x").inner_text()
            assert page.locator("#kf-list tbody tr").count() == 1  # the file's keyframe
            _shot(page, "explore-start.png")

            # the file's keyframe goes; the start view at 0 s
            page.locator(".kf-del").click()
            page.fill("#kf-time", "0")
            page.click("#kf-add")

            # zoom into a box over the top-right quarter (in pixels of the 560-px plane)
            box = plane.bounding_box()
            first = plane.screenshot()
            page.mouse.move(box["x"] + 280, box["y"] + 140)
            page.mouse.down()
            page.mouse.move(box["x"] + 420, box["y"] + 200, steps=5)
            page.mouse.move(box["x"] + 560 - 1, box["y"] + 280 - 1, steps=5)
            page.mouse.up()
            page.wait_for_function("() => document.getElementById('ro-span').textContent !== '9'")
            _wait_ready(page)
            span = Decimal(page.locator("#ro-span").inner_text())
            cx = Decimal(page.locator("#ro-cx").inner_text())
            cy = Decimal(page.locator("#ro-cy").inner_text())
            assert abs(span - Decimal("4.5")) < Decimal("0.05")  # half the width (279/560 of it)
            assert cx > Decimal("1.5") and cy > Decimal("1.5")  # up and to the right
            zoomed = plane.screenshot()
            assert zoomed != first and _colours(zoomed) > 20

            # a wheel zoom: the picture is scaled at once and stays on screen until the new view's is done
            page.evaluate(WATCH)
            page.evaluate("window.zoomreelEvents.length = 0")
            page.mouse.move(box["x"] + 200, box["y"] + 300)
            page.mouse.wheel(0, -100)
            page.wait_for_function(f"() => document.getElementById('ro-span').textContent !== '{span}'")
            _wait_ready(page)
            page.evaluate("window.zoomreelWatching = false")
            seen = page.evaluate("window.zoomreelSeen")
            assert len(seen) > 1 and all(seen), seen.count(False)
            wheel = page.evaluate("window.zoomreelEvents")
            assert wheel[-1]["final"] is True and abs(Decimal(page.locator("#ro-span").inner_text()) * Decimal("1.5") / span - 1) < Decimal("1e-6")
            page.click("#back")
            page.wait_for_function(f"() => document.getElementById('ro-span').textContent === '{span}'")
            _wait_ready(page)

            # back to the first view: drawn from the cached tiles, not trained again; forward again
            page.click("#back")
            page.wait_for_function("() => document.getElementById('ro-span').textContent === '9'")
            _wait_ready(page)
            assert page.locator("#ro-dtype").inner_text().endswith("(cached)")
            assert plane.screenshot() == first
            page.click("#forward")
            page.wait_for_function(f"() => document.getElementById('ro-span').textContent === '{span}'")
            _wait_ready(page)
            assert page.locator("#ro-dtype").inner_text().endswith("(cached)")

            page.fill("#kf-time", "2")
            page.click("#kf-add")
            assert page.locator("#kf-list tbody tr").count() == 2

            # an edit the parser refuses shows its error, then the fix saves
            page.locator(".kf-t").nth(1).fill("0")
            page.locator(".kf-t").nth(1).dispatch_event("change")
            page.fill("#kf-name", "zoom.toml")
            page.click("#kf-save")
            page.wait_for_function("() => document.getElementById('kf-status').textContent !== ''")
            assert "is not after the previous keyframe" in page.locator("#kf-status").inner_text()
            page.locator(".kf-t").nth(1).fill("2")
            page.locator(".kf-t").nth(1).dispatch_event("change")
            page.click("#kf-save")
            page.wait_for_function("() => document.getElementById('kf-status').textContent.startsWith('saved')")

            # the draft of these keyframes plays in the page
            page.click("#kf-draft")
            page.wait_for_function("() => document.getElementById('kf-status').textContent.startsWith('draft:')", timeout=120_000)
            page.wait_for_function("() => document.getElementById('draft').readyState >= 2", timeout=30_000)
            assert abs(page.evaluate("document.getElementById('draft').duration") - 2.5) < 0.3  # 5 frames at 2 fps
            _shot(page, "explore-keyframes.png")
        finally:
            browser.close()

    saved = tmp / "zoom.toml"
    r = subprocess.run([sys.executable, "-m", "zoomreel", "info", str(saved), "--json", "--out", str(tmp / "out")],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["frames"] == 5 and info["size"] == [64, 64] and info["steps"] == 20
    assert info["span_first"] == 9.0 and abs(info["span_last"] - float(span)) < 1e-12

    # Ctrl-C stops the server cleanly
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)  # a hang fails here
    err = proc.stderr.read()
    assert code == 0 and "Traceback" not in err, err
