// onnx-search explorer: plain JavaScript, no library, nothing fetched from outside this server.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#843c39", "#7b4173", "#3182bd"];
const VIEWS = ["search", "maps", "judge", "disagree", "robust"];
const GALLERY_PAGE = 24;
const state = {
  models: [], runs: [], enabled: new Set(), last: null, maps: {}, selection: new Set(), queries: 0,
  view: "search", k: 8, kLimits: { min: 1, max: 100 }, q: null, mark: null, restoring: false, summary: null,
  seq: { search: 0, maps: 0, judge: 0, jlist: 0, summary: 0, disagree: 0, robust: 0, gallery: 0 },
  gallery: { label: "", page: 0, pages: 1 },
  judge: { list: [], pool: null, extra: null, focus: 0, maxGrade: 1, namesAllowed: true },
};
const $ = (sel) => document.querySelector(sel);

function withToken(url) {
  if (!TOKEN) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "tabindex") e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function altText(label, name) { return `${label || "no label"}, ${name || "catalogue image"}`; }

function thumb(id, cls = "thumb", alt = "") {
  return el("img", { class: cls, src: withToken(`api/thumb/${id}`), alt: alt || `catalogue image ${id}`,
    loading: "lazy", "data-id": id });
}

// Enter and Space activate an element that is not a native button (hit cards, thumbnails)
function activatable(node, action, label) {
  node.setAttribute("tabindex", "0");
  node.setAttribute("role", "button");
  if (label) node.setAttribute("aria-label", label);
  node.addEventListener("click", action);
  node.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); action(ev); }
  });
  return node;
}

async function api(url, options = {}) {
  const resp = await fetch(withToken(url), options);
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    const err = new Error((body && body.error) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    err.retryAfter = parseFloat(resp.headers.get("Retry-After") || "1") || 1;
    throw err;
  }
  return body;
}

function showError(msg) {
  const box = $("#error");
  box.textContent = msg;
  box.classList.toggle("hidden", !msg);
}

function fmt(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d); }
function fmtIv(iv, d = 2) {
  if (!iv || iv.mean === null || iv.mean === undefined) return "–";
  return `${fmt(iv.mean, d)} [${fmt(iv.low, d)}, ${fmt(iv.high, d)}]`;
}
function modelsParam() { return encodeURIComponent([...state.enabled].join(",")); }
function modelInfo(name) { return state.models.find((m) => m.name === name) || { name }; }
function isRandom(m) { return m.random_weights === true || /^random/i.test(String(m.weights || "")); }

// ---------- URL state: view, query id, models, k (a link reproduces the view; Back works) ----------
function urlFor() {
  const p = new URLSearchParams();
  if (TOKEN) p.set("token", TOKEN);
  p.set("view", state.view);
  if (state.q) p.set("q", state.q);
  if (state.enabled.size !== state.models.length) p.set("models", [...state.enabled].join(","));
  p.set("k", String(state.k));
  return `?${p}`;
}

function pushURL() {
  if (state.restoring || !document.body.dataset.ready) return;
  const url = urlFor();
  if (url !== location.search) history.pushState(null, "", url);
}

function applyURL() {
  const p = new URLSearchParams(location.search);
  state.restoring = true;
  try {
    const k = parseInt(p.get("k") || "", 10);
    if (k >= state.kLimits.min && k <= state.kLimits.max) { state.k = k; $("#k").value = String(k); checkK(); }
    const wanted = p.get("models");
    const names = state.models.map((m) => m.name);
    state.enabled = new Set(wanted ? wanted.split(",").filter((m) => names.includes(m)) : names);
    for (const box of document.querySelectorAll("#toggles input")) box.checked = state.enabled.has(box.value);
    const q = /^[0-9]{1,19}$/.test(p.get("q") || "") ? p.get("q") : null;
    const view = VIEWS.includes(p.get("view")) ? p.get("view") : "search";
    state.q = q;
    if (q && view !== "judge" && !(state.last && state.last.kind === "id" && state.last.id === q)) queryId(q, null, false);
    if (!q && state.last && state.last.kind === "id") clearResults();
    state.maps = {};
    showTab(view, false);
  } finally {
    state.restoring = false;
  }
}

// ---------- k: validated where it is typed ----------
function checkK() {
  const box = $("#k"), msg = $("#kmsg");
  const raw = box.value.trim();
  const k = Number(raw);
  const { min, max } = state.kLimits;
  const ok = /^[0-9]+$/.test(raw) && k >= min && k <= max;
  box.setAttribute("aria-invalid", ok ? "false" : "true");
  msg.textContent = ok ? "" : `k must be a whole number from ${min} to ${max} (got “${raw || "nothing"}”); nothing was searched`;
  msg.classList.toggle("hidden", ok);
  return ok ? k : null;
}

function onK() {
  const k = checkK();
  if (k === null) return;
  state.k = k;
  pushURL();
  refreshView();
}

// ---------- search ----------
function params() {
  return `k=${state.k}&models=${modelsParam()}&exclude_self=${$("#exclude").checked ? 1 : 0}`;
}

function clearResults() {
  const cols = $("#columns");
  cols.replaceChildren();
  delete cols.dataset.query;
  $("#status").textContent = "";
  $("#judgethis").classList.add("hidden");
  $("#gallery").classList.remove("hidden");
}

async function runQuery() {
  const q = state.last;
  if (!q) return;
  if (!state.enabled.size) { showError("switch at least one model on"); return; }
  $("#status").textContent = "searching…";
  const seq = ++state.seq.search;  // only the answer to the latest question is shown
  try {
    const out = q.kind === "upload"
      ? await api(`api/query?${params()}`, { method: "POST", body: q.blob,
        headers: { "Content-Type": q.blob.type || "application/octet-stream" } })
      : await api(`api/query/${q.id}?${params()}`);
    if (seq !== state.seq.search) return;
    showError("");
    renderResults(out);
  } catch (e) {
    if (seq !== state.seq.search) return;
    showError(e.message);
    clearResults();  // the old results must not stay under the new file's name
    $("#status").textContent = "no results: the query was refused";
  }
}

