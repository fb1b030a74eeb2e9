/* Service worker of the field app: keeps the app shell so the app opens offline.
 * The shell is answered from the cache at once and refreshed from the network behind it
 * (stale-while-revalidate), so a new version is picked up on the next start. API calls
 * (/api/…) are never cached here: the app keeps its data in IndexedDB. */
const VERSION = "field-0.7.1";
const SHELL = [
  "./",
  "app.js",
  "app.css",
  "vendor/idb.js",
  "vendor/maplibre-gl.js",
  "vendor/maplibre-gl.css",
  "manifest.webmanifest",
  "icon-192.png",
  "icon-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  const scope = new URL(self.registration.scope);
  if (!url.pathname.startsWith(scope.pathname)) return;
  // Every page under the scope is the one app shell (index).
  const key = req.mode === "navigate" ? new Request(scope.href) : req;
  event.respondWith(
    caches.open(VERSION).then(async (cache) => {
      const cached = await cache.match(key, { ignoreSearch: true, ignoreVary: true });
      const network = fetch(key)
        .then((resp) => {
          if (resp.ok) cache.put(key, resp.clone());
          return resp;
        })
        .catch(() => undefined);
      if (cached) {
        event.waitUntil(network);
        return cached;
      }
      return (await network) || new Response("离线，且应用尚未缓存", { status: 503, headers: { "Content-Type": "text/plain; charset=utf-8" } });
    })
  );
});
