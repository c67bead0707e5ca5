// Web Worker of a live page (see book/_ext/live_widgets.py): boots Pyodide from the files shipped with the book,
// installs the page's packages and the sobirl_lite wheel, runs the page's widget code, and relays ipywidgets comm
// messages between Python (sobirl_live_bridge.py) and the page. Computing here keeps the page responsive.
//
// Messages from the page are queued and handled in batches: whatever arrived while Python was busy is applied at
// once, a state update superseded by a later one of the same widget is dropped, and each figure the batch asks for
// is recomputed once. A staged redraw (a quick preview first) finishes only while no newer message waits.
"use strict";

let pyodide = null;
let bridge = null;
const queue = [];
let scheduled = false;

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

// Phases of the start, timed from the "boot" message: runtime, packages, bridge, then (when the page asks for them)
// the page's cells. A start in the background stops after the bridge until the reader presses the button.
const clock = { t0: 0, phases: [], current: null };
function phase(step, text) {
  const now = (performance.now() - clock.t0) / 1000;
  if (clock.current) clock.phases.push({ name: clock.current, seconds: now - clock.current.start });
  clock.current = step ? { step, text, start: now } : null;
  if (step) self.postMessage({ type: "status", step, text, seconds: now });
}

async function boot(spec) {
  clock.t0 = performance.now();
  phase("runtime", "Downloading and starting Python");
  importScripts(spec.indexURL + "pyodide.js");
  pyodide = await loadPyodide({
    indexURL: spec.indexURL,
    // SOBIRL_LIVE_COLUMN_PX: the reader's column width, read by sobirl_lite.widgets._figure (figures drawn for it)
    env: { SOBIRL_BUDGET: spec.budget, MPLBACKEND: "agg", HOME: "/home/pyodide",
           SOBIRL_LIVE_COLUMN_PX: spec.columnPx ? String(Math.round(spec.columnPx)) : "" },
    stdout: (line) => self.postMessage({ type: "stdout", text: line }),
    stderr: (line) => self.postMessage({ type: "stderr", text: line }),
  });
  phase("packages", "Downloading numpy, scipy and matplotlib");
  // Resolved through the shipped pyodide-lock.json, which also holds the sha256 that Pyodide checks on load.
  let loaded = 0;
  const progress = (m) => {
    if (/^Loaded /.test(m)) {
      loaded += (m.match(/,/g) || []).length + 1;
      self.postMessage({ type: "progress", step: "packages", loaded });
    }
  };
  await pyodide.loadPackage(spec.packages, { messageCallback: progress, checkIntegrity: true });
  // Pure-Python wheels from PyPI and the book's own package, installed without their dependency pins.
  await pyodide.loadPackage(spec.wheels, { messageCallback: () => {} });
  phase("bridge", "Preparing the widgets");
  const source = await (await fetch(spec.bridgeURL)).text();
  pyodide.FS.writeFile("/home/pyodide/sobirl_live_bridge.py", source);
  pyodide.runPython("import sys; sys.path.insert(0, '/home/pyodide')");
  bridge = pyodide.pyimport("sobirl_live_bridge");  // first: it stands in for IPython, which ipywidgets imports
  bridge.post = post;
  self.postMessage({ type: "stderr", text: "font list: " + bridge.font_note });
  phase(null, "");
  self.postMessage({ type: "booted", seconds: (performance.now() - clock.t0) / 1000 });
}

function runCells(cells) {
  phase("cells", "Computing the first figure");
  const models = [];
  for (const cell of cells) {
    const id = bridge.run_cell(cell.source, cell.widget);
    if (cell.widget) models.push(id);
  }
  self.postMessage({ type: "stderr", text: "font list reused: " + bridge.font_list_reused() });
  phase(null, "");
  self.postMessage({ type: "ready", models, phases: clock.phases,
                     seconds: (performance.now() - clock.t0) / 1000 });
}

// Drop a state update when a later message of the same batch sets the same keys of the same widget.
function coalesce(batch) {
  const keep = [];
  const seen = new Set();
  for (let i = batch.length - 1; i >= 0; i--) {
    const m = batch[i].message;
    const data = m.data || {};
    if (data.method === "update" && data.state && !(data.buffer_paths || []).length) {
      const key = m.comm_id + "|" + Object.keys(data.state).sort().join(",");
      if (seen.has(key)) continue;
      seen.add(key);
    }
    keep.unshift(batch[i]);
  }
  return keep;
}

function schedule() {
  if (!scheduled) {
    scheduled = true;
    // The delay lets messages join the batch: those sent while Python was busy, and those the page holds back until
    // the answer to its previous message of the same slider arrives (ipywidgets sends one at a time per widget).
    setTimeout(drain, 30);
  }
}

function drain() {
  scheduled = false;
  if (!bridge) return;
  const t0 = performance.now();
  if (!queue.length) {
    if (bridge.has_work()) {
      try {
        bridge.continue_work();
      } catch (err) {
        self.postMessage({ type: "error", text: String(err && err.message ? err.message : err), parent: null });
      }
      self.postMessage({ type: "work", pending: bridge.has_work(), seconds: (performance.now() - t0) / 1000 });
      if (bridge.has_work()) schedule();
    }
    return;
  }
  const batch = queue.splice(0);
  const kept = coalesce(batch);
  let error = null;
  try {
    bridge.handle_batch(JSON.stringify(kept.map((m) => m.message)),
                        kept.map((m) => (m.buffers || []).map((b) => new Uint8Array(b))));
  } catch (err) {
    error = String(err && err.message ? err.message : err);
  }
  const seconds = (performance.now() - t0) / 1000;
  const pending = bridge.has_work();
  for (const m of batch) {
    if (error) self.postMessage({ type: "error", text: error, parent: m.message.msg_id });
    self.postMessage({ type: "idle", parent: m.message.msg_id, seconds, batch: batch.length, pending,
                      dropped: batch.length - kept.length });
  }
  if (pending || queue.length) schedule();
}

const reportError = (err) => self.postMessage({ type: "error", text: String(err && err.message ? err.message : err),
                                               parent: null });
let booting = null;
self.onmessage = async (event) => {
  const msg = event.data;
  if (msg.type === "boot") {
    booting = boot(msg.spec);
    booting.catch(reportError);
  } else if (msg.type === "run") {
    // The page's cells, once the runtime is up (at once after "boot", or when the reader presses after a start in
    // the background).
    booting.then(() => runCells(msg.cells)).catch((err) => { if (bridge) reportError(err); });
  } else if (msg.type === "comm_msg") {
    queue.push(msg);
    schedule();
  }
};