function queryUpload(file) {
  if (!file) return;
  state.last = { kind: "upload", blob: file };
  state.q = null;
  state.mark = null;
  $("#qimg").src = URL.createObjectURL(file);
  $("#qimg").alt = `uploaded query: ${file.name}`;
  $("#qname").textContent = `${file.name} (uploaded, ${Math.round(file.size / 1024)} kB)`;
  $("#query").classList.remove("hidden");
  $("#judgethis").classList.add("hidden");
  if (state.view !== "search") showTab("search", false);
  pushURL();
  runQuery();
}

function queryId(id, name, push = true) {
  state.last = { kind: "id", id };
  state.q = id;
  state.mark = id;
  $("#qimg").src = withToken(`api/thumb/${id}`);
  $("#qimg").alt = `query: ${name || "catalogue image " + id}`;
  $("#qname").textContent = name || `catalogue image ${id}`;
  $("#query").classList.remove("hidden");
  Object.values(state.maps).forEach(drawMap);
  if (push) {
    showTab("search", false);
    pushURL();
  }
  runQuery();
}

function modelHeader(model, count) {
  const m = modelInfo(model);
  const head = el("div", { class: "mhead" });
  const h = el("h3", {}, el("span", { text: model }), el("small", { text: `${count} hits` }));
  head.append(h);
  if (isRandom(m)) head.append(el("span", { class: "random", text: "RANDOM WEIGHTS", title: String(m.weights || "") }));
  const facts = [];
  if (m.weights && !isRandom(m)) facts.push(`weights ${m.weights}`);
  if (m.dim) facts.push(`${m.dim}-d`);
  if (m.images !== undefined) facts.push(`${m.images} images`);
  if (facts.length) head.append(el("div", { text: facts.join(" · ") }));
  const quality = m.quality;
  if (quality && quality.mean !== undefined) {
    head.append(el("div", { class: "q", "data-quality": "1",
      text: `${quality.label || quality.metric || "quality"} ${fmtIv(quality, 3)}${quality.run ? " (run " + quality.run + ")" : ""}` }));
  }
  const judged = state.summary && state.summary.queries && state.summary.models[model];
  if (judged) {
    head.append(el("div", { class: "q", "data-judged": "1",
      text: `judged@${state.summary.k} ${fmtIv(judged.judged_at_k)} · P@${state.summary.k} ${fmtIv(judged.p_at_k)} (${state.summary.queries} judged queries)` }));
  }
  return head;
}

function renderResults(out) {
  state.queries += 1;
  const cols = $("#columns");
  cols.replaceChildren();
  cols.dataset.query = out.query.id || out.query.name;
  cols.dataset.count = String(state.queries);
  $("#gallery").classList.add("hidden");
  if (out.query.id && state.last && state.last.kind === "id") {
    $("#qname").textContent = `${out.query.name} (catalogue id ${out.query.id})`;
    $("#qimg").alt = `query: ${out.query.name}`;
    $("#judgethis").classList.remove("hidden");
  }
  if (out.query.id) state.mark = out.query.id;
  else if (out.query.excluded && out.query.excluded.length) state.mark = out.query.excluded[0];  // a catalogued upload
  if (out.query.excluded && out.query.excluded.length && state.last && state.last.kind === "upload") {
    $("#qname").textContent += ` · the same file as catalogue image ${out.query.excluded.join(", ")} (left out)`;
  }
  cols.dataset.excluded = (out.query.excluded || []).join(",");
  for (const [model, hits] of Object.entries(out.models)) {
    const col = el("section", { class: "col", "data-model": model, "aria-label": `${model} results` },
      modelHeader(model, hits.length));
    if (!hits.length) col.append(el("div", { class: "empty", text: "no hits" }));
    for (const h of hits) {
      const also = el("div");
      for (const o of h.also) also.append(el("span", { class: "also", text: `also ${o}`, title: `${o} found it too` }));
      const meta = el("div", { class: "meta" },
        el("div", { class: "lab", text: `#${h.rank} ${h.label || "(no label)"}` }),
        el("div", { class: "num", text: `cos ${fmt(h.cosine, 4)}` }),
        el("div", { class: "num", text: `pct ${h.percentile == null ? "–" : fmt(100 * h.percentile, 1) + "%"} · z ${fmt(h.z, 2)}` }),
        also);
      const card = el("div", { class: "hit", "data-id": h.id, "data-pct": String(h.percentile), "data-z": String(h.z),
        title: `${h.name}: Enter or click searches from it` },
        thumb(h.id, "thumb", altText(h.label, h.name)), meta);
      activatable(card, () => queryId(h.id, h.name), `#${h.rank} ${altText(h.label, h.name)}, cosine ${fmt(h.cosine, 3)}: search from it`);
      col.append(card);
    }
    cols.append(col);
  }
  const t = out.timing_ms || {};
  $("#status").textContent = `embed ${t.embed ?? "–"} ms · search ${t.search ?? "–"} ms`;
}

// ---------- start gallery: label filter, paging, larger preview ----------
async function loadGallery() {
  const seq = ++state.seq.gallery;
  const g = state.gallery;
  try {
    const label = g.label ? `&label=${encodeURIComponent(g.label)}` : "";
    const out = await api(`api/gallery?offset=${g.page * GALLERY_PAGE}&limit=${GALLERY_PAGE}${label}`);
    if (seq !== state.seq.gallery) return;
    const sel = $("#glabel");
    if (sel.options.length <= 1 && out.labels) {
      for (const l of out.labels) sel.append(el("option", { value: l.name, text: `${l.name || "(no label)"} (${l.count})` }));
    }
    g.pages = Math.max(1, Math.ceil((out.total || 0) / GALLERY_PAGE));
    $("#gpage").textContent = `page ${g.page + 1} of ${g.pages} (${out.total} images)`;
    $("#gprev").disabled = g.page <= 0;
    $("#gnext").disabled = g.page >= g.pages - 1;
    const grid = $("#ggrid");
    grid.replaceChildren();
    grid.dataset.count = String(out.items.length);
    for (const it of out.items) {
      const btn = el("button", { type: "button", "data-id": it.id, title: `${altText(it.label, it.name)}: preview` },
        thumb(it.id, "", altText(it.label, it.name)), el("span", { text: it.label || it.name }));
      btn.addEventListener("click", () => openPreview(it.id, it.label, it.name, btn));
      grid.append(el("li", {}, btn));
    }
  } catch (e) {
    if (seq === state.seq.gallery) $("#gpage").textContent = `no gallery: ${e.message}`;
  }
}

