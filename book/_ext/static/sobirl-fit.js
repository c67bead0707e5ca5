// Scale down display equations wider than their column, to at least half their size (book/_ext/page_fit.py).
(function () {
  "use strict";
  const MIN_SCALE = 0.5;

  function fitOne(box) {
    if (box.dataset.fitBase === undefined) {
      box.dataset.fitBase = box.style.fontSize || "";
    }
    box.style.fontSize = box.dataset.fitBase;
    const avail = box.clientWidth;
    const inner = box.firstElementChild;
    const need = Math.max(box.scrollWidth, inner ? inner.getBoundingClientRect().width : 0);
    if (avail <= 0 || need <= avail + 0.5) {
      return;
    }
    const base = parseFloat(box.dataset.fitBase) || 100;
    const scale = Math.max(MIN_SCALE, (avail / need) * 0.98);
    box.style.fontSize = (base * scale).toFixed(1) + "%";
  }

  function fitAll() {
    document.querySelectorAll('mjx-container[display="true"]').forEach(fitOne);
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  window.sobirlFitDone = (async () => {
    for (let i = 0; i < 200; i++) {
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
