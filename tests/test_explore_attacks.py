"""`zoomreel explore` as a hostile page or a careless client would meet it.

A real server in its own process, on loopback; every attack comes from this
process, over HTTP, and must get a 4xx JSON answer whose ``error`` is one
``error: ...`` line, and write nothing.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")

ROOT = Path(__file__).parent.parent

# a title that would colour the terminal, hide a link and reverse the line, and rich markup
TITLE = r"tanh \u001b[31mred\u001b[0m \u001b]8;;http://evil.example\u0007link\u001b]8;;\u0007 \u202eevil [bold]kept[/bold]"
START = f'''title = "{TITLE}"

[model]
steps = 20

[video]
size = [64, 32]
fps = 2

[[keyframe]]
time = 0.0
center = [1.5, 1.5]
span = 9.0
'''


def _start(folder: Path, *extra: str):
    f = folder / "start.toml"
    f.write_text(START)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen(
        [sys.executable, "-m", "zoomreel", "explore", str(f), "--port", "0", "--no-browser", "--size", "16",
         "--out", str(folder / "out"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=folder)
    line = p.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]+)", line)
    assert m, (line, p.stderr.read() if p.poll() is not None else "")
    return p, line, f"http://127.0.0.1:{m.group(1)}", m.group(2)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explore")
    p, line, base, token = _start(folder, "--max-pixel-steps", "1e8", "--max-draft-frames", "10")
    try:
        yield {"proc": p, "line": line, "base": base, "token": token, "folder": folder}
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _page(live) -> httpx.Client:
    """The page's own client: the cookie from the printed URL, its own Origin."""
    c = httpx.Client(base_url=live["base"], headers={"origin": live["base"]}, timeout=120)
    r = c.get(f"/?token={live['token']}")
    assert r.status_code == 200
    return c