function openPreview(id, label, name, opener, blind = false) {
  // blind (judge mode): no label, no search button; the caller's name only ("candidate 3 of 12" when hidden)
  const dlg = $("#preview");
  const text = blind ? name : altText(label, name);
  $("#pvimg").src = withToken(`api/image/${id}`);
  $("#pvimg").alt = text;
  $("#pvname").textContent = blind ? text : `${text} (id ${id})`;
  $("#pvsearch").classList.toggle("hidden", blind);
  dlg.dataset.id = id;
  dlg.dataset.name = name || "";
  // the close event comes after Escape as a task of its own: by then the focus may have moved on (a judge's next
  // key), and taking it back would send the following mark to the image already judged
  dlg.onclose = () => {
    const here = document.activeElement;
    if (opener && opener.isConnected && (!here || here === document.body || dlg.contains(here))) opener.focus();
  };
  dlg.showModal();
  (blind ? $("#pvclose") : $("#pvsearch")).focus();
}

// ---------- maps ----------
async function loadMaps() {
  const grid = $("#mapgrid");
  const method = $("#method").value;
  const seq = ++state.seq.maps;  // a later switch of projection or models supersedes this one
  grid.replaceChildren();
  state.maps = {};
  const jobs = [];
  for (const m of state.models) {
    if (!state.enabled.has(m.name)) continue;
    const canvas = el("canvas", { width: 800, height: 800, "data-model": m.name, role: "img",
      "aria-label": `${m.name} map (${method}), loading` });
    const box = el("div", { class: "mapbox", "data-model": m.name },
      el("h3", { text: `${m.name} (${method}, loading…)` }), canvas);
    grid.append(box);
    jobs.push(loadOneMap(m.name, method, canvas, box, seq));
  }
  await Promise.all(jobs);
}

async function loadOneMap(model, method, canvas, box, seq) {
  for (;;) {
    let data;
    try {
      data = await api(`api/map/${encodeURIComponent(model)}?method=${method}`);
    } catch (e) {
      if (seq !== state.seq.maps) return;
      if (e.status === 503) {  // too many maps computing: come back when the server says
        box.querySelector("h3").textContent = `${model} (${method}, waiting for the server…)`;
        await new Promise((r) => setTimeout(r, 1000 * e.retryAfter));
        if (seq !== state.seq.maps) return;
        continue;
      }
      box.querySelector("h3").textContent = `${model}: ${e.message}`;
      showError(e.message);
      return;
    }
    if (seq !== state.seq.maps) return;
    if (data && data.state === "computing") {  // computed off the request path: poll until it is ready
      const pct = data.progress !== undefined && data.progress !== null ? ` ${Math.round(100 * data.progress)}%` : "";
      box.querySelector("h3").textContent = `${model} (${method}, computing: ${data.stage || ""}${pct}…)`;
      await new Promise((r) => setTimeout(r, 500));
      if (seq !== state.seq.maps) return;
      continue;
    }
    const map = { ...data, canvas, box, lasso: null };
    state.maps[model] = map;
    box.querySelector("h3").textContent = `${model}: ${data.ids.length} images (${data.method})`;
    const legend = el("div", { class: "legend" });
    data.labels.forEach((name, i) => {
      const dot = el("i");
      dot.style.background = PALETTE[i % PALETTE.length];
      legend.append(el("span", {}, dot, document.createTextNode(name || "(none)")));
    });
    box.append(legend);
    canvas.dataset.points = String(data.ids.length);
    canvas.dataset.method = data.method;
    attachMapEvents(map);
    drawMap(map);
    return;
  }
}

function px(map, i) {
  const pad = 26, side = map.canvas.width - 2 * pad;  // room for the query's ring at an edge
  return [pad + map.xy[2 * i] * side, pad + (1 - map.xy[2 * i + 1]) * side];
}

function star(ctx, x, y, r) {
  ctx.beginPath();
  for (let i = 0; i < 10; i++) {
    const a = -Math.PI / 2 + i * Math.PI / 5, rr = i % 2 ? r * 0.45 : r;
    ctx.lineTo(x + rr * Math.cos(a), y + rr * Math.sin(a));
  }
  ctx.closePath();
}

function drawMap(map) {
  const ctx = map.canvas.getContext("2d");
  const W = map.canvas.width;
  ctx.clearRect(0, 0, W, W);
  const sel = state.selection, any = sel.size > 0;
  const n = map.ids.length, r = n > 3000 ? 2 : 4;
  let shown = 0;
  ctx.globalAlpha = any ? 0.25 : 0.85;
  for (let i = 0; i < n; i++) {
    if (any && sel.has(map.ids[i])) continue;
    const [x, y] = px(map, i);
    ctx.fillStyle = PALETTE[map.label[i] % PALETTE.length];
    ctx.fillRect(x - r, y - r, 2 * r, 2 * r);
  }
  ctx.globalAlpha = 1;
  if (any) {
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#000";
    for (let i = 0; i < n; i++) {
      if (!sel.has(map.ids[i])) continue;
      const [x, y] = px(map, i);
      ctx.fillStyle = PALETTE[map.label[i] % PALETTE.length];
      ctx.beginPath();
      ctx.arc(x, y, r + 4, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
      shown++;
    }
  }
  // the query, marked on every map: a star inside a ring, black on white so it shows over any colour
  const qi = state.mark ? map.ids.indexOf(state.mark) : -1;
  if (qi >= 0) {
    const [x, y] = px(map, qi);
    ctx.lineWidth = 4;
    ctx.strokeStyle = "#fff";
    ctx.beginPath(); ctx.arc(x, y, 22, 0, 2 * Math.PI); ctx.stroke();
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#000";
    ctx.beginPath(); ctx.arc(x, y, 22, 0, 2 * Math.PI); ctx.stroke();
    star(ctx, x, y, 14);
    ctx.fillStyle = "#ffd400";
    ctx.fill();
    ctx.stroke();
  }
  map.canvas.dataset.query = qi >= 0 ? state.mark : "";
  map.canvas.setAttribute("aria-label", `${map.model} map (${map.method}): ${n} images` +
    (qi >= 0 ? ", the query marked with a star" : "") + (shown ? `, ${shown} selected` : ""));
  if (map.lasso && map.lasso.length > 1) {
    ctx.strokeStyle = "#2d6cdf";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(...map.lasso[0]);
    for (const p of map.lasso.slice(1)) ctx.lineTo(...p);
    ctx.stroke();
  }
  map.canvas.dataset.selected = String(shown);
}

function canvasXY(map, ev) {
  const rect = map.canvas.getBoundingClientRect();
  return [(ev.clientX - rect.left) * map.canvas.width / rect.width,
    (ev.clientY - rect.top) * map.canvas.height / rect.height];
}

function nearest(map, x, y, within) {
  let best = -1, bd = within * within;
  for (let i = 0; i < map.ids.length; i++) {
    const [px_, py_] = px(map, i);
    const d = (px_ - x) ** 2 + (py_ - y) ** 2;
    if (d <= bd) { bd = d; best = i; }
  }
  return best;
}

function inside(poly, x, y) {
  let c = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) c = !c;
  }
  return c;
}

