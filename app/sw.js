// ibis service worker: keeps the app itself (HTML, JS, wasm, CSS) so the app starts
// with its node unreachable. Network first, so an online visit always gets the node's
// current app; the cache answers only when the network fails. Data never goes through
// here: documents live in IndexedDB and travel over /sync.
const CACHE = "ibis-app-v1";
const DATA = ["/api/", "/sync", "/healthz", "/metrics", "/feed.atom"];

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// Client-side routes (/practices/…) are all the app's index.html.
const cacheKey = (url) => (url.pathname.split("/").pop().includes(".") ? url.pathname : "/");

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (DATA.some((prefix) => url.pathname.startsWith(prefix))) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(request);
        if (response.ok) await cache.put(cacheKey(url), response.clone());
        return response;
      } catch (error) {
        const cached = await cache.match(cacheKey(url));
        if (cached) return cached;
        throw error;
      }
    })()
  );
});
