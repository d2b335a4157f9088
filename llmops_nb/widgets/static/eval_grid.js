// Eval grid panel view, drawn from `views.evals.eval_view` data. Python joins
// trace_view.js (h, drawTrace...) in front, so a row's trace opens in the panel.
// Every value from Python is untrusted text: only textContent, never innerHTML.

function fmt(v, digits = 2) {
  return v === null || v === undefined || Number.isNaN(Number(v)) ? "–" : Number(v).toFixed(digits);
}

// Red (0) through yellow (0.5) to green (1); grey for no score (same as eval_grid.py).
function color(v) {
  if (v === null || v === undefined) return "#e5e5e5";
  v = Math.min(1, Math.max(0, Number(v)));
  let r, g, b;
  if (v < 0.5) { r = 230; g = Math.floor(90 + 2 * v * 130); b = 80; }
  else { r = Math.floor(230 - (v - 0.5) * 2 * 150); g = 210 - Math.floor((v - 0.5) * 2 * 30); b = 90; }
  const hex = (x) => x.toString(16).padStart(2, "0");
  return `#${hex(r)}${hex(g)}${hex(b)}`;
}

const MARK = { regression: " ▼", improvement: " ▲" };

function heatmap(d, scorer, selected, onPick) {
  const box = h("div", "lonb-hm");
  box.appendChild(h("div", "lonb-hm-title", scorer));
  const table = h("table", "lonb-hm-table");
  const head = h("tr");
  head.appendChild(h("th", "", ""));
  for (const m of d.models || []) head.appendChild(h("th", "", m));
  table.appendChild(head);
  const cells = new Map((d.cells || []).map((c) => [`${c.prompt}\u001f${c.model}`, c]));
  for (const p of d.prompts || []) {
    const tr = h("tr");
    tr.appendChild(h("th", "lonb-hm-row", p));
    for (const m of d.models || []) {
      const c = cells.get(`${p}\u001f${m}`) || {};
      const value = scorer === "pass_rate" ? c.pass_rate : (c.scores || {})[scorer];
      const flag = ((c.flags || {})[scorer] || {}).flag;
      const td = h("td", `lonb-hm-cell${flag && MARK[flag] ? " lonb-" + flag : ""}`, fmt(value) + (MARK[flag] || ""));
      td.style.background = color(value);
      td.title = `${p} × ${m}: ${scorer} ${fmt(value, 3)}${flag ? " (" + flag + ")" : ""} — click for rows`;
      if (selected && selected.prompt === p && selected.model === m) td.classList.add("lonb-selected");
      td.addEventListener("click", () => onPick(p, m));
      tr.appendChild(td);
    }
    table.appendChild(tr);
  }
  box.appendChild(table);
  return box;
}

function summaryTable(d, onPick) {
  const table = h("table", "lonb-table lonb-grid-summary");
  const head = h("tr");
  const cols = ["prompt", "model", "rows", "errors", ...(d.scorers || []), "pass rate", "p50 ms", "p95 ms", "cache hits · p50 ms", "tokens in / out", "cost"];
  for (const c of cols) head.appendChild(h("th", "", c));
  table.appendChild(head);
  for (const c of d.cells || []) {
    const tr = h("tr", "lonb-clickable");
    tr.addEventListener("click", () => onPick(c.prompt, c.model));
    for (const v of [c.prompt, c.model, c.n, c.errors]) tr.appendChild(h("td", "", v));
    for (const s of d.scorers || []) {
      const flag = ((c.flags || {})[s] || {}).flag;
      tr.appendChild(h("td", flag && MARK[flag] ? `lonb-${flag}` : "", fmt((c.scores || {})[s], 3) + (MARK[flag] || "")));
    }
    tr.appendChild(h("td", "", fmt(c.pass_rate, 3)));
    tr.appendChild(h("td", "", fmt(c.latency_p50_ms, 0)));
    tr.appendChild(h("td", "", fmt(c.latency_p95_ms, 0)));
    tr.appendChild(h("td", "", `${c.cached ?? 0} · ${fmt(c.cached_latency_p50_ms, 0)}`));
    tr.appendChild(h("td", "", `${c.input_tokens ?? 0} / ${c.output_tokens ?? 0}`));
    tr.appendChild(h("td", "", c.cost === null || c.cost === undefined ? "–" : `$${Number(c.cost).toFixed(6)}`));
    table.appendChild(tr);
  }
  return table;
}

