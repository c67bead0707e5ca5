// The reader's opt-in and the runtime cache for later live pages (see book/_ext/live_widgets.py).
//
// Pressing "Make this page interactive" once counts for the whole book: the choice is remembered in localStorage,
// and a Service Worker (sobirl-live-sw.js) keeps the Python runtime, the wasm wheels and the book's package wheel in
// the Cache API, so that later live pages start without downloading them, offline too. It lives in _static/, so it
// controls only what is under _static/: the live pages' Web Workers (matched by their own script's URL), not the
// book's pages. Later pages then start Python in the background as soon as they load.
// With data-saver on (navigator.connection.saveData) nothing is fetched ahead of a press: no prefetch and no start
// in the background; what the reader's own presses download is still kept.
(function () {
  "use strict";
  const KEY = "sobirl-live-opted-in";
  const storage = (() => {
    try {
      return window.localStorage;
    } catch (err) {
      return null;  // storage blocked: no memory of the opt-in, every page waits for a press
    }
  })();
  // Read by tests/test_live_html.py and benchmarks/live.py.
  const state = { optedIn: !!storage && storage.getItem(KEY) === "1",
                  saveData: !!(navigator.connection && navigator.connection.saveData),
                  serviceWorker: "none", prefetch: "none", cached: 0, error: null };
  const abs = (rel) => new URL(rel, document.baseURI).href;

  // The registration's newest worker, once activated (a new version replaces the old one at once: skipWaiting).
  function activated(reg) {
    const sw = reg.installing || reg.waiting;
    if (!sw) return Promise.resolve(reg.active);
    return new Promise((resolve) => {
      sw.addEventListener("statechange", () => {
        if (sw.state === "activated") resolve(sw);
        else if (sw.state === "redundant") resolve(reg.active);
      });
    });
  }

  let registering = null;
  function register(spec) {
    if (registering) return registering;
    if (!spec.serviceWorker || !("serviceWorker" in navigator) || !window.isSecureContext) {
      state.serviceWorker = "unavailable";  // e.g. a plain-http host other than localhost: no cache, still live
      return (registering = Promise.resolve(null));
    }
    state.serviceWorker = "registering";
    registering = navigator.serviceWorker.register(abs(spec.serviceWorker)).then(activated).then((sw) => {
      state.serviceWorker = sw ? "active" : "failed";
      return sw;
    }, (err) => {
      state.serviceWorker = "failed";
      state.error = String(err);
      return null;
    });
    return registering;
  }

  // Ask the Service Worker to fetch (mostly from the HTTP cache: the page has just used them) and keep the files.
  function prefetch(sw, files) {
    state.prefetch = "running";
    return new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = (event) => {
        const m = event.data || {};
        state.prefetch = m.ok ? "done" : "failed";
        state.cached = m.cached || 0;
        if (m.error) state.error = m.error;
        resolve();
      };
      sw.postMessage({ type: "prefetch", files: files.map(abs) }, [channel.port2]);
    });
  }

  window.sobirlLiveCache = {
    state,
    // The reader pressed the button: remember it and register the Service Worker.
    optIn(spec) {
      if (storage) {
        try {
          storage.setItem(KEY, "1");
        } catch (err) { /* storage full or blocked: this page still goes live */ }
      }
      state.optedIn = true;
      return register(spec);
    },
    // The page is live: fill the cache with what it used (called then, not at the press, so that the files come
    // from the HTTP cache instead of being downloaded a second time alongside the worker's own downloads).
    keep(spec) {
      return register(spec).then((sw) => (sw && !state.saveData ? prefetch(sw, spec.cacheFiles || []) : null));
    },
    // Resolves to true when this page should start Python in the background now (the worker is created after the
    // Service Worker is active, so that it is served from the cache).
    backgroundStart(spec) {
      if (!state.optedIn || state.saveData) return Promise.resolve(false);
      return register(spec).then(() => true);
    },
  };
})();
