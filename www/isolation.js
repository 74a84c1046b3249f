// @ts-check
// Cross-origin isolation of the page: what makes SharedArrayBuffer (wasm threads) available. A server that sends
// COOP + COEP headers (scripts/serve.mjs) isolates the page by itself. On a static host that cannot, the page
// registers its own service worker, coi-sw.js (next to index.html), which adds the two headers to every same-origin
// response, and reloads once so that the document itself comes through it. When that is not possible (no secure
// context, no service workers, registration refused) the page runs as it is, not isolated: the single-threaded
// engine works everywhere.
//
// A reload loop is impossible: the reload marks the page's own history entry (history.state), a page loaded by that
// reload never reloads again, and one that is still not isolated says why and goes on. (Not a sessionStorage flag: in
// Chromium one set before the reload reappeared on a later, non-isolated page of the same tab, as if each side of a
// Cross-Origin-Opener-Policy switch kept its own copy.)

export const SERVICE_WORKER = "coi-sw.js";
const RELOADED = "destein.coiReload";
const ACTIVATION_TIMEOUT_MS = 10000;

/** This page's service worker script, coi-sw.js in the page's own folder (its scope). */
export const serviceWorkerUrl = () => new URL(SERVICE_WORKER, location.href).href;

const controlledByUs = () => navigator.serviceWorker?.controller?.scriptURL === serviceWorkerUrl();

/** Whether this page load is the reload made below; forgets it, so that the next one is not taken for it. */
function takeReloadMark() {
  const state = history.state;
  if (state?.[RELOADED] !== true) return false;
  const { [RELOADED]: _, ...rest } = state;
  history.replaceState(Object.keys(rest).length ? rest : null, "");
  return true;
}

/**
 * Isolate the page when it can be.
 * @param {(url: string) => string} scriptURL  vouches for coi-sw.js (a TrustedScriptURL from the page's Trusted Types
 *   policy: service worker registration is a script-URL sink)
 * @returns {Promise<{isolated: boolean, how: "headers"|"service-worker"|null, reason: string|null}>}; it never
 *   settles when the page reloads under the service worker.
 */
export async function ensureIsolation(scriptURL) {
  const reloaded = takeReloadMark();
  if (globalThis.crossOriginIsolated === true) {
    return { isolated: true, how: controlledByUs() ? "service-worker" : "headers", reason: null };
  }
  const no = (reason) => ({ isolated: false, how: null, reason });
  if (!globalThis.isSecureContext) return no("not a secure context (service workers need https: or localhost)");
  if (!navigator.serviceWorker) return no("this browser offers no service workers to this page");
  if (reloaded) {
    return no(`the page was reloaded once under its service worker (${SERVICE_WORKER}) and is still not isolated`);
  }
  let active;
  try {
    active = await Promise.race([
      navigator.serviceWorker.register(scriptURL(serviceWorkerUrl())).then(() => navigator.serviceWorker.ready),
      new Promise((resolve) => setTimeout(() => resolve(null), ACTIVATION_TIMEOUT_MS)),
    ]);
  } catch (err) {
    return no(`its service worker ${SERVICE_WORKER} could not be registered (${err?.message || err})`);
  }
  if (!active) {
    return no(`its service worker ${SERVICE_WORKER} did not become active within ${ACTIVATION_TIMEOUT_MS / 1000} s`);
  }
  try {
    history.replaceState({ ...(history.state || {}), [RELOADED]: true }, "");
  } catch (err) {
    return no(`the page cannot mark its reload, so it does not reload (${err?.message || err})`);
  }
  location.reload();
  return new Promise(() => {});
}

/** The page's one-line account of it, e.g. "yes (service worker coi-sw.js adds COOP and COEP)" or "no: <reason>". */
export function describeIsolation({ isolated, how, reason }) {
  if (!isolated) return `no: ${reason}`;
  return how === "service-worker"
    ? `yes (service worker ${SERVICE_WORKER} adds COOP and COEP)`
    : "yes (the server sends COOP and COEP headers)";
}
