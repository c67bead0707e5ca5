// Scale down display equations and tables wider than their column, to at least half their size
// (book/_ext/page_fit.py).
(function () {
  "use strict";
  const MIN_SCALE = 0.5;

  // The width an element needs: its own box (a tagged equation has a min-width), its scrollable content and its
  // first child (MathJax's mjx-math); hidden assistive MathML is absolutely positioned and does not count.
  function needed(el) {
    const inner = el.firstElementChild;
    return Math.max(el.scrollWidth, el.getBoundingClientRect().width,
                    inner ? inner.getBoundingClientRect().width : 0);
  }

  function fit(el, column) {
    if (el.dataset.fitBase === undefined) {
      el.dataset.fitBase = el.style.fontSize || "";
    }
    el.style.fontSize = el.dataset.fitBase;
    const avail = column.clientWidth;
    if (avail <= 0) {
      return;
    }
    const base = parseFloat(el.dataset.fitBase) || 100;
    // A table reflows when its font shrinks, so its width is not proportional to the font: shrink in steps.
    let scale = 1;
    for (let step = 0; step < 8; step++) {
      // The column's own overflow counts too: a tagged equation's rows can be wider than its container, and the
      // column (overflow hidden) then cuts them on both sides.
      const now = Math.max(needed(el), column.scrollWidth);
      if (now <= avail + 0.5 || scale <= MIN_SCALE) break;
      scale = Math.max(MIN_SCALE, scale * (avail / now) * 0.98);
      el.style.fontSize = (base * scale).toFixed(1) + "%";
    }
  }

  function fitAll() {
    document.querySelectorAll('mjx-container[display="true"]').forEach((m) => {
      fit(m, m.closest("div.math, .math") || m.parentElement);
    });
    document.querySelectorAll("article table").forEach((t) => {
      fit(t, t.parentElement);
    });
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  window.sobirlFitDone = (async () => {
    // A page without math (the references) loads no MathJax: fit its tables at once.
    const mathjaxLoads = !!document.querySelector('script[src*="mathjax/"], script[src*="mathjax@"]');
    for (let i = 0; mathjaxLoads && i < 200; i++) {
      if (window.MathJax && MathJax.startup && MathJax.startup.promise) break;
      await sleep(50);
    }
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await MathJax.startup.promise;
    }
    fitAll();
  })();

  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(fitAll, 100);
  });
})();
