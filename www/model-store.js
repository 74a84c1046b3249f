// @ts-check
// Model download, caching and verification for the DeStein demo.
//
// - Downloads with progress (bytes / total, MB/s) through a streaming fetch.
// - Retries a failing download (3 attempts, growing back-off); resumes with an HTTP Range request when the server
//   allows it and the file did not change in between (If-Range), else starts over.
// - Verifies the bytes by SHA-256 (crypto.subtle) before they are used or cached. The engines may read a cached copy
//   while it is checked (openCached, verifyCached); the page uses it only once it has passed.
// - Caches a complete, verified file in Cache Storage, so a reload starts in seconds. A partial download is never
//   cached; a cached file that fails its hash is evicted and fetched again.
//
// Cache Storage and crypto.subtle need a secure context (https:, or http://127.0.0.1 / localhost). Elsewhere this
// module still downloads, but cannot cache, and reports `sha256: null` so that the caller can let the engine hash
// the bytes instead.

export const CACHE_NAME = "destein-models-v1";
export const DEFAULT_MODEL = Object.freeze({
  url: "models/SmolLM2-135M-Instruct.Q4_1.gguf",
  sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
  label: "SmolLM2-135M-Instruct (Q4_1)",
});
const SHA_HEADER = "x-destein-sha256";
export const CONFIG_FILE = "destein-config.json";

/**
 * The page's default model, from destein-config.json next to index.html: {"model": {"url", "sha256", "label"?}}, the
 * url relative to the page or absolute. The repository's copy names models/ (what DEFAULT_MODEL says);
 * scripts/build-site.sh writes the published site's, which may point to another host.
 * @returns {Promise<{model: {url, sha256, label}, error: string|null}>}: without a usable file, DEFAULT_MODEL and an
 *   error naming the problem.
 */
export async function readSiteConfig(base = globalThis.location?.href) {
  const url = new URL(CONFIG_FILE, base);
  const fallback = (why) => ({
    model: DEFAULT_MODEL,
    error: `The site's ${CONFIG_FILE} ${why}; using the built-in default model ${DEFAULT_MODEL.url}.`,
  });
  let resp, config;
  try {
    resp = await fetch(url, { cache: "no-cache" });
  } catch (err) {
    return fallback(`could not be fetched (${err.message || err})`);
  }
  if (!resp.ok) {
    return fallback(resp.status === 404 ? "is missing on the server (HTTP 404)" : `could not be fetched (HTTP ${resp.status})`);
  }
  try {
    config = await resp.json();
  } catch (err) {
    return fallback(`is not valid JSON (${err.message})`);
  }
  const m = config?.model;
  if (typeof m?.url !== "string" || !m.url) return fallback('has no "model": {"url": …}');
  if (typeof m.sha256 !== "string" || !/^[0-9a-f]{64}$/i.test(m.sha256)) {
    return fallback(`gives no "sha256" of 64 hex digits for ${m.url}`);
  }
  const label =
    typeof m.label === "string" && m.label ? m.label : decodeURIComponent(new URL(m.url, url).pathname.split("/").pop());
  return { model: Object.freeze({ url: m.url, sha256: m.sha256.toLowerCase(), label }), error: null };
}

export class ModelLoadError extends Error {
  /**
   * @param {string} message
   * @param {{cause?: unknown, retryable?: boolean, kind?: string}} [options]
   */
  constructor(message, { cause, retryable = true, kind = "network" } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = "ModelLoadError";
    this.retryable = retryable;
    this.kind = kind; // "network" | "http" | "truncated" | "integrity" | "aborted"
    /** What a broken download received, for the next attempt to resume from (downloadOnce). */
    this.partial = /** @type {{buffer: Uint8Array|null, received: number, total: number, validator: string}|null} */ (null);
  }
}

export function cacheAvailable() {
  return typeof caches !== "undefined" && globalThis.isSecureContext !== false;
}

export function hashAvailable() {
  return typeof crypto !== "undefined" && !!crypto.subtle && typeof crypto.subtle.digest === "function";
}

/** Hex SHA-256 of the bytes, or null where crypto.subtle is unavailable (non-secure context). */
export async function sha256Hex(bytes) {
  if (!hashAvailable()) return null;
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return "?";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

function absolute(url) {
  return new URL(url, globalThis.location?.href).href;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ModelLoadError("cancelled", { kind: "aborted", retryable: false }));
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(new ModelLoadError("cancelled", { kind: "aborted", retryable: false }));
      },
      { once: true },
    );
  });
}

