// @ts-check
// coi-sw.js — the page's cross-origin-isolation service worker (the idea of coi-serviceworker, written for this
// project).
//
// SharedArrayBuffer, which wasm threads need, exists only in a cross-origin isolated page: one whose document (and
// workers) come with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp.
// scripts/serve.mjs sends these headers; a static host (GitHub Pages, `python3 -m http.server`) cannot. So the page
// (www/isolation.js) registers this worker when it finds itself not isolated, and reloads once: from then on this
// worker answers the page's same-origin GET requests — the document, its scripts, its workers, the files they
// fetch — with the server's own response and those two headers added. Nothing else changes: status (206 for a range,
// errors too), the other headers and the body, streamed as it arrives.
//
// Left to the browser, untouched (no respondWith): requests other than GET, requests to other origins (a
// cross-origin ?model= is a CORS fetch, which require-corp allows), `only-if-cached` requests outside same-origin
// mode (which the browser refuses to re-issue), and responses that are redirects or opaque (re-wrapping a redirected
// response would give it the wrong URL).
//
// A service worker controls the pages under its own folder: this file must sit next to index.html.

const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

sw.addEventListener("install", () => sw.skipWaiting());
sw.addEventListener("activate", (event) => event.waitUntil(sw.clients.claim()));

sw.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  if (new URL(request.url).origin !== sw.location.origin) return;
  if (request.cache === "only-if-cached" && request.mode !== "same-origin") return;
  event.respondWith(withIsolationHeaders(request));
});

async function withIsolationHeaders(request) {
  const response = await fetch(request);
  if (response.type === "opaque" || response.type === "opaqueredirect" || response.redirected || response.status === 0) {
    return response;
  }
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(ISOLATION_HEADERS)) headers.set(name, value);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
