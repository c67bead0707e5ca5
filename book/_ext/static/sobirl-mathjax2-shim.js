/*
 * ipywidgets 8 still typesets widget labels through the MathJax 2 API, `MathJax.Hub.Queue(["Typeset", MathJax.Hub, el])`,
 * whenever `window.MathJax` exists. The book uses MathJax 3, which has no `Hub`, so every labelled widget threw a
 * TypeError while rendering. This shim keeps a `Hub.Queue` on whatever object `window.MathJax` is (the config object
 * Sphinx writes first, then the real MathJax 3 object that replaces it) and forwards to MathJax 3's typesetPromise.
 * Loaded on every page before MathJax and the widget manager (see book/_ext/offline_assets.py).
 */
(function () {
  "use strict";
  var hub = {
    Queue: function (job) {
      var el = Array.isArray(job) ? job[2] : undefined;
      var mj = window.MathJax;
      // Before MathJax 3 has loaded there is nothing to do: its first page typeset will include this element.
      if (mj && mj.startup && mj.startup.promise) {
        mj.startup.promise
          .then(function () { return mj.typesetPromise ? mj.typesetPromise(el ? [el] : undefined) : null; })
          .catch(function (err) { console.error("MathJax typeset of a widget failed", err); });
      }
    }
  };
  var current = window.MathJax;
  function attach(obj) {
    if (obj && typeof obj === "object" && !obj.Hub) {
      obj.Hub = hub;
    }
    return obj;
  }
  attach(current);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    enumerable: true,
    get: function () { return current; },
    set: function (value) { current = attach(value); }
  });
})();