/** The Cache Storage entry for `url`, or null (no cache here, no entry, or the cache refused). */
async function cachedResponse(url) {
  if (!cacheAvailable()) return null;
  try {
    return (await (await caches.open(CACHE_NAME)).match(absolute(url))) ?? null;
  } catch {
    return null;
  }
}

/** Whether a cached copy's sha256 `actual` is `want`; a copy that is not is evicted, and the event says why. */
async function keepIfMatches(url, actual, want, onEvent) {
  if (actual === want) return true;
  await evict(url).catch(() => {});
  onEvent({ phase: "evicted", reason: `cached copy has sha256 ${actual}, expected ${want}` });
  return false;
}

/**
 * The cached copy of `url`, verified, or null. Evicts a copy that fails its hash.
 * @param {string} url
 * @param {string|null} [expectedSha256]
 * @param {(e: object) => void} [onEvent]
 * @returns {Promise<{bytes: Uint8Array, sha256: string|null, verified: boolean, source: "cache"}|null>}
 */
export async function readCached(url, expectedSha256 = null, onEvent = () => {}) {
  const resp = await cachedResponse(url);
  if (!resp) return null;
  onEvent({ phase: "cache-read" });
  let bytes;
  try {
    bytes = new Uint8Array(await resp.arrayBuffer());
  } catch {
    // An unreadable cache entry is dropped; the caller fetches from the network instead.
    await evict(url).catch(() => {});
    return null;
  }
  const stored = resp.headers.get(SHA_HEADER);
  onEvent({ phase: "verify", loaded: bytes.length, total: bytes.length });
  const actual = await sha256Hex(bytes);
  const want = expectedSha256 || stored;
  if (actual && want && !(await keepIfMatches(url, actual, want, onEvent))) return null;
  return { bytes, sha256: actual, verified: !!(actual && want), source: "cache" };
}

/**
 * The cached copy of `url` as a Blob, neither read nor verified, or null. A Blob costs nothing to hand to a worker:
 * each engine reads its own copy while the page checks the SHA-256 (verifyCached), instead of one after the other.
 * @param {string} url
 * @returns {Promise<Blob|null>}
 */
export async function openCached(url) {
  const resp = await cachedResponse(url);
  return resp ? resp.blob().catch(() => null) : null;
}

/**
 * Whether a cached copy (openCached) has the sha256 `want`; a copy that has not, or cannot be read, is evicted.
 * @param {string} url
 * @param {Blob} blob
 * @param {string} want
 * @param {(e: object) => void} [onEvent]  {phase:"verify", loaded, total} | {phase:"evicted", reason}
 * @returns {Promise<boolean>}
 */
export async function verifyCached(url, blob, want, onEvent = () => {}) {
  onEvent({ phase: "verify", loaded: blob.size, total: blob.size });
  let actual;
  try {
    actual = await sha256Hex(new Uint8Array(await blob.arrayBuffer()));
  } catch (err) {
    actual = `unknown (the copy could not be read: ${err?.message || err})`;
  }
  return keepIfMatches(url, actual, want.toLowerCase(), onEvent);
}

export async function evict(url) {
  if (!cacheAvailable()) return false;
  const cache = await caches.open(CACHE_NAME);
  return cache.delete(absolute(url));
}

export async function listCached() {
  if (!cacheAvailable()) return [];
  const cache = await caches.open(CACHE_NAME);
  return (await cache.keys()).map((r) => r.url);
}

async function storeInCache(url, bytes, sha256) {
  if (!cacheAvailable()) return false;
  try {
    const cache = await caches.open(CACHE_NAME);
    const headers = {
      "content-type": "application/octet-stream",
      "content-length": String(bytes.length),
      "x-destein-cached-at": new Date().toISOString(),
    };
    if (sha256) headers[SHA_HEADER] = sha256;
    await cache.put(absolute(url), new Response(bytes, { headers }));
    return true;
  } catch (err) {
    // Quota exceeded or storage disabled: the model still works, it just won't be cached.
    console.warn("model-store: could not cache the model:", err);
    return false;
  }
}

const HEAD_BYTES = 16;