function setSelection(ids, add) {
  if (!add) state.selection = new Set();
  for (const id of ids) state.selection.add(id);
  Object.values(state.maps).forEach(drawMap);
  const strip = $("#selstrip");
  strip.replaceChildren();
  const ids_ = [...state.selection];
  $("#selinfo").textContent = ids_.length ? `${ids_.length} selected` : "";
  for (const id of ids_.slice(0, 60)) {
    const img = thumb(id, "", `selected image ${id}: search from it`);
    activatable(img, () => queryId(id));
    strip.append(img);
  }
}

function attachMapEvents(map) {
  const c = map.canvas, tip = $("#tip");
  let down = null;
  c.addEventListener("mousedown", (ev) => { down = canvasXY(map, ev); map.lasso = [down]; });
  c.addEventListener("mousemove", (ev) => {
    const [x, y] = canvasXY(map, ev);
    if (down) {
      map.lasso.push([x, y]);
      drawMap(map);
      return;
    }
    const i = nearest(map, x, y, 10);
    if (i < 0) { tip.classList.add("hidden"); return; }
    const id = map.ids[i];
    if (tip.dataset.id !== id) {
      $("#tipimg").src = withToken(`api/thumb/${id}`);
      $("#tiptext").textContent = map.labels[map.label[i]] || "(no label)";
      tip.dataset.id = id;
    }
    tip.style.left = `${Math.min(ev.clientX + 14, window.innerWidth - 140)}px`;
    tip.style.top = `${ev.clientY + 14}px`;
    tip.classList.remove("hidden");
  });
  c.addEventListener("mouseleave", () => tip.classList.add("hidden"));
  window.addEventListener("mouseup", (ev) => {
    if (!down) return;
    const path = map.lasso || [];
    down = null;
    map.lasso = null;
    const extent = path.reduce((m, p) => Math.max(m, Math.abs(p[0] - path[0][0]) + Math.abs(p[1] - path[0][1])), 0);
    if (extent < 6) {
      const [x, y] = canvasXY(map, ev);
      const i = nearest(map, x, y, 12);
      setSelection(i < 0 ? [] : [map.ids[i]], ev.shiftKey);
    } else {
      const ids = map.ids.filter((_, i) => inside(path, ...px(map, i)));
      setSelection(ids, ev.shiftKey);
    }
  });
  c.addEventListener("dblclick", (ev) => {
    const [x, y] = canvasXY(map, ev);
    const i = nearest(map, x, y, 12);
    if (i >= 0) queryId(map.ids[i]);
  });
}

// ---------- judge mode: blind pools, named judges, grades and undo, saved at once ----------
// Blind by design: nothing shown while judging depends on which model found an image. Per-model figures are asked
// for with "Show results" (judged@k, P@k, the run's verdict re-scored on the judgments), never after each mark.
const JUDGE_KEY = "onnx_search_judge", NAMES_KEY = "onnx_search_judge_names";
const GRADE_WORDS = { 0: "not relevant", 1: "relevant", 2: "highly relevant", 3: "perfect match" };

function judgeName() {
  const v = $("#jname").value.trim();
  return /^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$/.test(v) ? v : "default";
}
function judgeParams() {
  return `k=${state.k}&models=${modelsParam()}&judge=${encodeURIComponent(judgeName())}`;
}
function judgeSource() { const v = $("#jrun").value; return v === "judged" || v === "" ? "" : `run=${v}&`; }
function gradeWord(g, max) {
  if (max <= 1) return g ? "relevant" : "not relevant";
  return `${g}: ${GRADE_WORDS[g] || "graded " + g}`;
}

function clearPool(text) {
  state.judge.pool = null;
  ++state.seq.judge;  // an answer still on its way for the old pool is dropped
  $("#jpool").replaceChildren();
  delete $("#jpool").dataset.query;
  $("#jquery").replaceChildren();
  $("#jpoolprogress").textContent = "";
  $("#jspinner").classList.toggle("hidden", !text);
  $("#jspinner").textContent = text || "";
  $("#jpoolbox").setAttribute("aria-busy", text ? "true" : "false");
}

async function loadJudge() {
  const seq = ++state.seq.jlist;
  $("#jresults").replaceChildren();
  clearPool("loading the pools…");
  try {
    const out = await api(`api/judge/queries?${judgeSource()}${judgeParams()}`);
    if (seq !== state.seq.jlist) return;
    state.judge.list = out.queries;
    state.judge.count = out.count;
    state.judge.maxGrade = out.max_grade || 1;
    state.judge.namesAllowed = out.names_allowed !== false;
    $("#jnames").disabled = !state.judge.namesAllowed;
    $("#jfile").textContent = out.file;
    $("#jsaved").classList.remove("hidden");
    $("#jgradekeys").textContent = state.judge.maxGrade > 1
      ? `0 to ${state.judge.maxGrade} grade (0 not relevant)` : "1 relevant, 0 not relevant";
    const extra = state.judge.extra;
    if (extra && !state.judge.list.some((q) => q.id === extra.id)) state.judge.list.unshift(extra);
    updateProgress();
    const list = state.judge.list;
    let target = state.q && list.find((q) => q.id === state.q);
    if (!target && state.q) {
      state.judge.extra = { id: state.q, size: 0, judged: 0 };
      list.unshift(state.judge.extra);
      target = state.judge.extra;
    }
    target = target || list.find((q) => q.judged < q.size) || list[0];
    if (target) await openPool(target.id, false);
    else {
      clearPool("");
      $("#jquery").replaceChildren(el("p", { class: "empty",
        text: "no queries to judge: serve a run folder, or search from a catalogued image and choose “Judge this query's pool”" }));
    }
  } catch (e) {
    if (seq === state.seq.jlist) { clearPool(""); showError(e.message); }
  }
}

