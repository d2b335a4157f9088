// Ops dashboard view. Text from Python is untrusted: textContent only. The charts are SVG
// that Python rendered and sanitized (charts.svg); they are parsed as SVG, never as HTML.
const COLUMNS = [
  ["calls", "calls", "count"], ["errors", "errors", "count"], ["error_rate", "error rate", "percent"],
  ["p50_ms", "p50", "ms"], ["p95_ms", "p95", "ms"], ["input_tokens", "tokens in", "count"],
  ["output_tokens", "tokens out", "count"], ["cost", "cost", "usd"], ["cache_hit_rate", "cache hits", "percent"],
];

function h(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined && text !== null) el.textContent = String(text);
  return el;
}

// Same rule as format_value in dashboard.py.
function fmt(v, kind) {
  if (v === null || v === undefined) return "–";
  if (kind === "percent") return `${(v * 100).toFixed(1)}%`;
  if (kind === "ms") return `${Math.round(v)} ms`;
  if (kind === "usd") return `$${Number(v).toFixed(4)}`;
  return String(v);
}

function draw(el, view, charts) {
  const section = (view.sections || []).find((s) => s.id === "dashboard") || {};
  const root = h("div", "lonb-panel lonb-ops");
  const head = h("div", "lonb-head");
  head.append(h("span", "lonb-title", "Ops dashboard"), " ", h("span", "lonb-badge", view.project),
    h("span", "lonb-muted", ` ${section.since} → ${section.until} · every ${section.every} · by ${section.by}`));
  root.appendChild(head);
  const totals = section.totals || [];
  if (!totals.length) {
    root.appendChild(h("p", "lonb-muted", "no LLM calls in this range"));
  } else {
    const table = h("table", "lonb-table lonb-ops-totals");
    const tr = h("tr");
    tr.appendChild(h("th", "", section.by));
    for (const [, title] of COLUMNS) tr.appendChild(h("th", "", title));
    table.appendChild(tr);
    for (const row of totals) {
      const r = h("tr");
      r.dataset.group = row.group;
      r.appendChild(h("td", "", row.group));
      for (const [key, , kind] of COLUMNS) {
        const td = h("td", "", fmt(row[key], kind));
        td.dataset.key = key;
        r.appendChild(td);
      }
      table.appendChild(r);
    }
    root.appendChild(table);
  }
  for (const text of charts || []) {
    const doc = new DOMParser().parseFromString(text, "image/svg+xml");
    const box = h("div", "lonb-ops-chart");
    if (doc.documentElement && doc.documentElement.nodeName === "svg") {
      box.appendChild(document.importNode(doc.documentElement, true));
    }
    root.appendChild(box);
  }
  for (const other of (view.sections || []).filter((s) => s.id !== "dashboard")) {
    root.appendChild(h("h4", "", other.title));
    const rows = other.rows || [], columns = other.columns || [];
    if (!rows.length) {
      root.appendChild(h("p", "lonb-muted", other.empty));
      continue;
    }
    const table = h("table", `lonb-table lonb-ops-${other.id}`);
    const tr = h("tr");
    for (const c of columns) tr.appendChild(h("th", "", c.title));
    table.appendChild(tr);
    for (const row of rows) {
      const r = h("tr");
      for (const c of columns) r.appendChild(h("td", "", row[c.key] ?? "–"));
      table.appendChild(r);
    }
    root.appendChild(table);
  }
  el.replaceChildren(root);
}

function render({ model, el }) {
  const update = () => draw(el, model.get("view") || {}, model.get("charts") || []);
  model.on("change:view", update);
  model.on("change:charts", update);
  update();
}

export default { render };
