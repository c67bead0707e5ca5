// Instant widgets: every slider setting of the page's widgets was computed when the book was built
// (book/_ext/live_frames.py), so moving a slider swaps in the figure for that setting. No Python runtime is started.
//
// The widgets are drawn by a second ipywidgets HTML manager from the state saved with the page (as on a live page).
// Its models have no comm, so a slider's change stays on the page (ipywidgets saves changes only over a live comm);
// listening to it, the page sets the Output widgets of the same widget to the frame stored for the slider positions. The frames' JSON is fetched
// when the page loads, or at the first move when the reader's connection asks to save data.
(function () {
  "use strict";
  const specNode = document.getElementById("sobirl-live-spec");
  if (!specNode) return;
  const spec = JSON.parse(specNode.textContent);
  if (!spec.frames) return;
  // Read by tests/test_live_html.py and benchmarks/live.py.
  const info = (window.sobirlLive = { mode: "frames", state: "static", error: null, shown: [], swaps: 0,
                                      updates: [], frameCount: spec.frames.count });
  const saveData = !!(navigator.connection && navigator.connection.saveData);
  let frames = null;
  const load = () => (frames = frames || fetch(new URL(spec.frames.url, document.baseURI).href).then((r) => {
    if (!r.ok) throw new Error(`frames: HTTP ${r.status}`);
    return r.json();
  }));

  const scripts = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  const stateNode = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
  if (!scripts.length || !stateNode) return;
  for (const script of scripts) {
    const note = document.createElement("div");
    note.className = "sobirl-live-bar";
    note.dataset.state = "instant";
    const status = document.createElement("span");
    status.className = "sobirl-live-status";
    status.setAttribute("role", "status");
    status.textContent = `Move the slider: the figures for its ${spec.frames.count} settings were computed when the `
      + "book was built, so nothing needs to be downloaded or run.";
    note.append(status);
    const anchor = script.closest(".cell_output, .output") || script.parentElement;
    anchor.parentElement.insertBefore(note, anchor);
  }

  const at = (model, path) => path.reduce((m, i) => m.get("children")[i], model);
  const sliders = (m) => (/SliderModel$/.test(m.get("_model_name")) ? [m]
    : (m.get("children") || []).flatMap(sliders));
  const parsePath = (key) => (key === "" ? [] : key.split(",").map(Number));

  // Position of VALUE on the slider's grid (min + i * step; of the exponent for a log slider), unrounded.
  function position(c, value) {
    const x = c.kind === "log" ? Math.log(value) / Math.log(c.base) : value;
    return Math.min(c.count - 1, Math.max(0, (x - c.min) / c.step));
  }

  async function show(w, root) {
    const t0 = performance.now();
    const plan = (await load()).widgets[w];
    const key = [];
    for (const c of plan.controls) {
      const model = at(root, c.path);
      const exact = position(c, model.get("value"));
      const i = Math.round(exact);
      if (Math.abs(exact - i) > 1e-6) {  // typed off the grid: move to the nearest computed setting
        const x = c.min + i * c.step;
        model.set("value", c.kind === "log" ? Math.pow(c.base, x) : x);
        return;  // the change this makes shows the frame
      }
      key.push(i);
    }
    const frame = plan.frames[key.join(",")];
    if (!frame) return;
    for (const [path, outputs] of Object.entries(frame)) at(root, parsePath(path)).set("outputs", outputs);
    info.shown[w] = { key: key.join(","), values: plan.controls.map((c) => at(root, c.path).get("value")) };
    info.swaps += 1;
    info.updates.push({ seconds: (performance.now() - t0) / 1000 });
  }

  // The page's own widget manager draws the static frame in an area it inserts just before the view's script, when
  // the page has loaded. Wait for that area (at most 15 s), so that the working view takes its place, not the reverse.
  function staticArea(script) {
    const there = () => {
      const a = script.previousElementSibling;
      return !!a && a.classList.contains("widget-subarea") && !a.classList.contains("sobirl-live-area");
    };
    if (there()) return Promise.resolve();
    return new Promise((resolve) => {
      const watch = new MutationObserver(() => {
        if (there()) {
          watch.disconnect();
          resolve();
        }
      });
      watch.observe(script.parentElement, { childList: true });
      setTimeout(() => {
        watch.disconnect();
        resolve();
      }, 15000);
    });
  }

  window.require(["@jupyter-widgets/html-manager"], (hm) => {
    (async () => {
      const manager = new hm.HTMLManager();
      await manager.set_state(JSON.parse(stateNode.textContent));
      if (!saveData) load().catch(() => null);  // ahead of the first move (errors show at that move)
      for (let w = 0; w < scripts.length; w++) {
        const root = await manager.get_model(JSON.parse(scripts[w].textContent).model_id);
        // Drawn out of sight first, then swapped for the static frame in one step: the page never shows both,
        // nor an empty box in between.
        const holder = document.createElement("div");
        holder.className = "widget-subarea sobirl-live-area sobirl-frames-pending";
        const parent = scripts[w].parentElement;
        parent.insertBefore(holder, parent.firstChild);
        await manager.display_view(await manager.create_view(root), holder);
        await staticArea(scripts[w]);
        parent.insertBefore(holder, scripts[w]);
        holder.classList.remove("sobirl-frames-pending");
        parent.classList.add("sobirl-frames-on");  // hides the static frame (sobirl-live.css)
        for (const slider of sliders(root)) {
          slider.on("change:value", () => show(w, root).catch((err) => { info.error = String(err); }));
        }
      }
      info.state = "instant";
    })().catch((err) => {
      info.state = "failed";  // the static frames stay
      info.error = String(err);
      for (const s of scripts) s.parentElement.classList.remove("sobirl-frames-on");
      document.querySelectorAll(".sobirl-live-area").forEach((el) => el.remove());
    });
  }, (err) => { info.state = "failed"; info.error = "widget manager not available: " + err; });
})();
