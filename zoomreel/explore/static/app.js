// zoomreel explore: the page. Views are exact decimal strings; the server does
// every computation on them (navigate, train, save), the page only shows.
"use strict";

const $ = (id) => document.getElementById(id);
const DISPLAY = 560; // the plane's width on screen, CSS pixels
const S = {
  start: null, model: null, size: [256, 256], precision: "auto",
  view: null, history: [], pos: -1, gen: 0, pending: 0, nav: Promise.resolve(),
  client: Math.random().toString(36).slice(2), keyframes: [],
  disp: null, // where the picture on screen lies, [x0, y0, x1, y1] in pixels of the view asked for
  abort: null, events: [],
};
window.zoomreelEvents = S.events; // what the page showed, in order (the browser test reads it)

function post(body, signal) {
  return { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal };
}

async function api(url, body) {
  const r = await fetch(url, body === undefined ? {} : post(body));
  let data;
  try { data = await r.json(); } catch (e) { data = { error: `error: the server answered ${r.status} (${url}): try again` }; }
  data.status = r.status;
  return data;
}

function setError(text) { $("error").textContent = text || ""; }
function setState(state, text) { $("plane").dataset.state = state; S.stateText = text; $("status").textContent = text; }

function viewBody(size) {
  return { model: S.model, center: S.view.center, span: S.view.span, size, precision: S.precision, client: S.client };
}

// -- showing a view: coarse first, then refined

function go(view, remember = true) {
  S.view = { center: view.center.slice(), span: view.span };
  if (remember) {
    S.history = S.history.slice(0, S.pos + 1);
    S.history.push(S.view);
    S.pos = S.history.length - 1;
  }
  $("back").disabled = S.pos <= 0;
  $("forward").disabled = S.pos >= S.history.length - 1;
  $("ro-cx").textContent = S.view.center[0];
  $("ro-cy").textContent = S.view.center[1];
  $("ro-span").textContent = S.view.span;
  return train();
}

async function train() {
  const my = ++S.gen;
  if (S.abort) S.abort.abort(); // the server cancels a view whose page stopped listening
  const ctl = new AbortController();
  S.abort = ctl;
  setError("");
  setState("training", "training");
  S.pending++;
  try {
    const r = await fetch("/api/view", post(viewBody(S.size), ctl.signal));
    if (!(r.headers.get("content-type") || "").includes("ndjson")) { // one JSON: an error, or a view already done
      let data;
      try { data = await r.json(); } catch (e) { data = { error: `error: the server answered ${r.status} (view): try again` }; }
      if (my === S.gen) onViewLine(data, my);
      return;
    }
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (my !== S.gen) { ctl.abort(); return; }
        if (line.trim()) await onViewLine(JSON.parse(line), my);
      }
    }
  } catch (e) {
    if (my === S.gen && e.name !== "AbortError") { setError(`error: ${e.message} (view): try again`); setState("error", "error"); }
  } finally { S.pending--; }
}

async function onViewLine(r, my) {
  if (r.superseded) return;
  if (r.error) { setError(r.error); setState("error", "error"); return; }
  if (r.image) await showImage(r, my);
  if (my !== S.gen) return;
  S.lastLine = r;
  if (r.final) {
    showReadout(r);
    $("plane").dataset.shown = `${r.size[0]}x${r.size[1]}`;
    setState("ready", r.cached ? "ready (cached)" : "ready");
  } else {
    setState("training", levelText(r));
  }
}

function levelText(r) {
  const k = r.levels.indexOf(r.level), n = r.levels.length;
  const lv = r.level === null ? (r.preview ? "a preview" : "no level yet")
    : k >= 0 ? `level ${k + 1} of ${n}` : r.level < r.levels[0] ? "a coarser level (cached)" : "a cached level";
  const eta = r.eta === null || r.eta === undefined ? "" : `, about ${Math.ceil(r.eta)} s left`;
  return `showing ${lv}; ${r.trained}/${r.tiles} tiles trained${eta}`;
}

// the picture stays until the next one is decoded, so the view never blanks
async function showImage(r, my) {
  const img = $("view");
  const next = new Image();
  next.src = r.image;
  try { await next.decode(); } catch (e) { return; }
  if (my !== S.gen) return;
  img.src = r.image;
  S.disp = null;
  placePicture();
  const plane = $("plane");
  plane.dataset.level = r.level === null ? "" : String(r.level);
  plane.dataset.final = r.final ? "1" : "0";
  S.events.push({ type: "picture", at: Math.round(performance.now()), final: !!r.final, level: r.level, preview: !!r.preview, trained: r.trained, tiles: r.tiles, span: S.view.span });
}

