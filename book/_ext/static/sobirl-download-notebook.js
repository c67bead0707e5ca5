// The "runnable .ipynb" entry of a page's download menu (see book/_ext/launch_links.py). The notebook's first cell
// needs the book's address to fetch the sobirl_lite wheel; it is not known when the book is built, so on click this
// fetches the notebook, writes the address of the site serving this page into `SITE = ""`, and saves the result.
// Without JavaScript the link still downloads the notebook, and its first cell asks for the address.
(function () {
  "use strict";
  const script = document.currentScript;
  // This file is <site>/_static/sobirl-download-notebook.js, so the site's root is one folder up.
  const site = script ? new URL("../", script.src).href : null;

  document.addEventListener("click", async (event) => {
    const link = event.target.closest && event.target.closest("a.btn-download-runnable-notebook");
    if (!link || !site || !window.fetch || !window.Blob) return;
    event.preventDefault();
    try {
      const response = await fetch(link.href);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const nb = await response.json();
      const cell = nb.cells.find((c) => c.cell_type === "code");
      const source = Array.isArray(cell.source) ? cell.source.join("") : cell.source;
      // A JSON string is a valid Python string literal for a URL.
      cell.source = source.replace(/^SITE = "[^"\n]*"/m, `SITE = ${JSON.stringify(site)}`);
      const blob = new Blob([JSON.stringify(nb, null, 1) + "\n"], { type: "application/x-ipynb+json" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = decodeURIComponent(new URL(link.href).pathname.split("/").pop());
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (err) {
      console.warn("runnable notebook: falling back to the plain file", err);
      window.location.href = link.href;
    }
  });
})();