function updateProgress() {
  const list = state.judge.list;
  const done = list.filter((q) => q.size > 0 && q.judged >= q.size).length;
  const bar = $("#jprogress");
  bar.max = Math.max(1, list.length);
  bar.value = done;
  bar.setAttribute("aria-valuetext", `${done} of ${list.length} pools judged`);
  $("#jcount").textContent = `${done} of ${list.length} pools judged by ${judgeName()} · ${state.judge.count || 0} marks`;
  $("#judge").dataset.done = String(done);
  $("#judge").dataset.total = String(list.length);
  const pool = state.judge.pool;
  if (pool) {
    $("#jpoolprogress").textContent = `this pool: ${pool.judged} of ${pool.size} judged`;
    $("#jpool").dataset.judged = String(pool.judged);
  }
}

async function openPool(id, push = true) {
  const shown = state.judge.pool;
  if (!shown || shown.query.id !== id || shown.k !== state.k) clearPool("loading the pool…");
  const seq = ++state.seq.judge;  // taken after clearPool, which drops every answer asked for before
  const names = $("#jnames").checked ? "&names=1" : "";
  try {
    const pool = await api(`api/judge/pool/${id}?${judgeParams()}${names}`);
    if (seq !== state.seq.judge) return;
    $("#jspinner").classList.add("hidden");
    $("#jpoolbox").setAttribute("aria-busy", "false");
    state.judge.pool = pool;
    state.judge.maxGrade = pool.max_grade || state.judge.maxGrade || 1;
    state.judge.focus = Math.max(0, pool.docs.findIndex((d) => d.relevance === null || d.relevance === undefined));
    state.q = pool.query.id;
    state.mark = pool.query.id;
    const entry = state.judge.list.find((q) => q.id === pool.query.id);
    if (entry) { entry.size = pool.size; entry.judged = pool.judged; }
    renderPool();
    updateProgress();
    if (state.view === "judge") focusCard(state.judge.focus);
    if (push) pushURL();
  } catch (e) {
    if (seq === state.seq.judge) { clearPool(""); showError(e.message); }
  }
}

function candidateLabel(pool, j, d) {
  const rel = d.relevance === null || d.relevance === undefined ? "not judged" : gradeWord(d.relevance, pool.max_grade);
  return `candidate ${j + 1} of ${pool.size}${d.name ? ": " + d.name : ""}, ${rel}${d.conflict ? ", judges disagree" : ""}`;
}

function paintCard(card, pool, j) {
  const d = pool.docs[j];
  const rel = d.relevance === null || d.relevance === undefined ? "" : String(d.relevance);
  card.dataset.rel = rel;
  card.dataset.conflict = d.conflict ? "1" : "0";
  for (const b of card.querySelectorAll(".jbtns button")) b.setAttribute("aria-pressed", b.dataset.grade === rel ? "true" : "false");
  const flag = card.querySelector(".jconflict");
  flag.classList.toggle("hidden", !d.conflict);
  flag.title = d.judges ? `judges disagree: ${Object.entries(d.judges).map(([n, g]) => `${n} ${g}`).join(", ")}` : "judges disagree on this image";
  card.setAttribute("aria-label", candidateLabel(pool, j, d));
}

function renderPool() {
  const pool = state.judge.pool, list = state.judge.list;
  const i = list.findIndex((q) => q.id === pool.query.id);
  const qalt = pool.query.name ? `query: ${altText(pool.query.label, pool.query.name)}` : "the query image";
  const qimg = el("img", { src: withToken(`api/image/${pool.query.id}`), alt: qalt, "data-id": pool.query.id });
  const about = pool.query.name ? `${pool.query.name} (${pool.query.label || "no label"}). ` : "";
  $("#jquery").replaceChildren(qimg,
    el("p", {}, el("strong", { text: `Query ${i + 1} of ${list.length}. ` }), document.createTextNode(about),
      el("span", { text: `Which of these ${pool.size} images are relevant to it?` })));
  const ul = $("#jpool");
  ul.replaceChildren();
  ul.dataset.query = pool.query.id;
  const grades = [...Array(pool.max_grade + 1).keys()].reverse();
  pool.docs.forEach((d, j) => {
    const btns = grades.map((g) => {
      const b = el("button", { type: "button", text: pool.max_grade > 1 ? String(g) : (g ? "Relevant" : "Not relevant"),
        title: gradeWord(g, pool.max_grade), "data-grade": String(g), tabindex: "-1" });
      b.addEventListener("click", () => mark(j, g));
      return b;
    });
    const undo = el("button", { type: "button", text: "Undo", class: "jundo", tabindex: "-1", title: "clear my mark (u)" });
    undo.addEventListener("click", () => unmark(j));
    const full = el("button", { type: "button", text: "View", class: "jview", tabindex: "-1", title: "full size (v)" });
    full.addEventListener("click", () => viewCandidate(j));
    const li = el("li", { class: "jcard", "data-id": d.id, tabindex: j === state.judge.focus ? "0" : "-1" },
      el("span", { class: "jconflict hidden", text: "judges disagree" }),
      el("img", { src: withToken(`api/thumb/${d.id}`), alt: `candidate ${j + 1} of ${pool.size}${d.name ? ": " + d.name : ""}`,
        loading: "lazy", "data-id": d.id }),
      d.name ? el("div", { class: "jname", text: d.name }) : null,
      el("div", { class: "jbtns" }, ...btns), el("div", { class: "jbtns" }, undo, full));
    li.addEventListener("focus", () => { state.judge.focus = j; });
    li.querySelector("img").addEventListener("dblclick", () => viewCandidate(j));
    ul.append(li);
    paintCard(li, pool, j);
  });
  $("#jprev").disabled = i <= 0;
  $("#jnext").disabled = i < 0 || i >= list.length - 1;
}

function focusCard(j) {
  const cards = [...document.querySelectorAll("#jpool .jcard")];
  if (!cards.length) return;
  j = Math.max(0, Math.min(cards.length - 1, j));
  cards.forEach((c, n) => c.setAttribute("tabindex", n === j ? "0" : "-1"));
  state.judge.focus = j;
  cards[j].focus();
}