// where the shown picture lies: moved and scaled at once as the view changes, before any training
function placePicture() {
  const img = $("view"), k = scale(), [W, H] = S.size;
  if (!S.disp) { img.style.transform = ""; return; }
  const [x0, y0, x1, y1] = S.disp;
  img.style.transformOrigin = "0 0";
  img.style.transform = `translate(${x0 * k}px, ${y0 * k}px) scale(${(x1 - x0) / W}, ${(y1 - y0) / H})`;
}

// the view asked for moves to rect (pixels of the current one): the picture follows it
function followRect(rect) {
  const [W, H] = S.size, [x0, y0, x1, y1] = rect;
  const f = Math.max((x1 - x0) / W, (y1 - y0) / H);
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2, left = cx - W * f / 2, top = cy - H * f / 2;
  const d = S.disp || [0, 0, W, H];
  S.disp = [(d[0] - left) / f, (d[1] - top) / f, (d[2] - left) / f, (d[3] - top) / f];
  placePicture();
}

function showReadout(r) {
  $("ro-dtype").textContent = `${r.dtype}, resolved ${(100 * r.resolved).toFixed(1)} %` + (r.cached ? " (cached)" : "") + (r.warning ? ` - ${r.warning}` : "");
  $("ro-converged").textContent = `${(100 * r.converged).toFixed(1)} % of the pixels`;
  $("ro-x").textContent = r.axes.x;
  $("ro-y").textContent = r.axes.y;
  $("ro-depth").textContent = r.axes.depth;
}

async function pollProgress() {
  if (S.pending > 0 || S.drafting) {
    try {
      const p = await api("/api/progress");
      const w = S.drafting ? p.drafts : p.views;
      if (w && w.busy && w.total > 0) {
        $("progress").value = Math.min(1, w.done / w.total);
        const eta = w.eta === null ? "" : `, about ${Math.ceil(w.eta)} s left`;
        $("status").textContent = S.drafting ? `${w.label}: ${Math.round(100 * w.done / w.total)} %${eta}`
          : (S.lastLine && !S.lastLine.final ? levelText({ ...S.lastLine, eta: w.eta }) : S.stateText);
      }
    } catch (e) { /* the next poll tries again */ }
  } else {
    $("progress").value = S.view ? 1 : 0;
    $("status").textContent = S.stateText;
  }
  setTimeout(pollProgress, 250);
}

// -- navigation: every new view is computed by the server, in decimals

// each gesture moves the picture at once; the server computes the exact views one after another
function navigate(rect) {
  ++S.gen; // pictures of the view being left no longer show
  followRect(rect);
  S.nav = S.nav.then(async () => {
    const r = await api("/api/navigate", { ...viewBody(S.size), rect });
    if (r.error) { setError(r.error); S.disp = null; placePicture(); return; }
    go(r);
  });
  return S.nav;
}

function scale() { return DISPLAY / S.size[0]; }

function setupMouse() {
  const plane = $("plane"), box = $("box"), img = $("view");
  let drag = null;
  const at = (e) => { const b = plane.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; };
  const mode = () => document.querySelector("input[name=mode]:checked").value;
  plane.addEventListener("mousedown", (e) => {
    e.preventDefault();
    drag = { p0: at(e), pan: mode() === "pan" || e.shiftKey || e.button === 1 };
  });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    const [x, y] = at(e), [x0, y0] = drag.p0;
    drag.p1 = [x, y];
    if (drag.pan) {
      const d = S.disp || [0, 0, S.size[0], S.size[1]], k = scale();
      img.style.transformOrigin = "0 0";
      img.style.transform = `translate(${d[0] * k + x - x0}px, ${d[1] * k + y - y0}px) scale(${(d[2] - d[0]) / S.size[0]}, ${(d[3] - d[1]) / S.size[1]})`;
    } else {
      Object.assign(box.style, { display: "block", left: `${Math.min(x, x0)}px`, top: `${Math.min(y, y0)}px`,
        width: `${Math.abs(x - x0)}px`, height: `${Math.abs(y - y0)}px` });
    }
  });
  window.addEventListener("mouseup", () => {
    if (!drag) return;
    const d = drag; drag = null;
    box.style.display = "none";
    if (!d.p1) return;
    const k = scale(), [W, H] = S.size;
    const [x0, y0] = d.p0, [x1, y1] = d.p1;
    if (Math.abs(x1 - x0) < 4 && Math.abs(y1 - y0) < 4) { placePicture(); return; }
    if (d.pan) {
      const dx = (x1 - x0) / k, dy = (y1 - y0) / k;
      navigate([-dx, -dy, W - dx, H - dy]);
    } else {
      navigate([Math.min(x0, x1) / k, Math.min(y0, y1) / k, Math.max(x0, x1) / k, Math.max(y0, y1) / k]);
    }
  });
  plane.addEventListener("wheel", (e) => {
    e.preventDefault();
    const k = scale(), [W, H] = S.size, [x, y] = at(e);
    const f = e.deltaY > 0 ? 1.5 : 1 / 1.5, px = x / k, py = y / k;
    navigate([px - px * f, py - py * f, px + (W - px) * f, py + (H - py) * f]);
  }, { passive: false });
  document.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", () => { plane.dataset.mode = mode(); }));
}