// What pass rate counts, shown beside it: every scorer at its threshold.
function passRule(d) {
  const t = Object.entries(d.thresholds || {});
  return t.length ? t.map(([s, v]) => `${s} ≥ ${fmt(v)}`).join(", ") : "no error";
}

function baselineLabel(d) {
  return d.baseline_name ? `${d.baseline_name} #${d.baseline_id}` : `#${d.baseline_id}`;
}

function flagsList(d) {
  const box = h("div");
  if (!d.baseline_id) return box;
  box.appendChild(h("h4", "", `Against baseline ${baselineLabel(d)}`));
  if (d.comparison_error) { box.appendChild(h("div", "lonb-error", d.comparison_error)); return box; }
  const ul = h("ul");
  for (const c of d.cells || []) {
    for (const [s, f] of Object.entries(c.flags || {})) {
      if (!MARK[f.flag]) continue;
      ul.appendChild(h("li", `lonb-${f.flag}`,
        `${f.flag}: ${c.prompt} × ${c.model} ${s} ${fmt(f.baseline, 3)} → ${fmt(f.current, 3)} ` +
        `(Δ ${fmt(f.delta, 3)}, 95% CI [${fmt(f.ci_low, 3)}, ${fmt(f.ci_high, 3)}], p=${fmt(f.p_value, 4)}, n=${f.n_shared})`));
    }
  }
  if (!ul.children.length) box.appendChild(h("p", "lonb-muted", "no significant change (paired bootstrap 95% CI and permutation test)"));
  else box.appendChild(ul);
  return box;
}

function rowsView(d, selected, onTrace) {
  const box = h("div", "lonb-rows");
  box.appendChild(h("h4", "", `Rows: ${selected.prompt} × ${selected.model}`));
  if (!selected.rows) { box.appendChild(h("p", "lonb-muted", "loading…")); return box; }
  if (!selected.rows.length) { box.appendChild(h("p", "lonb-muted", "no rows stored yet")); return box; }
  const table = h("table", "lonb-table");
  const head = h("tr");
  for (const c of ["#", "input", "expected", "output", "scores", "latency", "trace"]) head.appendChild(h("th", "", c));
  table.appendChild(head);
  for (const r of selected.rows) {
    const tr = h("tr", r.passed ? "lonb-pass" : "lonb-fail");
    tr.appendChild(h("td", "", r.row));
    tr.appendChild(h("td", "", "")).appendChild(h("pre", "", r.input));
    tr.appendChild(h("td", "", "")).appendChild(h("pre", "", r.expected ?? ""));
    const out = h("td");
    out.appendChild(h("pre", r.error ? "lonb-error" : "", r.error ?? r.output ?? ""));
    tr.appendChild(out);
    const sc = h("td");
    for (const [s, v] of Object.entries(r.scores || {})) {
      const line = h("div", "", `${s}: ${fmt(v)}`);
      if ((r.reasons || {})[s]) line.title = r.reasons[s];
      sc.appendChild(line);
      if ((r.reasons || {})[s]) sc.appendChild(h("div", "lonb-muted lonb-reason", r.reasons[s]));
    }
    tr.appendChild(sc);
    tr.appendChild(h("td", "", r.latency_ms === null ? "–" : `${fmt(r.latency_ms, 0)} ms${r.cached ? " (cached)" : ""}`));
    const tc = h("td");
    if (r.trace_id) {
      const link = h("a", "lonb-trace", String(r.trace_id).slice(0, 12));
      link.href = `#trace-${r.trace_id}`;
      link.title = "open the trace viewer";
      link.addEventListener("click", (event) => { event.preventDefault(); onTrace(r.trace_id); });
      tc.appendChild(link);
    }
    tr.appendChild(tc);
    table.appendChild(tr);
  }
  box.appendChild(table);
  return box;
}

