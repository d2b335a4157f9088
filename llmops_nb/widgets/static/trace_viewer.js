// Trace viewer widget: the trace view (trace_view.js, joined in front by Python) plus
// feedback messages to Python.

function render({ model, el }) {
  const state = { selected: null, score: null, comment: "", note: "" };
  const root = h("div", "lotv-panel");
  el.appendChild(root);

  function draw() {
    drawTrace(root, model.get("data") || {}, state, draw, (msg) => model.send(msg));
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
