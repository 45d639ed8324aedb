// onnx-search explorer: plain JavaScript, no library, nothing fetched from outside this server.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#843c39", "#7b4173", "#3182bd"];
const state = {
  models: [], runs: [], enabled: new Set(), last: null, maps: {}, selection: new Set(), queries: 0, asked: 0,
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
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function thumb(id, cls = "thumb") {
  return el("img", { class: cls, src: withToken(`api/thumb/${id}`), alt: "", loading: "lazy", "data-id": id });
}

async function api(url, options = {}) {
  const resp = await fetch(withToken(url), options);
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    const msg = (body && body.error) || `${resp.status} ${resp.statusText}`;
    throw new Error(msg);
  }
  return body;
}

function showError(msg) {
  const box = $("#error");
  box.textContent = msg;
  box.classList.toggle("hidden", !msg);
}

function fmt(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d); }

// ---------- search ----------
function params() {
  const k = Math.max(1, Math.min(100, parseInt($("#k").value, 10) || 8));
  const models = [...state.enabled].join(",");
  return `k=${k}&models=${encodeURIComponent(models)}&exclude_self=${$("#exclude").checked ? 1 : 0}`;
}

async function runQuery() {
  const q = state.last;
  if (!q) return;
  if (!state.enabled.size) { showError("switch at least one model on"); return; }
  $("#status").textContent = "searching…";
  const seq = ++state.asked;  // only the answer to the latest question is shown
  try {
    const out = q.kind === "upload"
      ? await api(`api/query?${params()}`, { method: "POST", body: q.blob,
        headers: { "Content-Type": q.blob.type || "application/octet-stream" } })
      : await api(`api/query/${q.id}?${params()}`);
    if (seq !== state.asked) return;
    showError("");
    renderResults(out);
  } catch (e) {
    if (seq !== state.asked) return;
    showError(e.message);
    $("#status").textContent = "";
  }
}

function queryUpload(file) {
  if (!file) return;
  state.last = { kind: "upload", blob: file };
  $("#qimg").src = URL.createObjectURL(file);
  $("#qname").textContent = `${file.name} (uploaded, ${Math.round(file.size / 1024)} kB)`;
  $("#query").classList.remove("hidden");
  runQuery();
}

function queryId(id, name) {
  state.last = { kind: "id", id };
  $("#qimg").src = withToken(`api/thumb/${id}`);
  $("#qname").textContent = name || `catalogue image ${id}`;
  $("#query").classList.remove("hidden");
  showTab("search");
  runQuery();
}

function renderResults(out) {
  state.queries += 1;
  const cols = $("#columns");
  cols.replaceChildren();
  cols.dataset.query = out.query.id || out.query.name;
  cols.dataset.count = String(state.queries);
  if (out.query.id) $("#qname").textContent = `${out.query.name} (catalogue id ${out.query.id})`;
  for (const [model, hits] of Object.entries(out.models)) {
    const col = el("div", { class: "col", "data-model": model },
      el("h3", {}, el("span", { text: model }), el("small", { text: `${hits.length} hits` })));
    if (!hits.length) col.append(el("div", { class: "empty", text: "no hits" }));
    for (const h of hits) {
      const also = el("div");
      for (const o of h.also) also.append(el("span", { class: "also", text: `also ${o}`, title: `${o} found it too` }));
      const meta = el("div", { class: "meta" },
        el("div", { class: "lab", text: `#${h.rank} ${h.label || "(no label)"}` }),
        el("div", { class: "num", text: `cos ${fmt(h.cosine, 4)}` }),
        el("div", { class: "num", text: `pct ${h.percentile == null ? "–" : fmt(100 * h.percentile, 1) + "%"} · z ${fmt(h.z, 2)}` }),
        also);
      const card = el("div", { class: "hit", "data-id": h.id, title: `${h.name}: click to search from it` },
        thumb(h.id), meta);
      card.addEventListener("click", () => queryId(h.id, h.name));
      col.append(card);
    }
    cols.append(col);
  }
  $("#status").textContent = `embed ${out.timing_ms.embed} ms · search ${out.timing_ms.search} ms`;
}

// ---------- maps ----------
async function loadMaps() {
  const grid = $("#mapgrid");
  const method = $("#method").value;
  grid.replaceChildren();
  state.maps = {};
  for (const m of state.models) {
    if (!state.enabled.has(m.name)) continue;
    const canvas = el("canvas", { width: 800, height: 800, "data-model": m.name });
    const box = el("div", { class: "mapbox" }, el("h3", { text: `${m.name} (${method}, loading…)` }), canvas);
    grid.append(box);
    try {
      const data = await api(`api/map/${encodeURIComponent(m.name)}?method=${method}`);
      const map = { ...data, canvas, box, lasso: null };
      state.maps[m.name] = map;
      box.querySelector("h3").textContent = `${m.name}: ${data.ids.length} images (${data.method})`;
      const legend = el("div", { class: "legend" });
      data.labels.forEach((name, i) => {
        const dot = el("i");
        dot.style.background = PALETTE[i % PALETTE.length];
        legend.append(el("span", {}, dot, document.createTextNode(name || "(none)")));
      });
      box.append(legend);
      canvas.dataset.points = String(data.ids.length);
      attachMapEvents(map);
      drawMap(map);
    } catch (e) {
      showError(e.message);
    }
  }
}

