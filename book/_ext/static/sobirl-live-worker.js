// Web Worker of a live page (see book/_ext/live_widgets.py): boots Pyodide from the files shipped with the book,
// installs the page's packages and the sobirl_lite wheel, runs the page's widget code, and relays ipywidgets comm
// messages between Python (sobirl_live_bridge.py) and the page. Computing here keeps the page responsive.
"use strict";

let pyodide = null;
let handle = null;

function post(kind, payload, buffers) {
  // buffers: a Python list of bytes -> transferable ArrayBuffers
  const bufs = [];
  if (buffers) {
    for (const b of buffers.toJs ? buffers.toJs() : buffers) {
      const u8 = b instanceof Uint8Array ? b : new Uint8Array(b);
      bufs.push(u8.slice().buffer);
    }
    if (buffers.destroy) buffers.destroy();
  }
  self.postMessage({ type: kind, payload, buffers: bufs }, bufs);
}

async function boot(spec) {
  const t0 = performance.now();
  const phase = (text) => self.postMessage({ type: "status", text, seconds: (performance.now() - t0) / 1000 });
  phase("loading Python (Pyodide)");
  importScripts(spec.indexURL + "pyodide.js");
  pyodide = await loadPyodide({
    indexURL: spec.indexURL,
    env: { SOBIRL_BUDGET: spec.budget, MPLBACKEND: "agg", HOME: "/home/pyodide" },
    stdout: (line) => self.postMessage({ type: "stdout", text: line }),
    stderr: (line) => self.postMessage({ type: "stderr", text: line }),
  });
  phase("loading numpy, scipy, matplotlib");
  // Resolved through the shipped pyodide-lock.json, which also holds the sha256 that Pyodide checks on load.
  await pyodide.loadPackage(spec.packages, { messageCallback: () => {}, checkIntegrity: true });
  // Pure-Python wheels from PyPI and the book's own package, installed without their dependency pins.
  await pyodide.loadPackage(spec.wheels, { messageCallback: () => {} });
  phase("starting the widget bridge");
  const bridge = await (await fetch(spec.bridgeURL)).text();
  pyodide.FS.writeFile("/home/pyodide/sobirl_live_bridge.py", bridge);
  pyodide.runPython("import sys; sys.path.insert(0, '/home/pyodide')");
  const mod = pyodide.pyimport("sobirl_live_bridge");
  mod.post = post;
  handle = mod.handle;
  phase("running the page's widget code");
  const models = [];
  for (const cell of spec.cells) {
    const id = mod.run_cell(cell.source, cell.widget);
    if (cell.widget) models.push(id);
  }
  self.postMessage({ type: "ready", models, seconds: (performance.now() - t0) / 1000 });
}

self.onmessage = async (event) => {
  const msg = event.data;
  try {
    if (msg.type === "boot") {
      await boot(msg.spec);
    } else if (msg.type === "comm_msg") {
      const t0 = performance.now();
      handle(JSON.stringify(msg.message), (msg.buffers || []).map((b) => new Uint8Array(b)));
      self.postMessage({ type: "idle", parent: msg.message.msg_id, seconds: (performance.now() - t0) / 1000 });
    }
  } catch (err) {
    self.postMessage({ type: "error", text: String(err && err.message ? err.message : err),
                       parent: msg.message ? msg.message.msg_id : null });
  }
};