function concatBytes(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Why the first bytes of a download are not a GGUF file's, or null when they are. */
function notGguf(head, contentType) {
  if (head.length >= 4 && String.fromCharCode(...head.subarray(0, 4)) === "GGUF") return null;
  const start = new TextDecoder().decode(head).trimStart().toLowerCase();
  if (/^\s*text\/html\b/i.test(contentType) || start.startsWith("<!doctype html") || start.startsWith("<html")) {
    return "the model URL returned an HTML page, not a GGUF file";
  }
  if (!head.length) return "the model URL returned an empty file, not a GGUF file";
  return `the model URL returned a file that does not start with "GGUF" (content type ${contentType || "not given"}), not a GGUF model`;
}

/**
 * One download attempt. `partial` ({buffer, received, total, validator}) lets it resume with a Range request.
 * Returns {bytes} on success; throws ModelLoadError with `partial` attached on failure.
 */
async function downloadOnce(url, { partial, signal, onProgress, attempt, attempts }) {
  const resuming = !!(partial && partial.received > 0 && partial.validator && partial.total);
  const resp = await requestModel(url, resuming ? partial : null, signal);
  const d = downloadTarget(resp, resuming ? partial : null);
  const acceptRanges = (resp.headers.get("accept-ranges") || "").toLowerCase() === "bytes";
  const validator = acceptRanges ? resp.headers.get("etag") || resp.headers.get("last-modified") : null;
  const report = progressReporter(d, (e) => onProgress?.({ phase: "download", ...e, attempt, attempts }));
  report(true);
  const contentType = resp.headers.get("content-type") || "";
  const reader = resp.body.getReader();
  try {
    await readBody(reader, contentType, d, report);
  } catch (err) {
    reader.cancel().catch(() => {});
    if (signal?.aborted) throw new ModelLoadError("cancelled", { kind: "aborted", retryable: false });
    const e =
      err instanceof ModelLoadError
        ? err
        : new ModelLoadError(
            `the connection broke after ${formatBytes(d.received)}${d.total ? ` of ${formatBytes(d.total)}` : ""}`,
            { kind: "truncated", cause: err },
          );
    e.partial = d.buffer && validator ? { buffer: d.buffer, received: d.received, total: d.total, validator } : null;
    throw e;
  }
  report(true);
  if (d.total && d.received !== d.total) {
    const e = new ModelLoadError(`the download ended after ${formatBytes(d.received)} of ${formatBytes(d.total)}`, {
      kind: "truncated",
    });
    e.partial = validator ? { buffer: d.buffer, received: d.received, total: d.total, validator } : null;
    throw e;
  }
  if (d.buffer) return { bytes: d.buffer };
  const out = new Uint8Array(d.received);
  let off = 0;
  for (const c of d.chunks) {
    out.set(c, off);
    off += c.length;
  }
  return { bytes: out };
}

/**
 * The model's response: the whole file, or (`partial`) the rest of it from where a broken download stopped.
 * @param {string} url
 * @param {{received: number, validator: string}|null} partial
 * @param {AbortSignal} [signal]
 */
async function requestModel(url, partial, signal) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (partial) {
    headers.Range = `bytes=${partial.received}-`;
    headers["If-Range"] = partial.validator;
  }
  let resp;
  try {
    resp = await fetch(url, { headers, cache: "no-store", signal });
  } catch (err) {
    if (signal?.aborted) throw new ModelLoadError("cancelled", { kind: "aborted", retryable: false });
    throw new ModelLoadError(`network error (${err.message || err})`, { cause: err });
  }
  if (!resp.ok) {
    const retryable = resp.status >= 500 || resp.status === 408 || resp.status === 429;
    throw new ModelLoadError(`the server answered HTTP ${resp.status} ${resp.statusText}`.trim(), {
      kind: "http",
      retryable,
    });
  }
  return resp;
}

/**
 * @typedef {object} Download  where a download's bytes go
 * @property {Uint8Array|null} buffer  the whole file's, when its length is known
 * @property {Uint8Array[]|null} chunks  else the chunks as they come
 * @property {number} received
 * @property {number|null} total
 */

/**
 * Where the bytes of `resp` go: after the partial download's when the server resumed it (206), else a new buffer.
 * @param {Response} resp
 * @param {{buffer: Uint8Array, received: number, total: number}|null} partial
 * @returns {Download}
 */
function downloadTarget(resp, partial) {
  if (partial && resp.status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(resp.headers.get("content-range") || "");
    if (!m || Number(m[1]) !== partial.received || Number(m[3]) !== partial.total) {
      throw new ModelLoadError("the server's range answer did not fit the partial download", {
        retryable: true,
      });
    }
    return { buffer: partial.buffer, chunks: null, received: partial.received, total: partial.total };
  }
  const len = Number(resp.headers.get("content-length"));
  const encoded = !!resp.headers.get("content-encoding");
  const total = Number.isFinite(len) && len > 0 && !encoded ? len : null;
  const buffer = total ? new Uint8Array(total) : null;
  return { buffer, chunks: buffer ? null : [], received: 0, total };
}

/**
 * `report(force)`: the download's progress and speed (this attempt's), at most every 100 ms unless forced.
 * @param {Download} d
 * @param {(e: {loaded: number, total: number|null, bytesPerSec: number}) => void} onProgress
 */
