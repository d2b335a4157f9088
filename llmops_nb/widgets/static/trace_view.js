// The trace view, drawn from `views.traces.trace_view` data; shared by the trace viewer
// and the eval grid (which shows a row's trace). Python joins this file in front of each
// widget's module. Every value from Python (model output above all) is untrusted text:
// the DOM is built with createElement + textContent only, never innerHTML.

function h(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined && text !== null) el.textContent = String(text);
  return el;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "";
  const v = Number(ms);
  if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
  if (v >= 1) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(3)} ms`;
}

// The span tree, depth-first: the order the waterfall lists it.
function flatSpans(data) {
  const out = [];
  const stack = [...(data.spans || [])].reverse();
  while (stack.length) {
    const s = stack.pop();
    out.push(s);
    stack.push(...[...(s.children || [])].reverse());
  }
  return out;
}

// A thumb drawn as SVG (emoji render as blank boxes without an emoji font).
function thumbIcon(up) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M2 7h3v8H2zM6 7l3-6c1.2 0 2 .9 2 2v3h3.2c.9 0 1.5.8 1.3 1.7l-1.2 5.6c-.2.7-.8 1.2-1.5 1.2H6z");
  path.setAttribute("fill", "currentColor");
  if (!up) path.setAttribute("transform", "rotate(180 8 8)");
  svg.appendChild(path);
  return svg;
}

function thumbButton(up, chosen) {
  const b = h("button", `lotv-thumb${chosen ? " lotv-chosen" : ""}`);
  b.appendChild(thumbIcon(up));
  b.appendChild(document.createTextNode(up ? " Good" : " Bad"));
  b.title = up ? "thumbs up" : "thumbs down";
  b.setAttribute("aria-label", b.title);
  return b;
}

function fmtCost(c) {
  return c ? `$${Number(c).toFixed(6)}` : "";
}

function kindClass(kind) {
  return String(kind || "chain").toLowerCase().replace(/[^a-z0-9]/g, "") || "chain";
}

function pre(text) {
  return h("pre", "", text);
}

function jsonText(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch (e) {
    return String(value);
  }
}

function messageView(m) {
  const box = h("div", "lotv-msg");
  if (m === null || typeof m !== "object") {
    box.appendChild(pre(jsonText(m)));
    return box;
  }
  box.appendChild(h("span", "lotv-role", m.role || ""));
  box.appendChild(pre(typeof m.content === "string" ? m.content : jsonText(m.content)));
  if (m.tool_calls) box.appendChild(pre(jsonText(m.tool_calls)));
  return box;
}

function valueView(value) {
  if (value === null || value === undefined) return h("span", "lotv-muted", "—");
  if (typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && Array.isArray(value.messages)) {
      const box = h("div");
      for (const m of value.messages) box.appendChild(messageView(m));
      return box;
    }
    if ("role" in value && "content" in value) return messageView(value);
  }
  return pre(jsonText(value));
}

function header(data) {
  const box = h("div");
  const head = h("div", "lotv-head");
  head.appendChild(h("span", "lotv-title", data.name));
  const status = data.status === "error" ? "error" : "ok";
  head.appendChild(h("span", `lotv-status lotv-status-${status}`, data.status));
  head.appendChild(h("span", "lotv-muted lotv-id", data.id));
  box.appendChild(head);
  const stats = [
    fmtMs(data.duration_ms),
    `${data.n_spans || 0} spans`,
    `${data.input_tokens || 0} in / ${data.output_tokens || 0} out tokens`,
    fmtCost(data.cost),
    data.start || "",
  ].filter(Boolean);
  box.appendChild(h("div", "lotv-stats", stats.join(" · ")));
  if (data.error) box.appendChild(h("div", "lotv-error", data.error));
  return box;
}

function spanTable(data, selectedId, onSelect) {
  const table = h("table", "lotv-table");
  const head = h("tr");
  for (const t of ["span", "kind", "timeline", "duration", "tokens in/out", "cost"]) {
    head.appendChild(h("th", "", t));
  }
  table.appendChild(head);
  const spans = flatSpans(data);
  const total = Math.max(Number(data.duration_ms || 0), ...spans.map((s) => Number(s.offset_ms || 0) + Number(s.duration_ms || 0)), 1e-6);
  for (const s of spans) {
    const err = s.status === "error";
    const row = h("tr", `lotv-row${err ? " lotv-row-error" : ""}${s.id === selectedId ? " lotv-selected" : ""}`);
    const name = h("td", "lotv-name", s.name);
    name.style.paddingLeft = `${8 + 14 * Number(s.depth || 0)}px`;
    name.title = s.name;
    row.appendChild(name);
    const kindCell = h("td");
    kindCell.appendChild(h("span", `lotv-kind lotv-kind-${kindClass(s.kind)}`, s.kind));
    row.appendChild(kindCell);
    const wf = h("td", "lotv-wf");
    const track = h("div", "lotv-track");
    const bar = h("div", `lotv-bar${err ? " lotv-bar-error" : ""}`);
    const left = Math.max(0, Math.min(100, (100 * Number(s.offset_ms || 0)) / total));
    const width = Math.max(0.3, Math.min(100 - left, (100 * Number(s.duration_ms || 0)) / total));
    bar.style.marginLeft = `${left.toFixed(2)}%`;
    bar.style.width = `${width.toFixed(2)}%`;
    bar.title = `${fmtMs(s.offset_ms)} + ${fmtMs(s.duration_ms)}`;
    track.appendChild(bar);
    wf.appendChild(track);
    row.appendChild(wf);
    row.appendChild(h("td", "lotv-num", fmtMs(s.duration_ms)));
    const hasTokens = s.input_tokens !== null && s.input_tokens !== undefined;
    row.appendChild(h("td", "lotv-num", hasTokens ? `${s.input_tokens || 0}/${s.output_tokens || 0}` : ""));
    row.appendChild(h("td", "lotv-num", fmtCost(s.cost)));
    row.addEventListener("click", () => onSelect(s.id));
    table.appendChild(row);
  }
  return table;
}

function spanDetail(s) {
  const box = h("div", "lotv-detail");
  if (!s) return box;
  const head = h("div", "lotv-head");
  head.appendChild(h("span", "lotv-title", s.name));
  head.appendChild(h("span", `lotv-kind lotv-kind-${kindClass(s.kind)}`, s.kind));
  head.appendChild(h("span", "lotv-muted", [fmtMs(s.duration_ms), s.model || "", fmtCost(s.cost)].filter(Boolean).join(" · ")));
  box.appendChild(head);
  if (s.error) box.appendChild(h("div", "lotv-error", s.error));
  for (const [label, value] of [["inputs", s.inputs], ["outputs", s.outputs]]) {
    const sec = h("div", "lotv-section");
    sec.appendChild(h("h5", "", label));
    sec.appendChild(valueView(value));
    box.appendChild(sec);
  }
  const attrs = s.attributes || {};
  const keys = Object.keys(attrs).sort();
  if (keys.length) {
    const sec = h("div", "lotv-section");
    sec.appendChild(h("h5", "", "attributes"));
    const t = h("table", "lotv-attrs");
    for (const k of keys) {
      const tr = h("tr");
      tr.appendChild(h("td", "", k));
      const td = h("td");
      td.appendChild(pre(jsonText(attrs[k])));
      tr.appendChild(td);
      t.appendChild(tr);
    }
    sec.appendChild(t);
    box.appendChild(sec);
  }
  return box;
}

function feedbackView(send, data, state) {
  const box = h("div", "lotv-section");
  box.appendChild(h("h5", "", "feedback"));
  const list = h("ul");
  for (const f of data.feedback || []) {
    const li = h("li");
    li.appendChild(h("span", f.score > 0 ? "lotv-fb-up" : "lotv-fb-down", f.score > 0 ? "▲ good" : "▼ bad"));
    li.appendChild(document.createTextNode(` ${f.comment || ""}`));
    li.appendChild(h("span", "lotv-muted", ` ${f.author || ""}`));
    list.appendChild(li);
  }
  if ((data.feedback || []).length) box.appendChild(list);
  const bar = h("div", "lotv-feedback");
  const up = thumbButton(true, state.score === 1);
  const down = thumbButton(false, state.score === -1);
  const comment = h("textarea");
  comment.placeholder = "comment (optional)";
  comment.value = state.comment || "";
  const submit = h("button", "", "Send");
  const note = h("span", "lotv-muted", state.note || "");
  up.addEventListener("click", () => {
    state.score = 1;
    up.classList.add("lotv-chosen");
    down.classList.remove("lotv-chosen");
  });
  down.addEventListener("click", () => {
    state.score = -1;
    down.classList.add("lotv-chosen");
    up.classList.remove("lotv-chosen");
  });
  comment.addEventListener("input", () => {
    state.comment = comment.value;
  });
  submit.addEventListener("click", () => {
    if (state.score !== 1 && state.score !== -1) {
      note.textContent = "choose Good or Bad first";
      return;
    }
    note.textContent = "saving…";
    send({ type: "feedback", score: state.score, comment: comment.value || null });
  });
  for (const el of [up, down, comment, submit, note]) bar.appendChild(el);
  box.appendChild(bar);
  return box;
}

// Draw one trace into ROOT; `send` carries feedback to Python (omit it: no feedback bar).
function drawTrace(root, data, state, redraw, send) {
  const spans = flatSpans(data);
  if (!spans.some((s) => s.id === state.selected)) {
    const llm = spans.find((s) => s.kind === "llm");
    state.selected = (spans.find((s) => s.status === "error") || llm || spans[0] || {}).id || null;
  }
  root.replaceChildren();
  root.appendChild(header(data));
  root.appendChild(
    spanTable(data, state.selected, (id) => {
      state.selected = id;
      redraw();
    }),
  );
  root.appendChild(spanDetail(spans.find((s) => s.id === state.selected)));
  if (send) root.appendChild(feedbackView(send, data, state));
}
