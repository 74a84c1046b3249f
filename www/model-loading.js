// @ts-check
// Loading a model into the engines: its bytes from the cache, the network (www/model-store.js) or a local file,
// verified, then into every worker (a page's first load from the cache: into every worker while it is verified, the
// model in use only once it passed), then the vectors that go with it; the progress bar and the model's facts.
// On failure, a model loaded before stays in use.
import { ISOLATED, LAYOUT, THREADS, mark } from "./config.js";
import { byId } from "./dom.js";
import { call, engineCount, engineSimd, engineStatus, engineThreads, engineThreadsNote, enginesStarted, warmUpEngines } from "./engine-client.js";
import { stopRun } from "./generation.js";
import { ModelLoadError, formatBytes, hashAvailable, loadModelBytes, openCached, sha256Hex, verifyCached } from "./model-store.js";
import { REQUEST } from "./protocol.js";
import { reloadVectors, steering, vectorsLabel } from "./steering.js";
import { clearError, setStatus, showError } from "./status.js";

const el = {
  modelName: byId("model-name"),
  modelSource: byId("model-source"),
  progress: /** @type {HTMLProgressElement} */ (byId("model-progress")),
  progressLabel: byId("model-progress-label"),
  progressText: byId("model-progress-text"),
  modelFacts: byId("model-facts"),
  engineFacts: byId("engine-facts"),
  modelSha: byId("model-sha"),
  modelShape: byId("model-shape"),
  retry: byId("retry-model"),
  loadDtype: /** @type {HTMLSelectElement} */ (byId("load-dtype")),
};

/** @typedef {import("./config.js").ModelSource} ModelSource */

const model = {
  /** @type {ModelSource|null} the source of the model in use */
  source: null,
  /** @type {ModelSource|null} the source of the latest load, whether it worked or not (what Retry tries again) */
  attempted: null,
  /** @type {import("./protocol.js").EngineInfo|null} */
  info: null,
  /** @type {string|null} */
  sha: null,
  /** Counts the loads: a load that is no longer the latest stops where it is. */
  loadToken: 0,
};

/** URLs the page's Content-Security-Policy refused (a model URL among them explains a failed download). */
const cspBlocked = new Set();
/** The model URLs the page has tried (and their origins, as a violation report may give only the origin). */
const modelUrls = new Set();

/**
 * @typedef {object} LoadingHooks
 * @property {(step: "loading"|"downloading"|"verifying"|"loading-model") => void} loading  the page is loading
 * @property {() => void} ready  a model is loaded
 * @property {() => void} failed  no model could be loaded
 * @property {() => boolean} recovering  the engines are being restarted after a crash (no "Ready" status then)
 * @property {(reason: string) => void} restartEngines  the engines must start over (they disagree)
 */

/** @type {LoadingHooks} */
let hooks;

export function initModelLoading(/** @type {LoadingHooks} */ h) {
  hooks = h;
}

/** The model in use (null: none). */
export const modelInfo = () => model.info;
/** Where the model in use came from (null: none). */
export const modelSource = () => model.source;
/** What Retry loads: the model in use, else the latest one tried. */
export const retrySource = () => model.source || model.attempted;
/** The model state, for the debugging API. */
export const modelState = () => ({ ...model });
/** The engines were replaced: they hold no model. */
export function forgetModel() {
  model.info = null;
}

/** A Content-Security-Policy violation: remembered; whether it refused a model URL (loadModel then says so). */
export function noteCspViolation(/** @type {string} */ blockedURI) {
  cspBlocked.add(blockedURI);
  return modelUrls.has(blockedURI);
}

/** The "Engine" line of the model facts: the layout, the threads of the engine's matrix products, and its SIMD. */
export function showEngineFacts() {
  if (!enginesStarted()) return;
  const threads = engineThreads();
  const threadsText =
    THREADS > 1
      ? threads > 1
        ? `${threads} threads (cross-origin isolated)`
        : `1 thread (${engineThreadsNote() || "the threaded engine is unavailable"})`
      : `1 thread${ISOLATED ? "" : " (not cross-origin isolated)"}`;
  const simd = engineSimd();
  el.engineFacts.textContent =
    (LAYOUT === "pair" ? "two engines, one row each, 1 thread each" : `one engine, both rows as a batch · ${threadsText}`) +
    ` · ${simd === "relaxed-simd" ? "relaxed SIMD" : "SIMD128"}`;
  document.body.dataset.threads = String(threads);
  document.body.dataset.simd = simd;
}