function px(map, i) {
  const pad = 16, side = map.canvas.width - 2 * pad;
  return [pad + map.xy[2 * i] * side, pad + (1 - map.xy[2 * i + 1]) * side];
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
    const img = thumb(id, "");
    img.title = "click to search from it";
    img.addEventListener("click", () => queryId(id));
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
    tip.style.left = `${ev.clientX + 14}px`;
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
    const img = thumb(h.id, label && h.label === label ? "same" : "");
    img.title = `#${h.rank} ${h.label} cos ${fmt(h.cosine, 3)}`;
    img.addEventListener("click", () => queryId(h.id));
    row.append(img);
  }
  return row;
}

async function loadDisagreement() {
  const list = $("#dlist");
  list.replaceChildren();
  if (!state.runs.length) { list.append(el("div", { class: "empty", text: "no run folder given: `onnx-search serve RUN_DIR`" })); return; }
  const a = $("#da").value, b = $("#db").value;
  if (!a || !b || a === b) { list.append(el("div", { class: "empty", text: "choose two different models" })); return; }
  try {
    const out = await api(`api/runs/${$("#drun").value}/disagreement?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    for (const r of out.rows) {
      const q = el("div", { class: "q", title: "click to search from it" }, thumb(r.query_id),
        el("div", { text: `RBO ${fmt(r.rbo, 3)}` }), el("div", { text: r.label }));
      q.addEventListener("click", () => queryId(r.query_id));
      list.append(el("div", { class: "drow", "data-rbo": String(r.rbo) }, q, strip(a, r.a, r.label), strip(b, r.b, r.label)));
    }
    if (!out.rows.length) list.append(el("div", { class: "empty", text: "no queries in this run" }));
  } catch (e) { showError(e.message); }
}

async function loadRobustness() {
  const list = $("#rlist");
  list.replaceChildren();
  if (!state.runs.length) { list.append(el("div", { class: "empty", text: "no run folder given" })); return; }
  const a = $("#ra").value, b = $("#rb").value, run = $("#rrun").value;
  if (!a || !b || a === b) { list.append(el("div", { class: "empty", text: "choose two different models" })); return; }
  try {
    const out = await api(`api/runs/${run}/robustness?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    for (const r of out.rows) {
      const orig = el("figure", {}, thumb(r.original_id), el("figcaption", { text: "original" }));
      orig.addEventListener("click", () => queryId(r.original_id));
      const copy = el("figure", {}, el("img", { src: withToken(`api/runs/${run}/copy/${r.copy}`), alt: "copy" }),
        el("figcaption", { text: `${r.transform} copy` }));
      const top = r.missed.top1_id ? el("figure", {}, thumb(r.missed.top1_id), el("figcaption", { text: `${a}'s top 1` })) : null;
      if (top) top.addEventListener("click", () => queryId(r.missed.top1_id));
      const text = el("div", {},
        el("div", { text: `${r.transform} ${JSON.stringify(r.params)}` }),
        el("div", { text: `${a}: original not in top-k (true z ${fmt(r.missed.true_z, 2)})` }),
        el("div", { text: `${b}: rank ${r.found.rank} (true z ${fmt(r.found.true_z, 2)})` }));
      list.append(el("div", { class: "rrow" }, orig, copy, top, text));
    }
    if (!out.rows.length) list.append(el("div", { class: "empty", text: `no copy that ${a} missed and ${b} found` }));
  } catch (e) { showError(e.message); }
}

// ---------- shell ----------
function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b.dataset.tab === name);
  for (const s of document.querySelectorAll(".tab")) s.classList.toggle("hidden", s.id !== name);
  if (name === "maps" && !Object.keys(state.maps).length) loadMaps();
  if (name === "disagree") loadDisagreement();
  if (name === "robust") loadRobustness();
}

async function init() {
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  const drop = $("#drop");
  $("#file").addEventListener("change", (ev) => queryUpload(ev.target.files[0]));
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    queryUpload(ev.dataTransfer.files[0]);
  });
  $("#k").addEventListener("change", runQuery);
  $("#exclude").addEventListener("change", runQuery);
  $("#method").addEventListener("change", loadMaps);
  $("#clearsel").addEventListener("click", () => setSelection([], false));
  try {
    const info = await api("api/models");
    state.models = info.models;
    state.runs = info.runs;
    const toggles = $("#toggles");
    for (const m of info.models) {
      state.enabled.add(m.name);
      const box = el("input", { type: "checkbox", checked: true, value: m.name });
      box.addEventListener("change", () => {
        if (box.checked) state.enabled.add(m.name); else state.enabled.delete(m.name);
        runQuery();
        if (!$("#maps").classList.contains("hidden")) loadMaps(); else state.maps = {};
      });
      toggles.append(el("label", { title: `${m.dim}-d, ${m.images} images, ${m.weights}` }, box,
        document.createTextNode(` ${m.name}`)));
    }
    fillRunSelects($("#drun"), $("#da"), $("#db"), loadDisagreement);
    fillRunSelects($("#rrun"), $("#ra"), $("#rb"), loadRobustness);
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