function progressReporter(d, onProgress) {
  const started = performance.now();
  const startBytes = d.received;
  let lastReport = 0;
  return (/** @type {boolean} */ force) => {
    const now = performance.now();
    if (!force && now - lastReport < 100) return;
    lastReport = now;
    const secs = (now - started) / 1000;
    const bytesPerSec = secs > 0.05 ? (d.received - startBytes) / secs : 0;
    onProgress({ loaded: d.received, total: d.total, bytesPerSec });
  };
}

/**
 * Read a response body into `d`.
 * @param {ReadableStreamDefaultReader<Uint8Array>} reader
 * @param {string} contentType
 * @param {Download} d
 * @param {(force: boolean) => void} report
 */
async function readBody(reader, contentType, d, report) {
  // The first bytes of a download from the start must be GGUF's magic: a static host answers a wrong URL with an
  // HTML page (its 404 or index page), often with status 200.
  let head = d.received === 0 ? new Uint8Array(0) : null;
  const checkHead = (/** @type {Uint8Array|null} */ value, /** @type {boolean} */ done) => {
    if (value) head = concatBytes(head, value.subarray(0, HEAD_BYTES - head.length));
    if (head.length < HEAD_BYTES && !done) return;
    const problem = notGguf(head, contentType);
    head = null;
    if (problem) throw new ModelLoadError(problem, { kind: "format", retryable: false });
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (head) checkHead(value, false);
    if (d.buffer) {
      if (d.received + value.length > d.buffer.length) {
        throw new ModelLoadError("the server sent more bytes than it announced", { retryable: true });
      }
      d.buffer.set(value, d.received);
    } else {
      d.chunks.push(value);
    }
    d.received += value.length;
    report(false);
  }
  if (head) checkHead(null, true);
}

/**
 * Get the model bytes: from Cache Storage if a verified copy is there, else from the network (with retries),
 * verified, then cached.
 *
 * @param {object} o
 * @param {string} o.url                 model URL (relative to the page or absolute)
 * @param {string|null} o.expectedSha256 hex digest the bytes must have; null: compute and report it
 * @param {(e: object) => void} [o.onProgress]
 *   events: {phase:"cache-read"} | {phase:"evicted", reason} | {phase:"download", loaded, total, bytesPerSec,
 *   attempt, attempts} | {phase:"retry", attempt, attempts, delayMs, error} | {phase:"verify", loaded, total} |
 *   {phase:"store"}
 * @param {AbortSignal} [o.signal]
 * @param {number} [o.attempts=3]
 * @param {number[]} [o.backoffMs=[600, 2000, 5000]]  delay before attempt 2, 3, …
 * @returns {Promise<{bytes: Uint8Array, sha256: string|null, verified: boolean, source: "cache"|"network",
 *                    cached: boolean}>}
 */
export async function loadModelBytes({
  url,
  expectedSha256 = null,
  onProgress = () => {},
  signal,
  attempts = 3,
  backoffMs = [600, 2000, 5000],
}) {
  const want = expectedSha256 ? expectedSha256.toLowerCase() : null;
  const cached = await readCached(url, want, onProgress);
  if (cached) return { ...cached, cached: true };

  let partial = null;
  let lastError = null;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) {
      const delayMs = backoffMs[Math.min(attempt - 2, backoffMs.length - 1)];
      onProgress({ phase: "retry", attempt, attempts, delayMs, error: lastError.message });
      await sleep(delayMs, signal);
    }
    try {
      const { bytes } = await downloadOnce(url, { partial, signal, onProgress, attempt, attempts });
      onProgress({ phase: "verify", loaded: bytes.length, total: bytes.length });
      const sha256 = await sha256Hex(bytes);
      if (want && sha256 && sha256 !== want) {
        // Never cached. A server that serves other bytes will do so again: no retry.
        throw new ModelLoadError(
          `the downloaded file has sha256 ${sha256}, but ${want} was expected; it was not used or cached`,
          { kind: "integrity", retryable: false },
        );
      }
      onProgress({ phase: "store" });
      const stored = await storeInCache(url, bytes, sha256);
      return { bytes, sha256, verified: !!(sha256 && want), source: "network", cached: stored };
    } catch (err) {
      if (!(err instanceof ModelLoadError)) throw err;
      lastError = err;
      partial = err.partial || null;
      if (!err.retryable) break;
    }
  }
  const tries = lastError.retryable ? ` after ${attempts} attempts` : "";
  const e = new ModelLoadError(`Could not download the model${tries}: ${lastError.message} (${url}).`, {
    kind: lastError.kind,
    retryable: false,
    cause: lastError,
  });
  throw e;
}