function traceBox(opened, redraw) {
  const box = h("div", "lonb-trace-box");
  const bar = h("div", "lonb-head");
  bar.appendChild(h("span", "lonb-title", `Trace ${String(opened.id).slice(0, 12)}`));
  const close = h("button", "", "Close");
  close.addEventListener("click", () => redraw(null));
  bar.appendChild(close);
  box.appendChild(bar);
  if (opened.error) { box.appendChild(h("div", "lonb-error", opened.error)); return box; }
  if (!opened.trace) { box.appendChild(h("p", "lonb-muted", "loading…")); return box; }
  const panel = h("div", "lotv-panel");
  drawTrace(panel, opened.trace, opened.state, () => redraw(opened));
  box.appendChild(panel);
  return box;
}

function render({ model, el }) {
  let selected = null;
  let opened = null; // the row trace shown: {id, trace, error, state}
  const root = h("div", "lonb-panel lonb-eval-grid");
  el.appendChild(root);

  function openTrace(traceId) {
    opened = { id: traceId, trace: null, error: null, state: { selected: null } };
    model.send({ type: "trace", trace_id: traceId });
    draw();
  }

  function pick(prompt, modelLabel) {
    selected = { prompt, model: modelLabel, rows: null };
    model.send({ type: "rows", prompt, model: modelLabel });
    draw();
  }

  function draw() {
    const d = model.get("data") || {};
    root.replaceChildren();
    const head = h("div", "lonb-head");
    head.appendChild(h("span", "lonb-title", `eval ${d.name}`));
    head.appendChild(h("span", "lonb-badge", `#${d.id}`));
    head.appendChild(h("span", `lonb-status lonb-status-${String(d.status).replace(/[^a-z]/g, "")}`, d.status));
    const dataInfo = d.data && d.data.name ? ` · data ${d.data.name} v${d.data.version ?? "?"}` : "";
    head.appendChild(h("span", "lonb-muted", ` ${d.done}/${d.n_cells} cells${d.baseline_id ? " · baseline " + baselineLabel(d) : ""}${dataInfo}`));
    root.appendChild(head);
    const maps = h("div", "lonb-heatmaps");
    const scorers = (d.scorers || []).length ? d.scorers : ["pass_rate"];
    for (const s of scorers) maps.appendChild(heatmap(d, s, selected, pick));
    root.appendChild(maps);
    root.appendChild(h("h4", "", "Summary"));
    root.appendChild(summaryTable(d, pick));
    root.appendChild(h("p", "lonb-muted lonb-pass-rule", `pass rate: rows where ${passRule(d)}; latency of real calls, cache hits apart`));
    root.appendChild(flagsList(d));
    if (selected) root.appendChild(rowsView(d, selected, openTrace));
    else root.appendChild(h("p", "lonb-muted", "click a cell to see its rows"));
    if (opened) root.appendChild(traceBox(opened, (next) => { opened = next; draw(); }));
  }

  model.on("change:data", draw);
  model.on("msg:custom", (msg) => {
    if (msg && msg.type === "rows" && selected && msg.prompt === selected.prompt && msg.model === selected.model) {
      selected.rows = msg.rows || [];
      draw();
    } else if (msg && (msg.type === "trace" || msg.type === "trace_error") && opened && msg.trace_id === opened.id) {
      opened.trace = msg.trace || null;
      opened.error = msg.type === "trace_error" ? String(msg.message || "no trace") : null;
      draw();
    }
  });
  draw();
}

export default { render };