/** Load a model into the engines, then its vectors; `quiet`: keep the alert as it is. */
export async function loadModel(/** @type {ModelSource} */ source, { quiet = false } = {}) {
  const token = ++model.loadToken;
  const stale = () => token !== model.loadToken;
  const hadModel = !!model.info;
  model.attempted = source;
  await stopRun();
  el.retry.hidden = true;
  hooks.loading("loading");
  el.modelName.textContent = source.label;
  if (!quiet) clearError();
  if (source.kind === "url") modelUrls.add(source.url).add(new URL(source.url).origin);
  let loaded = await loadCachedWhileVerifying(source, stale);
  if (loaded === undefined) loaded = await readThenLoad(source, stale, hadModel);
  if (!loaded || stale()) return;
  const { info, sha256, size, origin } = loaded;
  mark("engine-loaded", { loadMs: info.loadMs });
  // Without crypto.subtle (non-secure context) the engine hashed the bytes: check them now.
  const want = source.kind === "url" ? source.expectedSha256 : null;
  if (want && info.sha256 && info.sha256 !== want) {
    showError(`The model has sha256 ${info.sha256}, but ${want} was expected; it was not used.`);
    model.info = null;
    hooks.failed();
    return;
  }
  const modelChanged = model.sha !== info.sha256;
  Object.assign(model, { source, info, sha: info.sha256 || sha256 });
  showModelFacts(source, info, origin, want);
  showProgress({ label: "Ready", value: 1, text: `${formatBytes(size)} · ${origin}` });
  await reloadVectors(modelChanged);
  if (stale()) return;
  hooks.ready();
  mark("ready", { origin });
  warmUpEngines();
  if (!hooks.recovering()) {
    setStatus(`Ready: ${info.name || source.label}${steering() ? `, steering with ${vectorsLabel()}` : ", steering off"}.`, "ok");
  }
}

/** @typedef {{info: import("./protocol.js").EngineInfo, sha256: string|null, size: number, origin: string}} Loaded */

/**
 * A URL model's first load (no model in the engines: the page's start, or engines started over) from its cached copy:
 * every engine reads the copy and loads it while the page checks its SHA-256, all at once rather than one after the
 * other; the model counts as loaded only once the check has passed.
 * @param {ModelSource} source
 * @param {() => boolean} stale
 * @returns {Promise<Loaded|null|undefined>} undefined: no cached copy, or it failed its check (evicted; readThenLoad
 *   downloads it again); null: the engines could not load it (reported), or a newer load began
 */
async function loadCachedWhileVerifying(source, stale) {
  const want = source.kind === "url" ? source.expectedSha256 : null;
  if (source.kind !== "url" || !want || model.info || !hashAvailable()) return undefined;
  const blob = await openCached(source.url);
  if (stale()) return null;
  if (!blob) return undefined;
  const onEvent = (/** @type {any} */ e) => !stale() && onDownloadProgress(e);
  onEvent({ phase: "cache-read" });
  const checks = verifyCached(source.url, blob, want, onEvent);
  const loads = loadIntoEngines(blob, want, checks);
  showProgress({ label: "Verify", value: null, text: `Checking the SHA-256 of ${formatBytes(blob.size)} while the engines load it…` });
  const [verified, engines] = await Promise.allSettled([checks, loads]);
  if (stale()) return null;
  if (verified.status === "rejected" || !verified.value) return undefined;
  mark("model-bytes", { source: "cache", bytes: blob.size });
  if (engines.status === "rejected") {
    engineLoadFailed(source, engines.reason, false, blob.size);
    return null;
  }
  return { info: engines.value, sha256: want, size: blob.size, origin: "from cache" };
}

/**
 * The model's bytes read (readModelBytes: cache, network or file, verified), then loaded into the engines.
 * @param {ModelSource} source
 * @param {() => boolean} stale
 * @param {boolean} hadModel
 * @returns {Promise<Loaded|null>} null: either step failed (reported), or a newer load began
 */
async function readThenLoad(source, stale, hadModel) {
  let bytes, sha256, origin;
  try {
    ({ bytes, sha256, origin } = await readModelBytes(source, stale));
  } catch (err) {
    if (!stale()) modelReadFailed(source, err, hadModel);
    return null;
  }
  if (stale()) return null;
  const size = bytes.length; // (the bytes are transferred to a worker: read their length first)
  try {
    return { info: await loadIntoEngines(bytes, sha256), sha256, size, origin };
  } catch (err) {
    if (!stale()) engineLoadFailed(source, err, hadModel, size);
    return null;
  }
}

/**
 * The model's bytes, their sha256 (when known) and where they came from ("from cache", "local file", …).
 * @param {ModelSource} source
 * @param {() => boolean} stale
 * @returns {Promise<{bytes: Uint8Array, sha256: string|null, origin: string}>}
 */