def _refused(r, status: int, text: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    e = r.json()["error"]
    assert e.startswith("error: ") and "\n" not in e and text in e, e


def _files(folder: Path) -> set:
    return {p.name for p in folder.iterdir() if p.is_file()}


def test_the_start_line_prints_the_title_literally(live):
    line = live["line"]
    assert "\x1b" not in line and "\u202e" not in line and "\x07" not in line
    assert line.startswith("explore tanh red link evil [bold]kept[/bold] at http://127.0.0.1:")


def test_the_first_load_sets_a_strict_cookie_that_lets_the_page_in(live):
    c = httpx.Client(base_url=live["base"], timeout=60)
    r = c.get(f"/?token={live['token']}")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and live["token"] in cookie
    assert c.get("/api/start").status_code == 200  # the cookie alone


@pytest.mark.parametrize("how", ["none", "wrong", "wrong cookie", "foreign host", "rebinding host with the token"])
def test_reads_need_the_token_and_this_machines_host(live, how):
    base, token = live["base"], live["token"]
    port = base.rsplit(":", 1)[1]
    headers, params = {}, {}
    if how == "wrong":
        params = {"token": token[:-1] + ("A" if token[-1] != "A" else "B")}
    elif how == "wrong cookie":
        headers = {"cookie": f"zoomreel-explore-{port}=nope"}
    elif how == "foreign host":
        headers = {"host": "evil.example"}
    elif how == "rebinding host with the token":
        headers, params = {"host": f"evil.example:{port}"}, {"token": token}
    r = httpx.get(f"{base}/api/start", headers=headers, params=params, timeout=60)
    _refused(r, 403, "Host header" if "host" in how else "no valid token")


def test_hosts_of_this_machine_get_in(live):
    port = live["base"].rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        r = httpx.get(f"{live['base']}/api/start", headers={"host": host}, params={"token": live["token"]}, timeout=60)
        assert r.status_code == 200, (host, r.text)


@pytest.mark.parametrize("origin", [None, "http://evil.example", "null"])
def test_a_cross_site_post_writes_nothing(live, origin):
    c = _page(live)
    before = _files(live["folder"])
    body = json.dumps({"name": "evil.toml", "model": {"steps": 20}, "keyframes": [{"time": "0", "center": ["1", "1"], "span": "1"}]})
    headers = {"content-type": "text/plain"}
    if origin is not None:
        headers["origin"] = origin
    c.headers.pop("origin")
    _refused(c.post("/api/save", content=body, headers=headers), 403, "a request from another page")
    assert _files(live["folder"]) == before


def test_save_never_overwrites_without_the_pages_say_so(live):
    c = _page(live)
    folder = live["folder"]
    explored = (folder / "start.toml").read_text()
    kfs = [{"time": "0", "center": ["1.5", "1.5"], "span": "9"}, {"time": "1", "center": ["2", "2"], "span": "1"}]
    body = {"model": {"steps": 20}, "keyframes": kfs}
    _refused(c.post("/api/save", json=dict(body, name="start.toml")), 409, "it is the file being explored: start.toml")
    assert (folder / "start.toml").read_text() == explored
    assert c.post("/api/save", json=dict(body, name="mine.toml")).status_code == 200
    first = (folder / "mine.toml").read_text()
    kfs[1]["span"] = "0.5"
    _refused(c.post("/api/save", json=dict(body, name="mine.toml")), 409, "a file of that name exists: mine.toml")
    assert (folder / "mine.toml").read_text() == first
    assert c.post("/api/save", json=dict(body, name="mine.toml", overwrite=True)).status_code == 200
    assert '"0.5"' in (folder / "mine.toml").read_text()


def test_an_oversize_body_is_refused_unread(live):
    c = _page(live)
    big = b'{"name": "' + b"x" * 3_000_000 + b'"}'
    _refused(c.post("/api/save", content=big, headers={"content-type": "application/json"}), 413, "over 1000000 bytes")

    def chunks():  # no length announced: refused once a megabyte has come
        for _ in range(50):
            yield b" " * 100_000

    _refused(c.post("/api/view", content=chunks(), headers={"content-type": "application/json"}), 413, "over 1000000 bytes")


def test_requests_over_the_caps_are_refused_before_training(live):
    c = _page(live)
    st = c.get("/api/start").json()
    assert st["max_pixel_steps"] == 100_000_000
    body = {"model": dict(st["model"], steps=100000), "center": ["1.5", "1.5"], "span": "9", "size": [1024, 1024], "client": "x"}
    _refused(c.post("/api/view", json=body), 400, "more than the explorer's limit of 1e+08 (view)")
    _refused(c.post("/api/locate", json=body), 400, "more than the explorer's limit of 1e+08 (locate)")
    kfs = [{"time": "0", "center": ["1.5", "1.5"], "span": "9"}, {"time": "3600", "center": ["2", "2"], "span": "1"}]
    _refused(c.post("/api/draft", json={"name": "d.toml", "model": st["model"], "keyframes": kfs}), 400,
             "more than the explorer's limit of 10 (draft)")
    assert c.get("/api/progress").json().get("drafts", {"busy": False})["busy"] is False


MALFORMED = [
    ("/api/save", {"name": "a\u0000.toml"}, 400, "control character or a lone surrogate (save)"),
    ("/api/save", b'{"name": "\\ud800.toml", "keyframes": []}', 400, "control character or a lone surrogate (save)"),
    ("/api/save", {"keyframes": [{"time": "0", "center": ["1", "1"], "span": "1"},
                                 {"time": "9" * 5000, "center": ["1", "1"], "span": "0.5"}]}, 400, "(x.toml:keyframe[1].time)"),
    ("/api/draft", {"keyframes": [{"time": "0", "center": ["1", "1"], "span": "1"},
                                  {"time": "1e-2000000", "center": ["1", "1"], "span": "0.5"}]}, 400, "is too small a magnitude"),
    ("/api/draft", {"name": "/etc/x.toml"}, 400, "bad file name '/etc/x.toml' (draft:name)"),  # no path from a request
    ("/api/save", {"name": "../start.toml"}, 400, "bad file name '../start.toml' (save:name)"),
    ("/api/view", b"[" * 100000, 400, "not a JSON object (view)"),
    ("/api/view", b"{'span': 9}", 400, "not a JSON object (view)"),
    ("/api/view", {"span": "1e999999999", "center": ["1", "1"]}, 400, "(view"),
    ("/api/navigate", {"span": "9", "center": ["1.5", "1.5"], "rect": [0, 0, "1e99999", 1]}, 400, "(navigate:rect)"),
    ("/api/locate", {"span": "9", "center": ["1.5", "1.5"], "size": [16, 16], "model": {"steps": "9" * 5000}}, 400, "(locate:model.steps)"),
    ("/api/nowhere", {}, 404, "404"),
]


@pytest.mark.parametrize("url,body,status,text", MALFORMED)
def test_malformed_requests_get_one_error_line(live, url, body, status, text):
    c = _page(live)
    before = _files(live["folder"])
    if isinstance(body, dict):
        body = json.dumps({"name": "x.toml", "model": {"steps": 20}, "keyframes": [], **body}).encode()
    _refused(c.post(url, content=body, headers={"content-type": "application/json"}), status, text)
    assert _files(live["folder"]) == before


def test_ctrl_c_cancels_the_training_and_stops_with_one_line(tmp_path):
    p, _, base, token = _start(tmp_path)
    try:
        c = httpx.Client(base_url=base, headers={"origin": base}, params={"token": token}, timeout=120)
        body = {"model": {"steps": 5000}, "center": ["2.5", "2.1298"], "span": "0.5", "size": [64, 64], "client": "t"}
        first, got = threading.Event(), []

        def view():
            with c.stream("POST", "/api/view", json=body) as r:
                for line in r.iter_lines():
                    got.append(json.loads(line))
                    first.set()
            first.set()

        t = threading.Thread(target=view)
        t.start()
        assert first.wait(120)  # the view is under way (a long one: 5000 steps)
        p.send_signal(signal.SIGINT)
        code = p.wait(timeout=60)
        t.join(60)
        err = p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    said = err.strip().splitlines()
    # one line at the end (a RuntimeWarning of precision.py about tiles past float32 may come before it)
    assert code == 0 and said[-1] == "stopped" and not any(w in err for w in ("Traceback", "ASGI", "Error", "FATAL")), err
    assert got and got[-1].get("superseded") is True and not got[-1].get("final")
