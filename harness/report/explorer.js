// Per-sample explorer of report.html. Inlined into the page by harness/report/html.py.
// Model output is untrusted: every text from the data goes into the page through textContent or
// text nodes (el() below), never innerHTML. Sample texts sit in report_files/samples/<n>.js, loaded
// by a <script> tag when a row is opened (fetch() of file:// URLs is blocked in Chromium).
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("harness-data").textContent);
  const $ = (s, root) => (root || document).querySelector(s);
  const $$ = (s, root) => Array.from((root || document).querySelectorAll(s));
  const OUTCOMES = ["both", "only_candidate", "only_baseline", "neither"];

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "class") e.className = v;
      else if (k === "onclick") e.addEventListener("click", v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);  // strings become text nodes
    return e;
  }
  const fmt = (x) => (x === null || x === undefined ? "—" : Math.round(x).toLocaleString("en-US"));
  const signed = (x) => (x === null || x === undefined ? "—" : (x > 0 ? "+" : "") + Math.round(x).toLocaleString("en-US"));
  const label = (b) => D.labels[b] || b;

  const state = { comp: 0, bench: "", outcome: "", cat: "", trunc: "", q: "", sort: "item", open: null };

  function outcomeLabel(o, comp) {
    const c = D.comparisons[comp];
    return { both: "both right", only_candidate: "only " + c.candidate + " right",
             only_baseline: "only " + c.baseline + " right", neither: "both wrong" }[o] || o;
  }

  // ---- rows ----------------------------------------------------------------------------------
  const tbody = $("#explorer-rows");
  const rows = D.rows.map(([ci, ii, outcome], order) => {
    const comp = D.comparisons[ci];
    const item = D.items[ii];
    const cs = D.stats[comp.candidate][ii];
    const bs = D.stats[comp.baseline][ii];
    const proto = comp.benchmarks[item.b].protocol;
    const pi = D.protocols.indexOf(proto);
    const delta = cs.r !== null && bs.r !== null ? cs.r - bs.r : null;
    const trunc = [cs.t > 0, bs.t > 0];
    const score = (s) => s.ok[pi] + "/" + s.n[pi];
    const tr = el("tr", { "data-sample": item.b + ":" + item.i, "data-benchmark": item.b, "data-outcome": outcome,
                          "data-comparison": comp.candidate, tabindex: "0" },
      el("td", { text: label(item.b) }), el("td", { class: "mono", text: item.i }),
      el("td", { class: "cat", text: item.c.join(", "), title: item.c.join(", ") }),
      el("td", {}, el("span", { class: "badge o-" + outcome, text: outcomeLabel(outcome, ci) })),
      el("td", { class: "num", text: score(cs) }), el("td", { class: "num", text: score(bs) }),
      el("td", { class: "num", text: fmt(cs.r) }), el("td", { class: "num", text: fmt(bs.r) }),
      el("td", { class: "num", text: signed(delta) }),
      el("td", { text: (trunc[0] ? "C" : "") + (trunc[0] && trunc[1] ? " " : "") + (trunc[1] ? "B" : ""),
                 title: "truncated (finish_reason length or unclosed <think>): C candidate, B baseline" }),
      el("td", { class: "head", text: item.p.slice(0, 140) }));
    const row = { tr, ci, ii, item, outcome, delta, trunc, order,
                  text: (item.i + "\n" + item.p + "\n" + (item.g || "") + "\n" + item.c.join(" ")).toLowerCase() };
    tr.addEventListener("click", () => openRow(row));
    tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openRow(row); });
    return row;
  });

  function matches(r, ignoreOutcome) {
    if (r.ci !== state.comp) return false;
    if (state.bench && r.item.b !== state.bench) return false;
    if (state.cat && !r.item.c.includes(state.cat)) return false;
    if (state.trunc === "any" && !(r.trunc[0] || r.trunc[1])) return false;
    if (state.trunc === "candidate" && !r.trunc[0]) return false;
    if (state.trunc === "baseline" && !r.trunc[1]) return false;
    if (state.trunc === "none" && (r.trunc[0] || r.trunc[1])) return false;
    if (state.q && !r.text.includes(state.q)) return false;
    return ignoreOutcome || !state.outcome || r.outcome === state.outcome;
  }

  function sortRows() {
    const key = {
      item: (r) => r.order,
      delta_desc: (r) => (r.delta === null ? Infinity : -r.delta),
      delta_asc: (r) => (r.delta === null ? Infinity : r.delta),
      delta_abs: (r) => (r.delta === null ? Infinity : -Math.abs(r.delta)),
    }[state.sort];
    const sorted = rows.slice().sort((a, b) => key(a) - key(b) || a.order - b.order);
    tbody.replaceChildren(...sorted.map((r) => r.tr));
  }

  function apply() {
    const counts = { "": 0 };
    OUTCOMES.forEach((o) => (counts[o] = 0));
    let shown = 0;
    for (const r of rows) {
      if (matches(r, true)) { counts[r.outcome] += 1; counts[""] += 1; }
      const vis = matches(r, false);
      r.tr.hidden = !vis;
      shown += vis;
    }
    for (const b of $$("[data-filter-outcome]")) {
      const o = b.getAttribute("data-filter-outcome");
      b.textContent = (o ? outcomeLabel(o, state.comp) : "all outcomes") + " (" + counts[o] + ")";
      b.setAttribute("aria-pressed", String(o === state.outcome));
    }
    for (const b of $$("[data-filter-benchmark]")) {
      const key = b.getAttribute("data-filter-benchmark");
      const n = rows.filter((r) => r.ci === state.comp && (!key || r.item.b === key)).length;
      b.textContent = (key ? label(key) : "all benchmarks") + " (" + n + ")";
      b.setAttribute("aria-pressed", String(key === state.bench));
      b.disabled = n === 0 && key !== "";
    }
    $("#explorer-count").textContent = shown + " of " + rows.filter((r) => r.ci === state.comp).length + " paired items shown";
  }

  function fillCategories() {
    const sel = $("[data-filter-category]");
    const cats = new Set();
    for (const r of rows) if (r.ci === state.comp && (!state.bench || r.item.b === state.bench)) r.item.c.forEach((c) => cats.add(c));
    if (!cats.has(state.cat)) state.cat = "";
    sel.replaceChildren(el("option", { value: "", text: "all categories" }),
      ...Array.from(cats).sort().map((c) => el("option", { value: c, text: c, selected: c === state.cat })));
  }

  function protocolNote() {
    const c = D.comparisons[state.comp];
    const parts = Object.entries(c.benchmarks).map(([b, v]) => label(b) + ": " + v.protocol);
    $("#explorer-protocols").textContent = "Outcome = McNemar cell under each benchmark's primary protocol (" +
      parts.join("; ") + "), on each model's majority vote when items were repeated.";
  }

  // ---- controls ------------------------------------------------------------------------------
  for (const b of $$("[data-filter-benchmark]")) b.addEventListener("click", () => {
    state.bench = b.getAttribute("data-filter-benchmark"); fillCategories(); apply(); });
  for (const b of $$("[data-filter-outcome]")) b.addEventListener("click", () => {
    state.outcome = b.getAttribute("data-filter-outcome"); apply(); });
  $("[data-filter-comparison]").addEventListener("change", (ev) => {
    state.comp = Number(ev.target.value); fillCategories(); protocolNote(); apply(); });
  $("[data-filter-category]").addEventListener("change", (ev) => { state.cat = ev.target.value; apply(); });
  $("[data-filter-truncation]").addEventListener("change", (ev) => { state.trunc = ev.target.value; apply(); });
  $("[data-filter-search]").addEventListener("input", (ev) => { state.q = ev.target.value.trim().toLowerCase(); apply(); });
  $("[data-sort]").addEventListener("change", (ev) => { state.sort = ev.target.value; sortRows(); });

  // ---- sample texts (sidecar scripts) ---------------------------------------------------------
  const pending = new Map();
  window.harnessSample = function (idx, data) {
    const p = pending.get(idx);
    if (p) p.resolve(data);
  };
  function loadSample(idx) {
    if (!pending.has(idx)) {
      let resolve, reject;
      const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
      pending.set(idx, { promise, resolve, reject });
      const src = D.sidecar_dir + "/" + idx + ".js";
      const s = el("script", { src });
      s.addEventListener("error", () => {
        pending.delete(idx);
        reject(new Error("could not load " + src + " (copy report_files/ together with report.html)"));
      });
      document.head.append(s);
    }
    return pending.get(idx).promise;
  }

  // ---- detail --------------------------------------------------------------------------------
  const detail = $("[data-detail]");
  function openRow(row) {
    if (state.open) state.open.tr.removeAttribute("aria-selected");
    state.open = row;
    row.tr.setAttribute("aria-selected", "true");
    detail.hidden = false;
    detail.scrollTop = 0;
    detail.replaceChildren(el("p", { class: "muted", text: "loading " + row.item.b + ":" + row.item.i + " …" }));
    loadSample(row.item.s).then((data) => { if (state.open === row) renderDetail(row, data); },
                                (err) => { if (state.open === row) detail.replaceChildren(el("p", { class: "error", text: err.message })); });
  }

  function yesNo(v) { return v === true ? "right" : v === false ? "wrong" : "—"; }

  function modelPanel(model, role, recs, proto) {
    const box = el("div", { class: "model", "data-model": model });
    box.append(el("h4", { text: model + " (" + role + ")" }));
    if (!recs.length) { box.append(el("p", { class: "muted", text: "no generation for this item" })); return box; }
    const body = el("div", { class: "repeat" });
    const grid = el("table", { class: "grid", title: "one cell per repeat: right / wrong under each protocol" });
    for (const p of D.protocols) {
      const tr = el("tr", {}, el("th", { text: p + (p === proto ? " (primary)" : "") }));
      recs.forEach((r, k) => {
        const v = r.scores[p];
        tr.append(el("td", {}, el("button", { class: "cell " + (v === true ? "ok" : v === false ? "bad" : "na"),
          title: "repeat " + r.repeat + ": " + yesNo(v), text: v === true ? "✓" : v === false ? "✗" : "–",
          onclick: () => show(k) })));
      });
      grid.append(tr);
    }
    box.append(grid);
    box.append(body);
    function show(k) {
      const r = recs[k];
      const reasoning = el("pre", { class: "reasoning" });
      const det = el("details", {}, el("summary", { text: "reasoning (" + fmt(r.reasoning.length) + " characters" +
        (r.think_closed ? "" : ", <think> never closed") + ")" }), reasoning);
      det.addEventListener("toggle", () => { if (det.open && !reasoning.textContent) reasoning.textContent = r.reasoning; });
      const meta = el("dl", { class: "meta" });
      const add = (k2, v) => meta.append(el("dt", { text: k2 }), el("dd", { text: v === null || v === undefined || v === "" ? "—" : String(v) }));
      add("repeat", r.repeat + (recs.length > 1 ? " of " + recs.length : "") + (r.seed !== null && r.seed !== undefined ? " (seed " + r.seed + ")" : ""));
      for (const p of D.protocols) add("score, " + p, yesNo(r.scores[p]));
      add("finish_reason", r.finish_reason);
      add("tokens (prompt / completion)", (r.prompt_tokens ?? "—") + " / " + (r.completion_tokens ?? "—"));
      add("latency", r.latency_s === null || r.latency_s === undefined ? null : r.latency_s.toFixed(2) + " s");
      add("request_hash", r.request_hash);
      add("text from", r.source + (r.cache_hit ? " (proxy cache hit)" : ""));
      const parts = [el("h5", { text: "Answer" + (recs.length > 1 ? " (repeat " + r.repeat + ")" : "") }),
                     el("pre", { class: "answer", text: r.answer || "" })];
      if (!r.answer) parts.push(el("p", { class: "muted", text: "(empty answer)" }));
      if (r.prompt) parts.push(el("h5", { text: "Prompt sent to this model" }), el("pre", { class: "prompt", text: r.prompt }));
      body.replaceChildren(...parts, det, meta);
    }
    show(0);
    return box;
  }

  function renderDetail(row, data) {
    const comp = D.comparisons[row.ci];
    const proto = comp.benchmarks[row.item.b].protocol;
    detail.replaceChildren(
      el("h3", { text: label(row.item.b) + " · " + row.item.i }),
      el("p", {}, el("span", { class: "badge o-" + row.outcome, text: outcomeLabel(row.outcome, row.ci) }),
         " under " + proto + (row.item.c.length ? " · " + row.item.c.join(", ") : "")),
      el("h4", { text: "Prompt" }), el("pre", { class: "prompt", text: data.prompt }),
      el("h4", { text: "Gold" }), el("pre", { class: "gold", text: data.gold === null ? "(scored by the benchmark's tests)" : data.gold }),
      el("div", { class: "models" },
        modelPanel(comp.candidate, "candidate", data.models[comp.candidate] || [], proto),
        modelPanel(comp.baseline, "baseline", data.models[comp.baseline] || [], proto)));
  }

  // ---- start ---------------------------------------------------------------------------------
  $("[data-filter-comparison]").value = "0";
  fillCategories();
  protocolNote();
  sortRows();
  apply();
  document.body.setAttribute("data-rows-ready", "");
  window.harnessRowsReadyMs = performance.now();  // ms since navigation start: rows are in the DOM
  // The frame after next: the rows have been laid out and painted (what a reader waits for).
  requestAnimationFrame(() => requestAnimationFrame(() => {
    window.harnessRowsPaintedMs = performance.now();
    document.body.setAttribute("data-rows-painted", "");
  }));
})();