async function readModelBytes(source, stale) {
  if (source.kind === "url") {
    if (source.crossOrigin) {
      setStatus(
        `Fetching the model from ${new URL(source.url).origin}. This page's Content-Security-Policy ` +
          "allows only its own origin unless the server adds that origin (see index.html).",
      );
    }
    const r = await loadModelBytes({
      url: source.url,
      expectedSha256: source.expectedSha256,
      onProgress: (e) => !stale() && onDownloadProgress(e),
    });
    mark("model-bytes", { source: r.source, bytes: r.bytes.length });
    const origin = r.source === "cache" ? "from cache" : r.cached ? "downloaded, cached" : "downloaded, not cached";
    return { bytes: r.bytes, sha256: r.sha256, origin };
  }
  showProgress({ label: "File", value: null, text: `Reading ${source.file.name}…` });
  const bytes = new Uint8Array(await source.file.arrayBuffer());
  showProgress({ label: "Verify", value: null, text: `Computing the SHA-256 of ${formatBytes(bytes.length)}…` });
  return { bytes, sha256: await sha256Hex(bytes), origin: "local file" };
}

/** The model's bytes could not be had: why (with a hint when the CSP or CORS is the cause). */
function modelReadFailed(/** @type {ModelSource} */ source, /** @type {any} */ err, /** @type {boolean} */ hadModel) {
  const msg = err instanceof ModelLoadError ? err.message : `Could not read the model: ${err.message || err}`;
  let hint = "";
  if (source.kind === "url") {
    const modelOrigin = new URL(source.url).origin;
    if ([...cspBlocked].some((u) => u === source.url || u === modelOrigin)) {
      hint =
        ` The page's Content-Security-Policy does not allow connections to ${modelOrigin} (connect-src): build the site ` +
        "with scripts/build-site.sh --model-url, which adds it, or serve the page with DESTEIN_CONNECT_SRC.";
    } else if (source.crossOrigin && err.kind === "network") {
      hint =
        ` The server at ${modelOrigin} did not let this page read the file: it must answer with CORS headers ` +
        "(Access-Control-Allow-Origin), or it could not be reached.";
    }
  }
  showError(msg + hint + (hadModel ? " The previous model is still loaded." : ""));
  showProgress({ label: "Download", value: 0, text: "Failed." });
  el.retry.hidden = false;
  if (hadModel) hooks.ready();
  else hooks.failed();
  setStatus("The model could not be loaded.");
}

/**
 * Every engine loads the model (each its own copy of the bytes); the first one's info. From a Blob (a cached copy),
 * each worker reads the bytes itself.
 */
async function loadIntoEngines(
  /** @type {Uint8Array|Blob} */ bytes,
  /** @type {string|null} */ sha256,
  /** @type {Promise<boolean>} whether the bytes passed their check (a failed one: the engines load others next) */ checked = Promise.resolve(true),
) {
  hooks.loading("loading-model");
  const count = engineCount();
  const engines = count > 1 ? `${count} engines` : "the engine";
  const size = bytes instanceof Blob ? bytes.size : bytes.length;
  showProgress({ label: "Engine", value: null, text: `Loading ${formatBytes(size)} into ${engines}…` });
  setStatus(`Loading the model into ${engines}…`);
  if (!count) throw new Error(engineStatus().error || "the engine is not running");
  /** @type {(ArrayBuffer|Blob)[]} */
  let parts;
  if (bytes instanceof Blob) {
    parts = Array(count).fill(bytes); // each worker reads the Blob itself
  } else {
    if (bytes.byteOffset !== 0 || bytes.byteLength !== bytes.buffer.byteLength) bytes = bytes.slice();
    // Each worker gets its own copy of the bytes (the first one the original), transferred, not cloned again.
    const whole = bytes;
    parts = Array.from({ length: count }, (_, i) => /** @type {ArrayBuffer} */ ((i === 0 ? whole : whole.slice()).buffer));
  }
  const dtype = el.loadDtype.value;
  const settled = await Promise.allSettled(
    parts.map((b, i) =>
      call(REQUEST.loadModel, { bytes: b, sha256: sha256 || undefined, loadDtype: dtype }, b instanceof Blob ? [] : [b], i),
    ),
  );
  const failed = /** @type {PromiseRejectedResult|undefined} */ (settled.find((r) => r.status === "rejected"));
  if (failed) {
    if (settled.some((r) => r.status === "fulfilled") && !failed.reason?.fatal) {
      // The engines now hold different models: start them over with the model in use before.
      checked.then((ok) => ok && hooks.restartEngines(`the engines disagree after a failed load: ${failed.reason.message}`));
    }
    throw failed.reason;
  }
  return /** @type {import("./protocol.js").EngineInfo} */ (/** @type {PromiseFulfilledResult<any>} */ (settled[0]).value);
}

