// Prompt panel view. Every value from Python is untrusted text: only textContent, never innerHTML.

function h(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined && text !== null) el.textContent = String(text);
  return el;
}

function diffView(diff) {
  if (!diff) return h("p", "lonb-muted", "nothing to compare");
  const pre = h("pre", "lonb-diff");
  for (const line of diff.split("\n")) {
    let cls = "";
    if (line.startsWith("+++") || line.startsWith("---")) cls = "lonb-diff-file";
    else if (line.startsWith("@@")) cls = "lonb-diff-hunk";
    else if (line.startsWith("+")) cls = "lonb-diff-add";
    else if (line.startsWith("-")) cls = "lonb-diff-del";
    pre.appendChild(h("div", cls, line || "\u00a0"));
  }
  return pre;
}

function messagesView(messages) {
  const box = h("div");
  for (const m of messages || []) {
    const row = h("div", `lonb-msg lonb-role-${String(m.role).replace(/[^a-z]/g, "")}`);
    row.appendChild(h("span", "lonb-role", m.role));
    row.appendChild(h("pre", "", m.content));
    box.appendChild(row);
  }
  return box;
}

function responseView(r) {
  const box = h("div");
  if (r.error) {
    box.appendChild(h("div", "lonb-error", r.error));
    return box;
  }
  const stats = [];
  if (r.latency_ms != null) stats.push(`${Math.round(r.latency_ms)} ms`);
  stats.push(`${r.input_tokens || 0} in / ${r.output_tokens || 0} out tokens`);
  if (r.cost != null) stats.push(`$${Number(r.cost).toFixed(6)}`);
  if (r.cached) stats.push("cached");
  if (r.trace_id) stats.push(`trace ${String(r.trace_id).slice(0, 12)}`);
  box.appendChild(h("div", "lonb-stats", `${r.model || ""} · ${stats.join(" · ")}`));
  box.appendChild(h("pre", "lonb-output", r.text));
  return box;
}

function historyView(d, onCompare) {
  const table = h("table", "lonb-table");
  const head = h("tr");
  for (const c of ["version", "hash", "author", "created", "message", ""]) head.appendChild(h("th", "", c));
  table.appendChild(head);
  for (const v of d.history || []) {
    const tr = h("tr");
    for (const c of [`v${v.version}`, v.hash, v.author, v.created, v.message]) tr.appendChild(h("td", "", c));
    const td = h("td");
    if (v.version !== d.version) {
      const b = h("button", "", `diff v${v.version}`);
      b.addEventListener("click", () => onCompare(v.version));
      td.appendChild(b);
    }
    tr.appendChild(td);
    table.appendChild(tr);
  }
  return table;
}

function render({ model, el }) {
  let tab = null;
  let compareDiff = null;
  const root = h("div", "lonb-panel");
  el.appendChild(root);

  function draw() {
    const d = model.get("data") || {};
    root.replaceChildren();
    const head = h("div", "lonb-head");
    head.appendChild(h("span", "lonb-title", d.name));
    head.appendChild(h("span", "lonb-badge", `v${d.version}`));
    if (d.status) head.appendChild(h("span", `lonb-status lonb-status-${d.status}`, d.status));
    const aliases = Object.entries(d.aliases || {}).map(([a, v]) => `${a}→v${v}`).join(", ");
    head.appendChild(
      h("span", "lonb-muted", ` ${d.called_model || d.model || "no model"}${aliases ? " · aliases: " + aliases : ""} · ${(d.hash || "").slice(0, 12)}`),
    );
    root.appendChild(head);
    if (d.description) root.appendChild(h("div", "lonb-muted", d.description));

    // [key, label, view]
    const tabs = [];
    tabs.push(["template", "Template", () => h("pre", "lonb-template", d.template || "")]);
    if ((d.messages || []).length) tabs.push(["messages", "Messages", () => messagesView(d.messages)]);
    if (d.response) tabs.push(["response", "Response", () => responseView(d.response)]);
    const against = compareDiff ? compareDiff.against : d.previous;
    tabs.push(["diff", against ? `Diff vs v${against}` : "Diff", () => diffView(compareDiff ? compareDiff.diff : d.diff)]);
    tabs.push(["history", "History", () => historyView(d, (v) => model.send({ type: "diff", against: v }))]);
    if (!tab || !tabs.some(([k]) => k === tab)) tab = (tabs.find(([k]) => k === "messages" || k === "response") || tabs[0])[0];

    const bar = h("div", "lonb-tabs");
    for (const [key, label] of tabs) {
      const b = h("button", key === tab ? "lonb-active" : "", label);
      b.addEventListener("click", () => { tab = key; if (key !== "diff") compareDiff = null; draw(); });
      bar.appendChild(b);
    }
    root.appendChild(bar);
    root.appendChild(tabs.find(([k]) => k === tab)[2]());
  }

  model.on("change:data", () => { compareDiff = null; draw(); });
  model.on("msg:custom", (msg) => {
    if (msg && msg.type === "diff") {
      compareDiff = { against: msg.against, diff: msg.diff || "" };
      tab = "diff";
      draw();
    }
  });
  draw();
}

export default { render };