function afterMark(pool, j, d, out) {
  d.relevance = out.relevance;
  d.conflict = out.conflict;
  d.judges = out.judges;
  pool.judged = pool.docs.filter((x) => x.relevance !== null && x.relevance !== undefined).length;
  state.judge.count = out.count;
  const entry = state.judge.list.find((q) => q.id === pool.query.id);
  if (entry) { entry.judged = pool.judged; entry.size = pool.size; }
  const card = document.querySelector(`#jpool .jcard[data-id="${d.id}"]`);
  if (card) paintCard(card, pool, j);
  updateProgress();
}

// marks and undos are sent one after another, in the order of the keys: a fast "3 then u" never lands as "u then 3"
let writes = Promise.resolve();
function inOrder(send) {
  const next = writes.then(send);
  writes = next.catch(() => null);
  return next;
}

async function mark(j, relevance) {
  const pool = state.judge.pool;
  if (!pool || !pool.docs[j] || relevance > pool.max_grade) return;
  const d = pool.docs[j];
  // the focus moves on at once, so the next key marks the next image even before this answer is back
  if (j === state.judge.focus && j + 1 < pool.docs.length) focusCard(j + 1);
  const card = document.querySelector(`#jpool .jcard[data-id="${d.id}"]`);
  if (card) card.dataset.pending = "1";
  try {
    const out = await inOrder(() => api("api/judge", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query: pool.query.id, doc: d.id, relevance, judge: judgeName() }) }));
    if (state.judge.pool !== pool) return;  // another pool opened meanwhile; the judgment is saved all the same
    afterMark(pool, j, d, out);
  } catch (e) {
    showError(e.message);
    if (state.judge.pool === pool) focusCard(j);
  } finally {
    if (card) delete card.dataset.pending;
  }
}

async function unmark(j) {
  const pool = state.judge.pool;
  if (!pool || !pool.docs[j]) return;
  const d = pool.docs[j];
  try {
    const out = await inOrder(() => api("api/judge/undo", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query: pool.query.id, doc: d.id, judge: judgeName() }) }));
    if (state.judge.pool !== pool) return;
    afterMark(pool, j, d, out);
  } catch (e) {
    showError(e.message);
  }
}

function viewCandidate(j) {
  const pool = state.judge.pool;
  if (!pool || !pool.docs[j]) return;
  const d = pool.docs[j];
  const card = document.querySelector(`#jpool .jcard[data-id="${d.id}"]`);
  openPreview(d.id, d.name ? "" : null, d.name || `candidate ${j + 1} of ${pool.size}`, card, true);
}

function stepQuery(delta) {
  const list = state.judge.list, pool = state.judge.pool;
  if (!pool) return;
  const i = list.findIndex((q) => q.id === pool.query.id);
  const next = list[i + delta];
  if (next) openPool(next.id);
}

function nextUnjudged() {
  // the list's own order (the run's), from the pool after this one, wrapping: every judge meets the same sequence
  const list = state.judge.list, pool = state.judge.pool;
  const i = pool ? list.findIndex((q) => q.id === pool.query.id) : -1;
  for (let n = 1; n <= list.length; n++) {
    const q = list[(i + n) % list.length];
    if (q.size === 0 || q.judged < q.size) {
      if (!pool || q.id !== pool.query.id) openPool(q.id);
      return;
    }
  }
  $("#jpoolprogress").textContent = "every pool is judged: “Show results” gives the figures";
}

function judgeKeys(ev) {
  if (ev.target.closest("select, input, dialog")) return;
  const cols = getComputedStyle($("#jpool")).gridTemplateColumns.split(" ").length || 1;
  const j = state.judge.focus;
  const max = state.judge.pool ? state.judge.pool.max_grade : 1;
  const keys = {
    ArrowRight: () => focusCard(j + 1), ArrowLeft: () => focusCard(j - 1),
    ArrowDown: () => focusCard(j + cols), ArrowUp: () => focusCard(j - cols),
    u: () => unmark(j), Backspace: () => unmark(j), v: () => viewCandidate(j),
    n: () => stepQuery(1), p: () => stepQuery(-1), N: () => nextUnjudged(),
  };
  for (let g = 0; g <= max; g++) keys[String(g)] = () => mark(j, g);
  const act = keys[ev.key];
  if (!act || ev.altKey || ev.ctrlKey || ev.metaKey) return;
  if (!ev.target.closest("#jpool") && !["n", "p", "N"].includes(ev.key)) return;
  ev.preventDefault();
  act();
}

async function showResults() {
  const seq = ++state.seq.summary;
  const box = $("#jresults");
  box.replaceChildren(el("p", { class: "spinner", text: "computing the figures…" }));
  try {
    const out = await api(`api/judge/summary?k=${state.k}&models=${modelsParam()}`);
    const v = state.runs.length && judgeSource() ? await api(`api/judge/verdict?${judgeSource()}`).catch((e) => ({ error: e.message })) : null;
    if (seq !== state.seq.summary) return;
    state.summary = out;
    box.replaceChildren();
    if (!out.queries) box.append(el("p", { class: "empty", text: "no judgments yet" }));
    else {
      const rows = Object.entries(out.models).map(([m, x]) => el("tr", { "data-model": m },
        el("th", { scope: "row", text: m }), el("td", { text: fmtIv(x.judged_at_k) }), el("td", { text: fmtIv(x.p_at_k) })));
      box.append(el("table", { class: "sum" },
        el("caption", { class: "hint", text: `${out.queries} judged queries, k = ${out.k}; 95% bootstrap intervals over queries; ${out.rule}` }),
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "model" }), el("th", { scope: "col", text: `judged@${out.k}` }),
          el("th", { scope: "col", text: `P@${out.k}` }))),
        el("tbody", {}, ...rows)));
    }
    const ag = out.agreement && out.agreement.overall;
    if (ag && out.agreement.judges && out.agreement.judges.length > 1) {
      box.append(el("p", { "data-agreement": "1", text: `agreement between ${out.agreement.judges.join(", ")}: Cohen's kappa ${ag.kappa === null ? "–" : fmt(ag.kappa, 2)} on ${ag.shared} shared pairs${ag.reason ? " (" + ag.reason + ")" : ""}; ${out.agreement.conflicts} conflicts` }));
    }
    if (v && (v.error || !Object.keys(v.models || {}).length)) {
      box.append(el("p", { class: "empty", "data-verdict": "0", text: `no verdict yet: ${v.error || v.text}` }));
    } else if (v) {
      const rows = Object.entries(v.models).map(([m, x]) => el("tr", { "data-model": m },
        el("th", { scope: "row", text: m }), el("td", { text: fmtIv(x, 3) })));
      box.append(el("table", { class: "sum", "data-verdict": "1" },
        el("caption", { class: "hint", text: `run ${v.run} re-scored on ${v.judged_queries} judged queries (compare RUN --qrels): ${v.metric_label}, 95% intervals` }),
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "model" }), el("th", { scope: "col", text: v.metric_label }))),
        el("tbody", {}, ...rows)));
      const more = v.more_queries === null || v.more_queries === undefined ? "" :
        v.separable ? "" : ` About ${v.more_queries} more judged queries (${v.queries_needed} in all) would separate the leaders.`;
      box.append(el("p", { "data-more": String(v.more_queries ?? ""), text: v.text + more }));
    }
  } catch (e) {
    if (seq === state.seq.summary) { box.replaceChildren(); showError(e.message); }
  }
}