function setupButtons() {
  $("back").onclick = () => { if (S.pos > 0) { S.pos--; go(S.history[S.pos], false); } };
  $("forward").onclick = () => { if (S.pos < S.history.length - 1) { S.pos++; go(S.history[S.pos], false); } };
  $("zoomout").onclick = () => {
    const [W, H] = S.size;
    navigate([-1.5 * W, -1.5 * H, 2.5 * W, 2.5 * H]);
  };
  $("locate").onclick = async () => {
    const my = ++S.gen;
    setError("");
    setState("training", "locating a boundary point");
    S.pending++;
    const r = await api("/api/locate", viewBody(S.size)).finally(() => S.pending--);
    if (my !== S.gen || r.superseded) return;
    if (r.error) { setError(r.error); setState("error", "error"); return; }
    go(r);
  };
}

// -- keyframes

function numeric(t) { const v = Number(t); return Number.isFinite(v) ? v : Infinity; }

function renderKeyframes() {
  const body = $("kf-list").querySelector("tbody");
  body.innerHTML = "";
  S.keyframes.forEach((k, i) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td><input class="kf-t"></td><td class="num"></td><td class="num"></td>
      <td><button class="kf-go">show</button> <button class="kf-del">delete</button></td>`;
    const t = tr.querySelector(".kf-t");
    t.value = k.time;
    t.onchange = () => { k.time = t.value.trim(); };
    tr.children[1].textContent = `${k.center[0]}, ${k.center[1]}`;
    tr.children[2].textContent = k.span;
    tr.querySelector(".kf-go").onclick = () => go(k);
    tr.querySelector(".kf-del").onclick = () => { S.keyframes.splice(i, 1); renderKeyframes(); };
    body.appendChild(tr);
  });
}

function addKeyframe() {
  const time = $("kf-time").value.trim();
  S.keyframes.push({ time, center: S.view.center.slice(), span: S.view.span });
  S.keyframes.sort((a, b) => numeric(a.time) - numeric(b.time));
  renderKeyframes();
  const t = numeric(time);
  if (Number.isFinite(t)) $("kf-time").value = String(t + 2);
}

function keyframeBody() {
  return { name: $("kf-name").value.trim(), model: S.model, keyframes: S.keyframes, client: S.client };
}

function status(text, ok) {
  const s = $("kf-status");
  s.textContent = text;
  s.className = ok ? "ok" : "error";
}

async function save() {
  const r = await api("/api/save", { ...keyframeBody(), overwrite: $("kf-overwrite").checked });
  if (r.error) return status(r.error, false);
  status(`saved ${r.keyframes} keyframes to ${r.path}`, true);
}

async function draft() {
  status("rendering the draft", true);
  S.drafting = true;
  const r = await api("/api/draft", keyframeBody()).finally(() => { S.drafting = false; $("status").textContent = S.stateText; });
  if (r.superseded) return;
  if (r.error) return status(r.error, false);
  status(`draft: ${r.frames} frames (${r.rendered} ${r.unit} trained) in ${r.seconds.toFixed(1)} s`, true);
  const v = $("draft");
  v.hidden = false;
  v.src = r.video;
  v.play().catch(() => {});
}

// -- start

function legendBar(id, stops) { $(id).style.background = `linear-gradient(to right, ${stops.join(", ")})`; }

async function main() {
  const st = await api("/api/start");
  S.start = st;
  S.model = st.model;
  S.size = st.size;
  S.precision = st.precision;
  S.keyframes = st.file ? st.keyframes : [];
  $("title").textContent = st.title + (st.file ? ` - ${st.file.split("/").pop()}` : " - the default model");
  $("kf-name").value = st.name;
  const plane = $("plane");
  plane.style.width = `${DISPLAY}px`;
  plane.style.height = `${Math.round(DISPLAY * st.size[1] / st.size[0])}px`;
  plane.dataset.mode = "zoom";
  legendBar("lg-div", st.legend.diverged);
  legendBar("lg-conv", st.legend.converged);
  setupMouse();
  setupButtons();
  $("kf-add").onclick = addKeyframe;
  $("kf-save").onclick = save;
  $("kf-draft").onclick = draft;
  renderKeyframes();
  pollProgress();
  go(st.view);
}

main();
