// ibis service worker: keeps the app itself (its shell page, JS, wasm, CSS) so that the
// app starts with its node unreachable — from the first visit on. Data never goes
// through here: documents live in IndexedDB and travel over /sync.
//
// - Installing caches the app shell (`/index.html`, the page the app fills by itself)
//   and every file it names, before the worker takes over.
// - Pages are the node's (server-rendered, current): online they always come from the
//   network and are not kept; offline, any page is answered with the shell, and the app
//   shows that address from its replica.
// - Files are network first, kept as they pass; offline, from the cache.
// - A new release replaces the shell cleanly: when an online page load finds a shell
//   naming other files, the new files are cached and the old ones dropped.
const CACHE = "ibis-app-v2";
const SHELL = "/index.html";
const DATA = ["/api/", "/sync", "/healthz", "/metrics", "/feed.atom", "/sitemap.xml", "/robots.txt"];
// At most one shell check a minute.
const CHECK_EVERY_MS = 60_000;
let lastCheck = 0;

// The files a shell page names (Trunk writes them as absolute paths).
const filesOf = (html) =>
  [...new Set([...html.matchAll(/["'](\/[^"'?#]+\.(?:js|wasm|css|svg))["']/g)].map((m) => m[1]))].filter(
    (path) => path !== "/sw.js"
  );

// Fetches the shell and its files into the cache, then drops what it no longer names.
async function refreshShell() {
  const response = await fetch(SHELL, { cache: "no-cache" });
  if (!response.ok) throw new Error(`the app shell answered ${response.status}`);
  const html = await response.clone().text();
  const files = filesOf(html);
  const cache = await caches.open(CACHE);
  const missing = [];
  for (const path of files) {
    if (!(await cache.match(path))) missing.push(path);
  }
  await cache.addAll(missing);
  await cache.put(SHELL, response);
  const keep = new Set([SHELL, ...files]);
  for (const request of await cache.keys()) {
    if (!keep.has(new URL(request.url).pathname)) await cache.delete(request);
  }
}

self.addEventListener("install", (event) => {
  event.waitUntil(refreshShell().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })()
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (DATA.some((prefix) => url.pathname.startsWith(prefix))) return;
  if (request.mode === "navigate") {
    event.respondWith(
      (async () => {
        try {
          const response = await fetch(request);
          if (Date.now() - lastCheck > CHECK_EVERY_MS) {
            lastCheck = Date.now();
            event.waitUntil(refreshShell().catch(() => {}));
          }
          return response;
        } catch (error) {
          const shell = await caches.match(SHELL);
          if (shell) return shell;
          throw error;
        }
      })()
    );
    return;
  }
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(request);
        if (response.ok) await cache.put(url.pathname, response.clone());
        return response;
      } catch (error) {
        const cached = await cache.match(url.pathname);
        if (cached) return cached;
        throw error;
      }
    })()
  );
});
