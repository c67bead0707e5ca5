// "Make this page interactive": brings the page's widgets to life without a server (see book/_ext/live_widgets.py).
//
// The static page shows each widget's first frame, drawn by the ipywidgets HTML manager from the saved state. The
// button starts Pyodide in a Web Worker (sobirl-live-worker.js), which runs the page's widget code against the
// sobirl_lite wheel shipped with the book. Its ipywidgets comm messages are relayed to a second HTML manager here,
// whose views replace the static ones once they are drawn. Until then, and if anything fails, the static frame stays.
(function () {
  "use strict";
  const specNode = document.getElementById("sobirl-live-spec");
  if (!specNode) return;
  const spec = JSON.parse(specNode.textContent);
  const abs = (rel) => new URL(rel, document.baseURI).href;

  // Timings and state, read by tests/test_live_html.py and benchmarks/live.py.
  const live = (window.sobirlLive = { state: "static", error: null, log: [], bootSeconds: null, phases: [],
                                      updates: [], firstFrameSeconds: null, starts: 0, busy: false,
                                      busyCount: 0 });
  const STATIC_TEXT = "Until then the figure below is the one computed when the book was built, and its controls "
    + "do nothing.";
  const STEPS = { runtime: [1, 0.0, 0.3], packages: [2, 0.3, 0.75], bridge: [3, 0.75, 0.85], cells: [4, 0.85, 1.0] };

  function viewScripts() {
    return Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  }

  // One bar above each widget: the button with what it costs, a progress bar, then the status line.
  const bars = viewScripts().map((script) => {
    const bar = document.createElement("div");
    bar.className = "sobirl-live-bar";
    bar.dataset.state = "static";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sobirl-live-button";
    button.textContent = "Make this page interactive";
    const cost = document.createElement("span");
    cost.className = "sobirl-live-cost";
    cost.textContent = `Runs Python in your browser: downloads about ${spec.downloadMB} MB the first time; `
      + "nothing is sent anywhere.";
    const progress = document.createElement("progress");
    progress.className = "sobirl-live-progress";
    progress.max = 1;
    progress.value = 0;
    progress.hidden = true;
    const status = document.createElement("span");
    status.className = "sobirl-live-status";
    status.setAttribute("role", "status");
    status.textContent = STATIC_TEXT;
    bar.append(button, cost, progress, status);
    button.addEventListener("click", start);
    const anchor = script.closest(".cell_output, .output") || script.parentElement;
    anchor.classList.add("sobirl-live-static");
    anchor.parentElement.insertBefore(bar, anchor);
    return { bar, button, cost, progress, status, anchor };
  });

  function setStatus(text, kind) {
    for (const b of bars) {
      b.status.textContent = text;
      b.bar.dataset.state = kind || "";
    }
  }

  function setProgress(step, fraction) {
    const s = STEPS[step];
    if (!s) return;
    for (const b of bars) {
      b.progress.hidden = false;
      b.progress.value = s[1] + (s[2] - s[1]) * Math.min(1, fraction || 0);
    }
  }

  let worker = null;
  let started = false;   // a worker exists: starting in the background, starting for the reader, or live
  let pressed = false;   // the reader asked for this page's figures
  let runCells = null;   // asks the worker for the page's cells (set once the worker exists)
  const cache = window.sobirlLiveCache || null;  // sobirl-live-cache.js: opt-in, Service Worker, data-saver
  live.cache = cache ? cache.state : null;

  function fail(text) {
    if (worker) worker.terminate();
    worker = null;
    started = false;  // the button starts again from scratch
    runCells = null;
    live.step = live.stepText = null;
    if (!pressed) {   // a start in the background failed: say nothing alarming, a press starts afresh
      live.state = "static";
      live.backgroundError = text;
      setStatus(STATIC_TEXT, "static");
      return;
    }
    pressed = false;
    live.state = "failed";
    live.error = text;
    setStatus("Could not make the widgets live (" + text + "). The figures computed with the book stay; "
              + "you can try again.", "failed");
    for (const b of bars) {
      b.button.disabled = false;
      b.button.hidden = false;
      b.button.textContent = "Try again";
      b.progress.hidden = true;
    }
  }

  function start() {
    if (pressed) return;
    pressed = true;
    live.pressedAt = performance.now();
    if (cache) cache.optIn(spec);  // remembered for the book's other pages; the runtime cached for them
    live.state = "booting";
    live.error = null;
    for (const b of bars) {
      b.button.disabled = true;
      b.cost.hidden = true;
    }
    const step = live.step || "runtime";
    setProgress(step, 0);
    setStatus(`Step ${STEPS[step][0]} of 4: ${live.stepText || "Downloading and starting Python"}…`, "booting");
    if (!started) begin();
    else if (runCells) runCells();
  }

  function begin() {
    started = true;
    live.starts += 1;
    window.require(["@jupyter-widgets/html-manager", "@jupyter-widgets/base"], (hm, base) => {
      try {
        run(hm, base);
      } catch (err) {
        fail(String(err));
      }
    }, (err) => fail("widget manager not available: " + err));
  }

  // The reader opted in on another page: start Python now, so that a press only computes this page's figures.
  if (cache) {
    cache.backgroundStart(spec).then((go) => {
      if (!go || started) return;
      live.state = "warming";
      live.background = true;
      setStatus("Python is starting in the background, as you made another page of this book interactive.",
                "warming");
      begin();
    });
  }

  function run(hm, base) {
    worker = new Worker(abs(spec.workerURL));
    const me = worker;  // messages of a worker that failed and was replaced are ignored
    const comms = new Map();     // comm_id -> BridgeComm
    const callbacks = new Map(); // msg_id -> callbacks of a message sent to Python
    const sentAt = new Map();    // msg_id -> performance.now() when sent
    let counter = 0;

    class BridgeComm {
      constructor(commId, targetName) {
        this.comm_id = commId;
        this.target_name = targetName;
        this._onMsg = null;
        this._onClose = null;
      }
      open() { return ""; }  // comms are always opened by Python here
      send(data, cbs, metadata, buffers) {
        const msgId = "live-" + (++counter);
        if (cbs) callbacks.set(msgId, cbs);
        sentAt.set(msgId, performance.now());
        setBusy(true);
        const bufs = (buffers || []).map((b) => (b.buffer ? b.buffer.slice(0) : b.slice(0)));
        worker.postMessage({ type: "comm_msg", message: { comm_id: this.comm_id, msg_id: msgId, data },
                             buffers: bufs }, bufs);
        return msgId;
      }
      close() { return ""; }
      on_msg(cb) { this._onMsg = cb; }
      on_close(cb) { this._onClose = cb; }
    }

    class LiveManager extends hm.HTMLManager {
      _create_comm() { return Promise.reject(new Error("comms are opened by Python on a live page")); }
      _get_comm_info() { return Promise.resolve({}); }
    }
    const manager = new LiveManager();

    function fromPython(payload, buffers) {
      const m = JSON.parse(payload);
      const header = { msg_id: m.msg_id, msg_type: m.msg_type };
      const msg = { header, parent_header: { msg_id: m.parent }, metadata: m.metadata,
                    content: { comm_id: m.comm_id, target_name: m.target_name, data: m.data },
                    buffers: buffers.map((b) => new DataView(b)) };
      if (m.msg_type === "comm_open") {
        const comm = new BridgeComm(m.comm_id, m.target_name);
        comms.set(m.comm_id, comm);
        return manager.handle_comm_open(comm, msg);
      }
      const comm = comms.get(m.comm_id);
      if (!comm) return null;
      if (m.msg_type === "comm_msg" && comm._onMsg) return comm._onMsg(msg);
      if (m.msg_type === "comm_close" && comm._onClose) return comm._onClose(msg);
      return null;
    }

    // Model creation is asynchronous: keep the messages of one model in order.
    let chain = Promise.resolve();
    const holders = [];
    let working = false;  // a staged redraw is still finishing in the worker

    function setBusy(busy) {
      if (busy && !live.busy) live.busyCount += 1;
      live.busy = busy;
      for (const h of holders) {
        if (busy) h.setAttribute("aria-busy", "true");
        else h.removeAttribute("aria-busy");
      }
      if (live.state !== "live") return;
      if (busy) setStatus("Recomputing the figure…", "busy");
      else if (!live.error) setStatus(liveText, "live");
    }
    let liveText = "";

    async function showLive(models) {
      await chain;
      const scripts = viewScripts();
      if (models.length !== scripts.length) {
        throw new Error(`the page code made ${models.length} widgets for ${scripts.length} on the page`);
      }
      for (let i = 0; i < models.length; i++) {
        const model = await manager.get_model(models[i]);
        const view = await manager.create_view(model);
        const staticArea = scripts[i].previousElementSibling;
        const holder = document.createElement("div");
        holder.className = "widget-subarea sobirl-live-area";
        holders.push(holder);
        scripts[i].parentElement.insertBefore(holder, scripts[i]);
        await manager.display_view(view, holder);
        if (staticArea && staticArea.classList.contains("widget-subarea")) {
          staticArea.classList.add("sobirl-static-frame");
          staticArea.style.display = "none";
        }
      }
    }

    worker.onerror = (event) => fail("worker error: " + (event.message || event));
    worker.onmessage = (event) => {
      if (worker !== me) return;
      const msg = event.data;
      if (msg.type === "status") {
        live.log.push(`${msg.seconds.toFixed(1)} s: ${msg.text}`);
        live.step = msg.step;
        live.stepText = msg.text;
        if (msg.step && pressed) {
          const [n] = STEPS[msg.step];
          setProgress(msg.step, 0);
          const size = msg.step === "runtime" || msg.step === "packages" ? ` (part of the ${spec.downloadMB} MB)` : "";
          setStatus(`Step ${n} of 4: ${msg.text}${size}…`, "booting");
        }
      } else if (msg.type === "booted") {
        live.bootedSeconds = msg.seconds;
        live.step = "cells";
        live.stepText = "Computing the first figure";
        if (!pressed) setStatus("Python is ready in the background: press the button to compute this page's figures.",
                                "warming");
      } else if (msg.type === "progress") {
        if (pressed) setProgress(msg.step, msg.loaded / Math.max(1, spec.packageCount || 20));
      } else if (msg.type === "comm") {
        chain = chain.then(() => fromPython(msg.payload, msg.buffers)).catch((err) => fail(String(err)));
      } else if (msg.type === "ready") {
        chain.then(() => showLive(msg.models)).then(() => {
          live.state = "live";
          live.bootSeconds = msg.seconds;
          live.phases = msg.phases;
          live.firstFrameSeconds = (performance.now() - live.pressedAt) / 1000;
          for (const b of bars) {
            b.button.hidden = true;
            b.progress.hidden = true;
            b.anchor.classList.remove("sobirl-live-static");
          }
          liveText = `Live: computed in your browser (ready in ${live.firstFrameSeconds.toFixed(0)} s). `
                     + "Move a slider to recompute.";
          setStatus(liveText, "live");
          if (cache) cache.keep(spec);  // the runtime kept for the book's later pages
        }).catch((err) => fail(String(err)));
      } else if (msg.type === "idle" || msg.type === "work") {
        const cbs = msg.parent ? callbacks.get(msg.parent) : null;
        if (msg.parent) callbacks.delete(msg.parent);
        const t = msg.parent ? sentAt.get(msg.parent) : undefined;
        if (msg.parent) sentAt.delete(msg.parent);
        working = msg.pending;
        const failed = msg.parent && failedIds.delete(msg.parent);
        // Let the replies queued before this "idle" reach their models first.
        chain = chain.then(() => {
          if (t !== undefined) {
            live.updates.push({ seconds: (performance.now() - t) / 1000, python: msg.seconds, batch: msg.batch,
                                dropped: msg.dropped });
          }
          if (!failed && msg.type === "idle" && live.state === "live") live.error = null;  // a later move worked
          if (cbs && cbs.iopub && cbs.iopub.status) {
            cbs.iopub.status({ header: { msg_type: "status" }, parent_header: { msg_id: msg.parent },
                               content: { execution_state: "idle" }, metadata: {} });
          }
          setBusy(sentAt.size > 0 || working);
        });
      } else if (msg.type === "error") {
        if (live.state === "live") {
          if (msg.parent) failedIds.add(msg.parent);
          chain = chain.then(() => {
            live.error = msg.text;
            setStatus("This setting raised an error in Python: " + msg.text + " (try another value).", "failed");
          });
        } else {
          fail(msg.text);
        }
      } else if (msg.type === "stderr" || msg.type === "stdout") {
        live.log.push(msg.text);
      }
    };
    const failedIds = new Set();
    const columnPx = Math.min(...bars.map((b) => b.anchor.clientWidth || b.bar.clientWidth || 0).filter((w) => w > 0));
    worker.postMessage({ type: "boot", spec: {
      indexURL: abs(spec.indexURL), packages: spec.packages, wheels: spec.wheels.map(abs),
      bridgeURL: abs(spec.bridgeURL), budget: spec.budget,
      columnPx: Number.isFinite(columnPx) ? columnPx : null } });
    runCells = () => worker.postMessage({ type: "run", cells: spec.cells });
    if (pressed) runCells();
  }
})();