/** The engines could not load the model: why; the previous model, when there is one, stays. */
function engineLoadFailed(/** @type {ModelSource} */ source, /** @type {any} */ err, /** @type {boolean} */ hadModel, /** @type {number} */ size) {
  const what = source.kind === "file" ? `'${source.file.name}'` : "the model";
  const { ok: engineOk, error: engineError } = engineStatus();
  if (engineOk === false) {
    showError(`${engineError} (The model itself was fetched and verified.)`);
  } else {
    showError(
      `The engine could not load ${what}: ${err.message}` +
        (hadModel && model.info ? ` Still using ${model.info.name || "the previous model"}.` : ""),
    );
  }
  showProgress({
    label: "Engine",
    value: 0,
    text: engineOk === false ? `${formatBytes(size)} fetched and verified; the engine is missing.` : "Failed.",
  });
  if (model.info) {
    el.modelName.textContent = model.source?.label || model.info.name;
    hooks.ready();
  } else {
    hooks.failed();
    el.retry.hidden = source.kind !== "url" || engineOk === false;
  }
  setStatus(engineOk === false ? "The inference engine is not available." : "The model could not be loaded.");
}

/**
 * The facts of the model in use: its name, where it came from, its sha256 and its shape.
 * @param {ModelSource} source
 * @param {import("./protocol.js").EngineInfo} info
 * @param {string} origin
 * @param {string|null} want  the sha256 it was checked against
 */
function showModelFacts(source, info, origin, want) {
  document.body.dataset.modelSource = origin;
  el.modelName.textContent = `${source.label}${info.name && info.name !== source.label ? ` — ${info.name}` : ""}`;
  el.modelSource.textContent = origin;
  el.modelSource.hidden = false;
  el.modelFacts.hidden = false;
  el.modelSha.textContent =
    `${model.sha}` + (want ? " (verified)" : source.kind === "url" && !want ? " (computed; no sha256 given to check against)" : "");
  el.modelShape.textContent =
    `${info.architecture} · ${info.layers} layers × ${info.heads} heads (${info.kvHeads} KV) × ${info.headDim} · ` +
    `hidden ${info.hidden} · vocab ${info.vocab} · context ${info.contextLength} · ${info.loadDtype}` +
    (info.loadMs != null ? ` · loaded in ${(info.loadMs / 1000).toFixed(1)} s` : "");
}

/** @param {{label?: string, value?: number|null, text?: string}} progress */
function showProgress({ label, value = null, text }) {
  if (label) el.progressLabel.textContent = label;
  if (value == null) el.progress.removeAttribute("value");
  else el.progress.value = Math.max(0, Math.min(1, value));
  if (text != null) el.progressText.textContent = text;
}

/** "12.0 MB / 100.0 MB · 3.1 MB/s · 29 s left · attempt 2 of 3". @param {any} e a download event */
function describeDownload(e) {
  const parts = [];
  parts.push(e.total ? `${formatBytes(e.loaded)} / ${formatBytes(e.total)}` : formatBytes(e.loaded));
  if (e.bytesPerSec > 0) {
    parts.push(`${(e.bytesPerSec / 1024 / 1024).toFixed(1)} MB/s`);
    if (e.total) {
      const left = (e.total - e.loaded) / e.bytesPerSec;
      parts.push(left < 1 ? "<1 s left" : `${Math.ceil(left)} s left`);
    }
  }
  if (e.attempts > 1 && e.attempt > 1) parts.push(`attempt ${e.attempt} of ${e.attempts}`);
  return parts.join(" · ");
}

/** The model store's progress events (www/model-store.js loadModelBytes). @param {any} e */
function onDownloadProgress(e) {
  switch (e.phase) {
    case "cache-read":
      mark("cache-read");
      showProgress({ label: "Cache", value: null, text: "Reading the cached model…" });
      setStatus("Reading the model from this browser's cache…");
      break;
    case "evicted":
      setStatus("The cached model failed its SHA-256 check and was removed; downloading it again…");
      break;
    case "download":
      hooks.loading("downloading");
      showProgress({
        label: "Download",
        value: e.total ? e.loaded / e.total : null,
        text: describeDownload(e),
      });
      if (e.loaded === 0) setStatus(`Downloading the model${e.total ? ` (${formatBytes(e.total)})` : ""}…`);
      break;
    case "retry":
      setStatus(
        `Download attempt ${e.attempt - 1} failed (${e.error}); trying again in ${(e.delayMs / 1000).toFixed(1)} s…`,
      );
      break;
    case "verify":
      mark("verify");
      hooks.loading("verifying");
      showProgress({ label: "Verify", value: null, text: `Checking the SHA-256 of ${formatBytes(e.total)}…` });
      break;
    case "store":
      showProgress({ label: "Cache", value: null, text: "Saving to this browser's cache for next time…" });
      break;
  }
}
