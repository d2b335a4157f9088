// Trace viewer. Every value from Python (model output above all) is untrusted text:
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
    fmtMs(data.latency_ms),
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
  const total = Number(data.total_ms || data.latency_ms || 1e-6) || 1e-6;
  for (const s of data.spans || []) {
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

function feedbackView(model, data, state) {
  const box = h("div", "lotv-section");
  box.appendChild(h("h5", "", "feedback"));
  const list = h("ul");
  for (const f of data.feedback || []) {
    const li = h("li", "", `${f.score > 0 ? "👍" : "👎"} ${f.comment || ""}`);
    li.appendChild(h("span", "lotv-muted", ` ${f.author || ""}`));
    list.appendChild(li);
  }
  if ((data.feedback || []).length) box.appendChild(list);
  const bar = h("div", "lotv-feedback");
  const up = h("button", state.score === 1 ? "lotv-chosen" : "", "👍");
  up.title = "thumbs up";
  const down = h("button", state.score === -1 ? "lotv-chosen" : "", "👎");
  down.title = "thumbs down";
  const comment = h("textarea");
  comment.placeholder = "comment (optional)";
  comment.value = state.comment || "";
  const send = h("button", "", "Send");
  const note = h("span", "lotv-muted", state.note || "");
  up.addEventListener("click", () => {
    state.score = 1;
    up.className = "lotv-chosen";
    down.className = "";
  });
  down.addEventListener("click", () => {
    state.score = -1;
    down.className = "lotv-chosen";
    up.className = "";
  });
  comment.addEventListener("input", () => {
    state.comment = comment.value;
  });
  send.addEventListener("click", () => {
    if (state.score !== 1 && state.score !== -1) {
      note.textContent = "choose 👍 or 👎 first";
      return;
    }
    note.textContent = "saving…";
    model.send({ type: "feedback", score: state.score, comment: comment.value || null });
  });
  for (const el of [up, down, comment, send, note]) bar.appendChild(el);
  box.appendChild(bar);
  return box;
}

function render({ model, el }) {
  const state = { selected: null, score: null, comment: "", note: "" };
  const root = h("div", "lotv-panel");
  el.appendChild(root);

  function draw() {
    const data = model.get("data") || {};
    const spans = data.spans || [];
    if (!spans.some((s) => s.id === state.selected)) {
      const llm = spans.find((s) => s.kind === "llm");
      state.selected = (spans.find((s) => s.status === "error") || llm || spans[0] || {}).id || null;
    }
    root.replaceChildren();
    root.appendChild(header(data));
    root.appendChild(
      spanTable(data, state.selected, (id) => {
        state.selected = id;
        draw();
      }),
    );
    root.appendChild(spanDetail(spans.find((s) => s.id === state.selected)));
    root.appendChild(feedbackView(model, data, state));
  }

  function onMessage(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "feedback_saved") {
      state.score = null;
      state.comment = "";
      state.note = "saved";
      draw();
    } else if (msg.type === "feedback_error") {
      state.note = String(msg.message || "could not save");
      draw();
    }
  }

  model.on("change:data", draw);
  model.on("msg:custom", onMessage);
  draw();
  return () => {
    model.off("change:data", draw);
    model.off("msg:custom", onMessage);
  };
}

export default { render };
