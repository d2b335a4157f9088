// Fine-tune panel view. Everything from Python is untrusted text: textContent only, never innerHTML.
const SVG = "http://www.w3.org/2000/svg";

function h(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined && text !== null) el.textContent = String(text);
  return el;
}

function s(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

function num(v, digits = 4) {
  return v === null || v === undefined ? "–" : Number(v).toPrecision(digits);
}

function duration(sec) {
  if (sec === null || sec === undefined) return "–";
  const t = Math.round(sec);
  return t >= 3600 ? `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, "0")}m`
    : `${Math.floor(t / 60)}m${String(t % 60).padStart(2, "0")}s`;
}

// Same wording as progress_text in finetune_panel.py.
function progress(v) {
  const parts = [];
  if (v.step !== null && v.step !== undefined) parts.push(`step ${v.step}${v.total_steps ? "/" + v.total_steps : ""}`);
  if (v.loss !== null && v.loss !== undefined) parts.push(`loss ${num(v.loss)}`);
  if (v.eval_loss !== null && v.eval_loss !== undefined) parts.push(`eval loss ${num(v.eval_loss)}`);
  if (v.tokens_per_s !== null && v.tokens_per_s !== undefined) parts.push(`${Math.round(v.tokens_per_s)} tok/s`);
  if (v.peak_mem_mb !== null && v.peak_mem_mb !== undefined) parts.push(`peak ${Math.round(v.peak_mem_mb)} MB`);
  if (v.eta_s !== null && v.eta_s !== undefined) parts.push(`ETA ${duration(v.eta_s)}`);
  return parts.join(" · ");
}

function curve(v) {
  const train = v.train || [], evals = v.eval || [];
  const all = train.concat(evals);
  if (!all.length) return h("p", "lonb-muted", "no loss reported yet");
  const W = 480, H = 180, L = 44, R = 10, T = 10, B = 24;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => L + ((x - x0) / Math.max(1e-9, x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / Math.max(1e-9, y1 - y0)) * (H - T - B);
  const svg = s("svg", { class: "lonb-ft-curve", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "loss curve" });
  svg.appendChild(s("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
  svg.appendChild(s("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }));
  const label = (x, y, text, anchor) => {
    const t = s("text", { x, y, "font-size": 10, "text-anchor": anchor || "start" });
    t.textContent = text;
    svg.appendChild(t);
  };
  label(L - 4, T + 8, y1.toPrecision(3), "end");
  label(L - 4, H - B, y0.toPrecision(3), "end");
  label(L, H - 8, `step ${x0}`);
  label(W - R, H - 8, String(x1), "end");
  label(W - R, T + 8, "train — eval - -", "end");
  const line = (series, cls, color, dash) => {
    if (!series.length) return;
    const attrs = { class: cls, fill: "none", stroke: color, "stroke-width": 2,
      points: series.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ") };
    if (dash) attrs["stroke-dasharray"] = dash;
    svg.appendChild(s("polyline", attrs));
  };
  line(train, "lonb-ft-train", "#3b6fd8");
  line(evals, "lonb-ft-eval", "#d8703b", "5,3");
  return svg;
}

function samples(v) {
  const box = h("div");
  const rows = v.samples || [];
  if (!rows.length) return box;
  box.appendChild(h("h4", "", `Samples at step ${rows[0].step}`));
  const table = h("table", "lonb-table");
  const head = h("tr");
  for (const c of ["prompt", "expected", "output"]) head.appendChild(h("th", "", c));
  table.appendChild(head);
  for (const r of rows) {
    const tr = h("tr");
    for (const c of [r.prompt, r.expected, r.output]) tr.appendChild(h("td")).appendChild(h("pre", "", c ?? ""));
    table.appendChild(tr);
  }
  box.appendChild(table);
  return box;
}

function render({ model, el }) {
  const root = h("div", "lonb-panel lonb-finetune");
  el.appendChild(root);

  function draw() {
    const v = model.get("view") || {};
    root.replaceChildren();
    const head = h("div", "lonb-head");
    head.appendChild(h("span", "lonb-title", `fine-tune ${v.name}`));
    head.appendChild(h("span", "lonb-badge", `#${v.id}`));
    head.appendChild(h("span", `lonb-status lonb-ft-${String(v.status).replace(/[^a-z]/g, "")}`, v.status));
    head.appendChild(h("span", "lonb-muted", ` ${v.base} → ${v.model} · ${v.method} · ${v.backend}`));
    if (v.active) {
      const button = h("button", "lonb-ft-cancel", "Cancel");
      button.addEventListener("click", () => {
        button.disabled = true;
        button.textContent = "Cancelling…";
        model.send({ type: "cancel" });
      });
      head.appendChild(button);
    }
    root.appendChild(head);
    if (v.total_steps && v.step !== null && v.step !== undefined) {
      const bar = h("div", "lonb-ft-bar");
      const fill = h("div");
      fill.style.width = `${Math.min(100, (100 * v.step) / v.total_steps)}%`;
      bar.appendChild(fill);
      root.appendChild(bar);
    }
    root.appendChild(h("div", "lonb-stats", progress(v)));
    if (v.notice) root.appendChild(h("div", "lonb-error", v.notice));
    if (v.error && (v.status === "failed" || v.status === "cancelled")) root.appendChild(h("div", "lonb-error", v.error));
    root.appendChild(h("h4", "", "Loss"));
    root.appendChild(curve(v));
    root.appendChild(samples(v));
  }

  model.on("change:view", draw);
  draw();
}

export default { render };