// ---------- run browsers ----------
function fillRunSelects(runSel, aSel, bSel, load) {
  runSel.replaceChildren(...state.runs.map((r, i) => el("option", { value: String(i), text: r.name })));
  const fillModels = () => {
    const run = state.runs[parseInt(runSel.value, 10)];
    if (!run) return;
    aSel.replaceChildren(...run.models.map((m) => el("option", { value: m, text: m })));
    bSel.replaceChildren(...run.models.map((m) => el("option", { value: m, text: m })));
    if (run.models.length > 1) bSel.value = run.models[1];
  };
  runSel.addEventListener("change", () => { fillModels(); load(); });
  aSel.addEventListener("change", load);
  bSel.addEventListener("change", load);
  fillModels();
}

function strip(title, hits, label) {
  const row = el("div", { class: "strip" }, el("b", { text: title }));
  for (const h of hits) {
    const img = thumb(h.id, label && h.label === label ? "same" : "", `${title} #${h.rank}: ${h.label || "no label"}, cosine ${fmt(h.cosine, 3)}`);
    img.title = `#${h.rank} ${h.label} cos ${fmt(h.cosine, 3)}`;
    activatable(img, () => queryId(h.id));
    row.append(img);
  }
  return row;
}

async function loadDisagreement() {
  const list = $("#dlist");
  const seq = ++state.seq.disagree;
  list.replaceChildren();
  if (!state.runs.length) { list.append(el("div", { class: "empty", text: "no run folder given: `onnx-search serve RUN_DIR`" })); return; }
  const a = $("#da").value, b = $("#db").value;
  if (!a || !b || a === b) { list.append(el("div", { class: "empty", text: "choose two different models" })); return; }
  try {
    const out = await api(`api/runs/${$("#drun").value}/disagreement?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    if (seq !== state.seq.disagree) return;
    for (const r of out.rows) {
      const q = el("div", { class: "q", title: "search from it" }, thumb(r.query_id, "thumb", `query: ${r.label || "no label"}`),
        el("div", { text: `RBO ${fmt(r.rbo, 3)}` }), el("div", { text: r.label }));
      activatable(q, () => queryId(r.query_id), `query ${r.label || ""}, RBO ${fmt(r.rbo, 3)}: search from it`);
      list.append(el("div", { class: "drow", "data-rbo": String(r.rbo) }, q, strip(a, r.a, r.label), strip(b, r.b, r.label)));
    }
    if (!out.rows.length) list.append(el("div", { class: "empty", text: "no queries in this run" }));
  } catch (e) { if (seq === state.seq.disagree) showError(e.message); }
}

async function loadRobustness() {
  const list = $("#rlist");
  const seq = ++state.seq.robust;
  list.replaceChildren();
  if (!state.runs.length) { list.append(el("div", { class: "empty", text: "no run folder given" })); return; }
  const a = $("#ra").value, b = $("#rb").value, run = $("#rrun").value;
  if (!a || !b || a === b) { list.append(el("div", { class: "empty", text: "choose two different models" })); return; }
  try {
    const out = await api(`api/runs/${run}/robustness?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    if (seq !== state.seq.robust) return;
    for (const r of out.rows) {
      const orig = el("figure", {}, thumb(r.original_id, "thumb", "original image"), el("figcaption", { text: "original" }));
      activatable(orig, () => queryId(r.original_id), "original image: search from it");
      const copy = el("figure", {}, el("img", { src: withToken(`api/runs/${run}/copy/${r.copy}`), alt: `${r.transform} copy` }),
        el("figcaption", { text: `${r.transform} copy` }));
      const top = r.missed.top1_id ? el("figure", {}, thumb(r.missed.top1_id, "thumb", `${a}'s top 1`), el("figcaption", { text: `${a}'s top 1` })) : null;
      if (top) activatable(top, () => queryId(r.missed.top1_id), `${a}'s top 1: search from it`);
      const text = el("div", {},
        el("div", { text: `${r.transform} ${JSON.stringify(r.params)}` }),
        el("div", { text: `${a}: original not in top-k (true z ${fmt(r.missed.true_z, 2)})` }),
        el("div", { text: `${b}: rank ${r.found.rank} (true z ${fmt(r.found.true_z, 2)})` }));
      list.append(el("div", { class: "rrow" }, orig, copy, top, text));
    }
    if (!out.rows.length) list.append(el("div", { class: "empty", text: `no copy that ${a} missed and ${b} found` }));
  } catch (e) { if (seq === state.seq.robust) showError(e.message); }
}

// ---------- degraded start ----------
function showDegraded(info) {
  const gone = info.unavailable || info.degraded || [];
  const box = $("#degraded");
  box.replaceChildren();
  box.classList.toggle("hidden", !gone.length);
  if (!gone.length) return;
  box.append(el("strong", { text: `${gone.length} model(s) left out; the others are served:` }));
  const ul = el("ul");
  for (const g of gone) {
    const li = el("li", { "data-model": g.model || g.name || "" },
      el("strong", { text: `${g.model || g.name}: ` }), document.createTextNode(`${g.reason || ""} `));
    if (g.fix) li.append(document.createTextNode("Fix: "), el("code", { text: g.fix }));
    ul.append(li);
  }
  box.append(ul);
}

// ---------- shell ----------
function refreshView() {
  if (state.view === "search") { if (state.last) runQuery(); }
  else if (state.view === "maps") loadMaps();
  else if (state.view === "judge") loadJudge();
  else if (state.view === "disagree") loadDisagreement();
  else if (state.view === "robust") loadRobustness();
  if (state.view !== "maps") state.maps = {};
}

function showTab(name, push = true) {
  state.view = name;
  for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-pressed", b.dataset.tab === name ? "true" : "false");
  for (const s of document.querySelectorAll(".tab")) s.classList.toggle("hidden", s.id !== name);
  if (name === "maps" && !Object.keys(state.maps).length) loadMaps();
  if (name === "maps") Object.values(state.maps).forEach(drawMap);
  if (name === "judge") loadJudge();
  if (name === "disagree") loadDisagreement();
  if (name === "robust") loadRobustness();
  if (push) pushURL();
}

async function init() {
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  const drop = $("#drop"), file = $("#file");
  file.addEventListener("change", (ev) => { queryUpload(ev.target.files[0]); ev.target.value = ""; });
  // the label opens the chooser with a click; Enter or Space on the focused (visually hidden) input does too
  file.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); file.click(); } });
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    queryUpload(ev.dataTransfer.files[0]);
  });
  $("#k").addEventListener("change", onK);
  $("#k").addEventListener("input", checkK);
  $("#exclude").addEventListener("change", runQuery);
  $("#method").addEventListener("change", loadMaps);
  $("#clearsel").addEventListener("click", () => setSelection([], false));
  $("#judgethis").addEventListener("click", () => {
    if (!state.last || state.last.kind !== "id") return;
    state.judge.extra = { id: state.last.id, name: $("#qname").textContent, size: 0, judged: 0 };
    state.q = state.last.id;
    showTab("judge");
  });
  $("#jrun").addEventListener("change", () => { state.q = null; loadJudge(); });
  $("#jprev").addEventListener("click", () => stepQuery(-1));
  $("#jnext").addEventListener("click", () => stepQuery(1));
  $("#judge").addEventListener("keydown", judgeKeys);
  $("#jnextun").addEventListener("click", nextUnjudged);
  $("#jshow").addEventListener("click", showResults);
  const store = (key, value) => { try { localStorage.setItem(key, value); } catch (e) { /* private mode */ } };
  const stored = (key) => { try { return localStorage.getItem(key); } catch (e) { return null; } };
  $("#jname").value = stored(JUDGE_KEY) || "default";
  $("#jname").addEventListener("change", () => {
    const ok = judgeName() === $("#jname").value.trim();
    $("#jnamemsg").classList.toggle("hidden", ok);
    if (ok) store(JUDGE_KEY, judgeName());
    if (state.view === "judge") loadJudge();
  });
  $("#jnames").checked = stored(NAMES_KEY) === "1";
  $("#jnames").addEventListener("change", () => {
    store(NAMES_KEY, $("#jnames").checked ? "1" : "0");
    if (state.judge.pool) openPool(state.judge.pool.query.id, false);
  });
  $("#glabel").addEventListener("change", () => { state.gallery.label = $("#glabel").value; state.gallery.page = 0; loadGallery(); });
  $("#gprev").addEventListener("click", () => { state.gallery.page = Math.max(0, state.gallery.page - 1); loadGallery(); });
  $("#gnext").addEventListener("click", () => { state.gallery.page += 1; loadGallery(); });
  $("#pvclose").addEventListener("click", () => $("#preview").close());
  $("#pvsearch").addEventListener("click", () => {
    const dlg = $("#preview");
    dlg.close();
    queryId(dlg.dataset.id, dlg.dataset.name);
  });
  window.addEventListener("popstate", applyURL);
  try {
    const info = await api("api/models");
    state.models = info.models;
    state.runs = info.runs;
    if (info.limits && info.limits.k) {
      state.kLimits = { min: info.limits.k.min, max: info.limits.k.max };
      $("#k").min = String(state.kLimits.min);
      $("#k").max = String(state.kLimits.max);
    }
    const methods = info.limits && info.limits.map_methods;
    if (Array.isArray(methods) && methods.length) {  // the projections this server offers (UMAP where installed)
      const names = { pca: "PCA", tsne: "t-SNE", umap: "UMAP" };
      $("#method").replaceChildren(...methods.map((m) => el("option", { value: m, text: names[m] || m })));
    }
    showDegraded(info);
    const toggles = $("#toggles");
    for (const m of info.models) {
      state.enabled.add(m.name);
      const box = el("input", { type: "checkbox", checked: true, value: m.name });
      box.addEventListener("change", () => {
        if (box.checked) state.enabled.add(m.name); else state.enabled.delete(m.name);
        pushURL();
        refreshView();
      });
      const facts = `${isRandom(m) ? "RANDOM weights" : m.weights || "weights unknown"}, ${m.dim}-d, ${m.images} images`;
      toggles.append(el("label", { title: facts }, box, document.createTextNode(` ${m.name}`)));
    }
    const jrun = $("#jrun");
    jrun.replaceChildren(...state.runs.map((r, i) => el("option", { value: String(i), text: `run ${r.name}` })),
      el("option", { value: "judged", text: "every judged query" }));
    fillRunSelects($("#drun"), $("#da"), $("#db"), loadDisagreement);
    fillRunSelects($("#rrun"), $("#ra"), $("#rb"), loadRobustness);
    // k: the URL's, else the served run's top_k (judge mode scores what the run scored), else the box's
    const runK = state.runs.length ? parseInt(state.runs[0].top_k, 10) : NaN;
    const k = runK >= state.kLimits.min && runK <= state.kLimits.max ? runK : parseInt($("#k").value, 10);
    state.k = k >= 1 && k <= 100 ? k : 8;
    $("#k").value = String(state.k);
    loadGallery();
    applyURL();
    history.replaceState(null, "", urlFor());
    document.body.dataset.ready = "1";
  } catch (e) {
    showError(e.message);
  }
}

window.explorer = {
  state,
  pointXY(model, id) {  // page coordinates of one point on a model's map (for tests and scripts)
    const map = state.maps[model];
    const i = map.ids.indexOf(id);
    const [x, y] = px(map, i);
    const rect = map.canvas.getBoundingClientRect();
    return [rect.left + x * rect.width / map.canvas.width, rect.top + y * rect.height / map.canvas.height];
  },
  selected() { return [...state.selection]; },
};
init();
