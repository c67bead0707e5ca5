// Service Worker of the live pages (registered by sobirl-live-cache.js once the reader has opted in; see
// book/_ext/live_widgets.py). Its scope is _static/, so it sees only the requests of the live pages' Web Workers.
//
// The files a live start needs (the Python runtime, the wasm wheels, the package wheel, the worker script and the
// bridge) are answered from the Cache API when present, else fetched and kept: later pages start without the
// network. The cache's name carries the build's version (?v=, a hash of all these files), so a rebuilt book gets a
// new cache and the old one is deleted: answering from the cache first never serves stale files.
"use strict";

const VERSION = new URL(self.location.href).searchParams.get("v") || "unversioned";
const CACHE = "sobirl-live-" + VERSION;
const STATIC_ROOT = new URL("./", self.location.href).href;  // .../_static/
const KEPT = [/^sobirl-live\//, /^wheels\//, /^sobirl-live-worker\.js$/, /^sobirl_live_bridge\.py$/];

function kept(url) {
  if (!url.startsWith(STATIC_ROOT)) return false;
  const rel = url.slice(STATIC_ROOT.length).split(/[?#]/)[0];
  return KEPT.some((re) => re.test(rel));
}

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("sobirl-live-") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

async function cachedOrFetched(request) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(request.url);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.status === 200) await cache.put(request.url, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  if (event.request.method === "GET" && kept(event.request.url)) {
    event.respondWith(cachedOrFetched(event.request));
  }
});

async function prefetch(files) {
  const cache = await caches.open(CACHE);
  let count = 0;
  for (const url of files) {
    if (!kept(url)) continue;
    if (!(await cache.match(url))) {
      // "force-cache": the page that opted in has usually just downloaded these; take them from the HTTP cache.
      const response = await fetch(url, { cache: "force-cache" });
      if (response.status !== 200) throw new Error(`${url}: HTTP ${response.status}`);
      await cache.put(url, response);
    }
    count += 1;
  }
  return count;
}

self.addEventListener("message", (event) => {
  const msg = event.data || {};
  const port = event.ports && event.ports[0];
  if (msg.type !== "prefetch") return;
  event.waitUntil(prefetch(msg.files || []).then(
    (cached) => port && port.postMessage({ ok: true, cached, cache: CACHE }),
    (err) => port && port.postMessage({ ok: false, error: String(err && err.message ? err.message : err) })));
});
