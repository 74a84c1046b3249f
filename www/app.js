// DeStein browser demo: page logic. Inference runs in www/worker.js; this module never blocks on it.
// Model text is only ever inserted with textContent (the page's CSP enforces Trusted Types, so innerHTML with a
// string would throw).
import {
  ModelLoadError,
  formatBytes,
  loadModelBytes,
  readSiteConfig,
  sha256Hex,
  cacheAvailable,
} from "./model-store.js";
import { initLab } from "./lab.js";
import { ensureIsolation, describeIsolation, serviceWorkerUrl } from "./isolation.js";

// ---------------------------------------------------------------------------------------------------------------
// Configuration

const params = new URLSearchParams(location.search);
// Request limits: the engine's own (src/generation.rs, steering.rs), replaced by what it reports in its "hello".
const limits = { maxPromptChars: 4000, maxNewTokens: 512 };
const VECTOR_DIR = params.get("vectors") || "www/vectors/";
const VECTOR_FILES = {
  heads: "smollm2-135m.heads.safetensors",
  attn_out: "smollm2-135m.attn_out.safetensors",
};
const DEBUG = params.get("debug") === "1";
// The toxicity judge's files (same origin; ?judges=DIR/ points elsewhere, e.g. for tests).
const JUDGE_DIR = params.get("judges") || "data/judges/";
const JUDGE_FILES = { weights: "tox_block.safetensors", vocab: "tox_block_vocab.json" };
const MODES = ["rotate", "headwise", "headwise-reference", "add"];

// User Timing marks of the load and of each run ("destein:…"), so that tools (scripts/bench-browser.mjs, the
// browser's performance panel) can read what the page experienced: performance.getEntriesByType("mark").
function mark(name, detail) {
  try {
    performance.mark(`destein:${name}`, detail === undefined ? undefined : { detail });
  } catch {
    /* User Timing unavailable */
  }
}

/** The model to load: ?model=URL (&sha256=HEX), else the site's default (destein-config.json, readSiteConfig). */
function modelSourceFromParams(defaultModel) {
  const url = params.get("model");
  const sha = (params.get("sha256") || "").trim().toLowerCase();
  const defaultUrl = new URL(defaultModel.url, location.href);
  const source = (abs, expectedSha256, label) => ({
    kind: "url",
    url: abs.href,
    expectedSha256,
    label,
    crossOrigin: abs.origin !== location.origin,
  });
  if (sha && !/^[0-9a-f]{64}$/.test(sha)) {
    return {
      error: `The sha256 parameter '${sha}' is not 64 hex digits; it was ignored.`,
      ...source(defaultUrl, defaultModel.sha256, defaultModel.label),
    };
  }
  if (!url) return source(defaultUrl, sha || defaultModel.sha256, defaultModel.label);
  const abs = new URL(url, location.href);
  const isDefault = abs.href === defaultUrl.href;
  return source(
    abs,
    sha || (isDefault ? defaultModel.sha256 : null),
    isDefault ? defaultModel.label : decodeURIComponent(abs.pathname.split("/").pop() || abs.href),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// DOM

const $ = (id) => document.getElementById(id);
const el = {
  status: $("status"),
  alert: $("alert"),
  alertText: $("alert-text"),
  alertDismiss: $("alert-dismiss"),
  modelName: $("model-name"),
  modelSource: $("model-source"),
  progress: $("model-progress"),
  progressLabel: $("model-progress-label"),
  progressText: $("model-progress-text"),
  modelFacts: $("model-facts"),
  engineFacts: $("engine-facts"),
  modelSha: $("model-sha"),
  modelShape: $("model-shape"),
  vectorsInfo: $("vectors-info"),
  isolationInfo: $("isolation-info"),
  retry: $("retry-model"),
  dropzone: $("dropzone"),
  fileInput: $("file-input"),
  form: $("controls"),
  prompt: $("prompt"),
  promptCount: $("prompt-count"),
  alpha: $("alpha"),
  extraVectors: $("extra-vectors"),
  extraHint: $("extra-hint"),
  alphaValue: $("alpha-value"),
  site: $("site"),
  temperature: $("temperature"),
  topP: $("top-p"),
  topK: $("top-k"),
  maxTokens: $("max-tokens"),
  seed: $("seed"),
  seedRandom: $("seed-random"),
  loadDtype: $("load-dtype"),
  start: $("start"),
  stop: $("stop"),
  reset: $("reset"),
  revealToxic: $("reveal-toxic"),
  examplesNeutral: $("examples-neutral"),
  examplesToxic: $("examples-toxic"),
  outs: [$("out-raw"), $("out-steered")],
  panes: [$("pane-raw"), $("pane-steered")],
  paneSubs: [$("pane-raw-sub"), $("pane-steered-sub")],
  legendMin: $("legend-min"),
  legendMax: $("legend-max"),
  legendMid: $("legend-mid"),
  steerPrompt: $("steer-prompt"),
  tokenReadout: $("token-readout"),
  formula: $("formula"),
  formulaMode: $("formula-mode"),
  formulaAlpha: $("formula-alpha"),
  formulaNote: $("formula-note"),
  angleFacts: $("angle-facts"),
  diagramLayer: $("diagram-layer"),
  diagramAngle: $("diagram-angle"),
  diagramAngleValue: $("diagram-angle-value"),
  diagramReadout: $("diagram-readout"),
  heatmapWrap: $("heatmap-wrap"),
  heatmapReadout: $("heatmap-readout"),
  judgeSlots: [$("judge-raw"), $("judge-steered")],
  judgeNote: $("judge-note"),
};

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

// ---------------------------------------------------------------------------------------------------------------
// Status and errors

function setPhase(phase) {
  document.body.dataset.phase = phase;
  updateButtons();
  lab?.refresh();
}

function setStatus(text, kind = "") {
  el.status.textContent = text;
  el.status.className = `status ${kind}`;
}

function showError(message) {
  el.alertText.textContent = message;
  el.alert.hidden = false;
  document.body.dataset.lastError = message;
}

function clearError() {
  el.alert.hidden = true;
  el.alertText.textContent = "";
}

el.alertDismiss.addEventListener("click", clearError);

// ---------------------------------------------------------------------------------------------------------------
// State

/** The vector lab's handle (www/lab.js), once set up. */
let lab = null;

const state = {
  workers: [], // one (batch layout) or two (pair layout) Web Workers, each with its own Engine
  engineOk: null, // null: not known yet; true; false (engine module missing)
  engineError: null,
  source: null, // {kind:"url", url, expectedSha256, label} | {kind:"file", file, label}
  modelInfo: null,
  modelSha: null,
  modelLoadToken: 0,
  vectors: null, // loadVectors() metadata
  vectorsBytes: null, // Uint8Array of the vector file in use (kept for a worker restart)
  vectorsLabel: null,
  extras: [], // vector files added to steer together with the main one: [{meta, bytes, label, alpha}] (slots 1, 2)
  run: null,
  crashTimes: [],
  recovering: false,
  judge: { status: "loading", bytes: null, error: null }, // status: "loading" | "ready" | "failed"
};

// ---------------------------------------------------------------------------------------------------------------
// Worker client

let nextId = 1;
const pending = new Map();

class EngineError extends Error {
  constructor({ message, name, fatal }) {
    super(message);
    this.name = "EngineError";
    this.engineName = name;
    this.fatal = !!fatal;
  }
}

// Trusted Types: the only script URLs this page ever creates are its worker and its service worker (coi-sw.js next
// to index.html, see www/isolation.js).
const ttPolicy = globalThis.trustedTypes?.createPolicy?.("destein-worker", {
  createScriptURL: (url) => {
    const u = new URL(url, location.href);
    const worker = u.origin === location.origin && u.pathname.endsWith("/www/worker.js");
    if (!worker && u.href !== serviceWorkerUrl()) throw new TypeError(`refusing script URL ${url}`);
    return u.href;
  },
});
const trustedScriptURL = (url) => (ttPolicy ? ttPolicy.createScriptURL(url) : url);

// The panes run in one of two layouts (scripts/bench-browser.mjs and scripts/bench-threads.mjs measure them; see README
// "Browser performance"):
//   pair:  two workers, one Engine each: worker 0 decodes the raw row, worker 1 the steered row, in parallel, with
//          a core each. It costs a second engine (about 138 MB of wasm memory) and a little more loading.
//   batch: one worker decodes both rows as a batch of two: half the memory. When the page is cross-origin isolated
//          (SharedArrayBuffer), its engine is the threaded build and splits each matrix product over THREADS threads
//          (one per core, up to 4): 1.38× the single-threaded batch speed per pane on two cores.
// Default: pair on two or more cores with 4 GB or more, else batch (threaded when isolated). On two cores the
// threaded batch measured the same as pair with the workers alone (1.02×) and a little slower in the page (36.9 vs
// 38.4–41.9 tok/s per pane, reports/threads-bench.json), so pair stays the default there; more cores (pair with threads
// in each worker) could not be measured on the project's machines. ?workers=1 forces batch, ?workers=2 pair;
// ?threads=N sets the batch engine's threads (1: the single-threaded build).
const CORES = navigator.hardwareConcurrency || 1;
const ISOLATED = globalThis.crossOriginIsolated === true;
const LAYOUT = (() => {
  const w = params.get("workers");
  if (w === "1") return "batch";
  if (w === "2") return "pair";
  const memoryGb = navigator.deviceMemory ?? Infinity; // Chromium only, coarse (0.25 … 8)
  return CORES >= 2 && memoryGb >= 4 ? "pair" : "batch";
})();
const THREADS = (() => {
  if (LAYOUT !== "batch") return 1;
  const t = Number(params.get("threads"));
  if (Number.isInteger(t) && t >= 1) return Math.min(t, 16);
  return ISOLATED ? Math.min(CORES, 4) : 1;
})();
document.body.dataset.layout = LAYOUT;
/** What each worker decodes (Engine.start's `rows`), and which panes its step rows fill. */
const PARTS = LAYOUT === "pair" ? [{ rows: "raw", panes: [0] }, { rows: "steered", panes: [1] }] : [{ rows: "both", panes: [0, 1] }];
/** The worker that decodes the steered pane: α and mode changes go there. */
const STEERED_WORKER = PARTS.findIndex((p) => p.panes.includes(1));
function spawnWorkers() {
  const url = new URL(`./worker.js${THREADS > 1 ? `?threads=${THREADS}` : ""}`, import.meta.url).href;
  state.engineOk = null;
  state.workers = PARTS.map((part, i) => {
    const w = new Worker(trustedScriptURL(url), {
      type: "module",
      name: PARTS.length > 1 ? `destein-engine-${part.rows}` : "destein-engine",
    });
    w.hello = null; // the engine module's load result, from its "hello"
    w.onmessage = (ev) => onWorkerMessage(w, ev.data);
    w.onerror = (ev) => {
      ev.preventDefault?.();
      if (!state.workers.includes(w)) return;
      if (w.hello === null) workerDidNotStart(url, ev.message);
      else handleWorkerDeath(ev.message || `worker ${i + 1} reported an error`);
    };
    w.onmessageerror = () => {
      if (state.workers.includes(w)) handleWorkerDeath("a message from the worker could not be read");
    };
    return w;
  });
}

/** The "Engine" line of the model facts: the layout, and the threads of the engine's matrix products. */
function showEngineFacts() {
  const ws = state.workers;
  if (!ws.length || ws.some((w) => w.hello !== true)) return;
  const threads = ws[0].threads;
  const threadsText =
    THREADS > 1
      ? threads > 1
        ? `${threads} threads (cross-origin isolated)`
        : `1 thread (${ws[0].threadsNote || "the threaded engine is unavailable"})`
      : `1 thread${ISOLATED ? "" : " (not cross-origin isolated)"}`;
  el.engineFacts.textContent =
    LAYOUT === "pair" ? "two engines, one row each, 1 thread each" : `one engine, both rows as a batch · ${threadsText}`;
  document.body.dataset.threads = String(threads);
}

/** Send a request to worker `index`; {id, promise}. */
function post(type, payload = {}, transfer = [], index = 0) {
  const id = nextId++;
  const promise = new Promise((resolve, reject) => {
    const w = state.workers[index];
    if (!w) return reject(new Error("the engine is not running"));
    pending.set(id, { resolve, reject, type });
    w.postMessage({ type, id, ...payload }, transfer);
  });
  return { id, promise };
}
const call = (type, payload, transfer, index = 0) => post(type, payload, transfer, index).promise;
/** The same request to every worker (payload(i) builds each one's, e.g. its own copy of some bytes); [values]. */
function callAll(type, payload = () => ({}), transfer = () => []) {
  if (!state.workers.length) return Promise.reject(new Error("the engine is not running"));
  return Promise.all(
    state.workers.map((_, i) => {
      const p = payload(i);
      return call(type, p, transfer(p), i);
    }),
  );
}

function onWorkerMessage(w, msg) {
  if (!state.workers.includes(w)) return;
  switch (msg.type) {
    case "hello":
      w.hello = msg.ok;
      w.threads = msg.threads ?? 1;
      w.threadsNote = msg.threadsNote ?? null;
      if (msg.limits) applyLimits(msg.limits);
      showEngineFacts();
      if (!msg.ok) {
        state.engineOk = false;
        state.engineError = msg.error.message;
        showError(msg.error.message);
      } else if (state.workers.every((x) => x.hello === true)) {
        state.engineOk = true;
      }
      break;
    case "result": {
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else {
        const err = new EngineError(msg.error);
        p.reject(err);
        if (err.fatal) handleWorkerDeath(err.message);
      }
      break;
    }
    case "step":
      onStep(msg);
      break;
    case "resteer":
      onResteer(msg);
      break;
    case "done":
      onDone(msg);
      break;
    case "deriveProgress":
      deriveListeners.get(msg.id)?.(msg);
      break;
    case "judgeError":
      judgeFailed(`it failed while scoring (${msg.error?.message || "unknown error"})`);
      break;
  }
}

/** The worker script failed before its engine said hello (missing or broken file): no restart, say which file. */
async function workerDidNotStart(url, detail) {
  const old = state.workers;
  state.workers = [];
  for (const w of old) w.terminate();
  const status = await fetch(url, { method: "HEAD", cache: "no-store" }).then((r) => r.status, () => null);
  const file = new URL(url).pathname.split("/").slice(-2).join("/");
  state.engineOk = false;
  state.engineError =
    status === 404
      ? `The inference engine cannot start: ${file} is missing on the server (HTTP 404). Upload the whole site folder (scripts/build-site.sh).`
      : `The inference engine cannot start: its worker ${file} failed to load${detail ? ` (${detail})` : ""}.`;
  for (const [, p] of pending) p.reject(new Error(state.engineError));
  pending.clear();
  showError(state.engineError);
  setStatus("The inference engine is not available.");
}

async function handleWorkerDeath(reason) {
  const old = state.workers;
  if (!old.length) return; // already being replaced
  state.workers = [];
  for (const w of old) w.terminate();
  for (const [, p] of pending) p.reject(new Error(`the engine stopped (${reason})`));
  pending.clear();
  if (state.run && !state.run.ended) endRun("error");
  state.modelInfo = null;

  const now = Date.now();
  state.crashTimes = state.crashTimes.filter((t) => now - t < 60_000);
  state.crashTimes.push(now);
  if (state.crashTimes.length > 3) {
    showError(
      `The engine stopped unexpectedly (${reason}) and has crashed ${state.crashTimes.length} times in a minute; ` +
        "it was not restarted. Reload the page to try again.",
    );
    setPhase("failed");
    setStatus("Engine stopped.");
    return;
  }
  showError(`The engine stopped unexpectedly (${reason}). Restarting it and reloading the model from the cache…`);
  state.recovering = true;
  spawnWorkers();
  sendJudge(); // the judge's bytes are kept: no refetch
  try {
    if (state.source) {
      await loadModel(state.source, { quiet: true });
      if (state.modelInfo) {
        showError(`The engine stopped unexpectedly (${reason}). It was restarted and the model reloaded.`);
        setStatus("Recovered: the engine was restarted and the model reloaded.", "ok");
      }
    }
  } finally {
    state.recovering = false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Loading the model

function showProgress({ label, value = null, text }) {
  if (label) el.progressLabel.textContent = label;
  if (value == null) el.progress.removeAttribute("value");
  else el.progress.value = Math.max(0, Math.min(1, value));
  if (text != null) el.progressText.textContent = text;
}

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

function onDownloadProgress(e) {
  switch (e.phase) {
    case "cache-read":
      showProgress({ label: "Cache", value: null, text: "Reading the cached model…" });
      setStatus("Reading the model from this browser's cache…");
      break;
    case "evicted":
      setStatus("The cached model failed its SHA-256 check and was removed; downloading it again…");
      break;
    case "download":
      setPhase("downloading");
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
      setPhase("verifying");
      showProgress({ label: "Verify", value: null, text: `Checking the SHA-256 of ${formatBytes(e.total)}…` });
      break;
    case "store":
      showProgress({ label: "Cache", value: null, text: "Saving to this browser's cache for next time…" });
      break;
  }
}

/** URLs the page's Content-Security-Policy refused (a model URL among them explains a failed download). */
const cspBlocked = new Set();
/** The model URLs the page has tried (and their origins, as a violation report may give only the origin). */
const modelUrls = new Set();

/**
 * Load a model into the engine. source: {kind:"url", url, expectedSha256, label} or {kind:"file", file, label}.
 * On failure, a previously loaded model stays in use.
 */
async function loadModel(source, { quiet = false } = {}) {
  const token = ++state.modelLoadToken;
  const stale = () => token !== state.modelLoadToken;
  const hadModel = !!state.modelInfo;
  if (state.run && !state.run.ended) await stopRun();
  el.retry.hidden = true;
  setPhase("loading");
  el.modelName.textContent = source.label;
  if (!quiet) clearError();

  let bytes, sha256, origin;
  if (source.kind === "url") modelUrls.add(source.url).add(new URL(source.url).origin);
  try {
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
      ({ bytes, sha256 } = r);
      origin = r.source === "cache" ? "from cache" : r.cached ? "downloaded, cached" : "downloaded, not cached";
      mark("model-bytes", { source: r.source, bytes: bytes.length });
    } else {
      showProgress({ label: "File", value: null, text: `Reading ${source.file.name}…` });
      bytes = new Uint8Array(await source.file.arrayBuffer());
      showProgress({ label: "Verify", value: null, text: `Computing the SHA-256 of ${formatBytes(bytes.length)}…` });
      sha256 = await sha256Hex(bytes);
      origin = "local file";
    }
  } catch (err) {
    if (stale()) return;
    const msg = err instanceof ModelLoadError ? err.message : `Could not read the model: ${err.message || err}`;
    const modelOrigin = source.kind === "url" ? new URL(source.url).origin : null;
    let hint = "";
    if (source.kind === "url" && [...cspBlocked].some((u) => u === source.url || u === modelOrigin)) {
      hint =
        ` The page's Content-Security-Policy does not allow connections to ${modelOrigin} (connect-src): build the site ` +
        "with scripts/build-site.sh --model-url, which adds it, or serve the page with DESTEIN_CONNECT_SRC.";
    } else if (source.kind === "url" && source.crossOrigin && err.kind === "network") {
      hint =
        ` The server at ${modelOrigin} did not let this page read the file: it must answer with CORS headers ` +
        "(Access-Control-Allow-Origin), or it could not be reached.";
    }
    showError(msg + hint + (hadModel ? " The previous model is still loaded." : ""));
    showProgress({ label: "Download", value: 0, text: "Failed." });
    el.retry.hidden = false;
    if (hadModel) setPhase("ready");
    else setPhase("failed");
    setStatus("The model could not be loaded.");
    return;
  }
  if (stale()) return;

  const size = bytes.length;
  setPhase("loading-model");
  const engines = state.workers.length > 1 ? `${state.workers.length} engines` : "the engine";
  showProgress({ label: "Engine", value: null, text: `Loading ${formatBytes(size)} into ${engines}…` });
  setStatus(`Loading the model into ${engines}…`);
  let info;
  try {
    if (!state.workers.length) throw new Error(state.engineError || "the engine is not running");
    if (bytes.byteOffset !== 0 || bytes.byteLength !== bytes.buffer.byteLength) bytes = bytes.slice();
    // Each worker gets its own copy of the bytes (the first one the original), transferred, not cloned again.
    const copies = state.workers.map((_, i) => (i === 0 ? bytes : bytes.slice()));
    const dtype = el.loadDtype.value;
    const settled = await Promise.allSettled(
      copies.map((b, i) => call("loadModel", { bytes: b.buffer, sha256: sha256 || undefined, loadDtype: dtype }, [b.buffer], i)),
    );
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) {
      if (settled.some((r) => r.status === "fulfilled") && !failed.reason?.fatal) {
        // The engines now hold different models: start them over with the model in use before.
        queueMicrotask(() => handleWorkerDeath(`the engines disagree after a failed load: ${failed.reason.message}`));
      }
      throw failed.reason;
    }
    info = settled[0].value;
  } catch (err) {
    if (stale()) return;
    const what = source.kind === "file" ? `'${source.file.name}'` : "the model";
    if (state.engineOk === false) {
      showError(`${state.engineError} (The model itself was fetched and verified.)`);
    } else {
      showError(
        `The engine could not load ${what}: ${err.message}` +
          (hadModel && state.modelInfo ? ` Still using ${state.modelInfo.name || "the previous model"}.` : ""),
      );
    }
    showProgress({
      label: "Engine",
      value: 0,
      text: state.engineOk === false ? `${formatBytes(size)} fetched and verified; the engine is missing.` : "Failed.",
    });
    if (state.modelInfo) {
      el.modelName.textContent = state.source?.label || state.modelInfo.name;
      setPhase("ready");
    } else {
      setPhase("failed");
      el.retry.hidden = source.kind !== "url" || state.engineOk === false;
    }
    setStatus(state.engineOk === false ? "The inference engine is not available." : "The model could not be loaded.");
    return;
  }
  if (stale()) return;
  mark("engine-loaded", { loadMs: info.loadMs });
  // Without crypto.subtle (non-secure context) the engine hashed the bytes: check them now.
  const want = source.kind === "url" ? source.expectedSha256 : null;
  if (want && info.sha256 && info.sha256 !== want) {
    showError(`The model has sha256 ${info.sha256}, but ${want} was expected; it was not used.`);
    state.modelInfo = null;
    setPhase("failed");
    return;
  }
  const modelChanged = state.modelSha !== info.sha256;
  state.source = source;
  state.modelInfo = info;
  state.modelSha = info.sha256 || sha256;
  document.body.dataset.modelSource = origin;
  el.modelName.textContent = `${source.label}${info.name && info.name !== source.label ? ` — ${info.name}` : ""}`;
  el.modelSource.textContent = origin;
  el.modelSource.hidden = false;
  el.modelFacts.hidden = false;
  el.modelSha.textContent =
    `${state.modelSha}` + (want ? " (verified)" : source.kind === "url" && !want ? " (computed; no sha256 given to check against)" : "");
  el.modelShape.textContent =
    `${info.architecture} · ${info.layers} layers × ${info.heads} heads (${info.kvHeads} KV) × ${info.headDim} · ` +
    `hidden ${info.hidden} · vocab ${info.vocab} · context ${info.contextLength} · ${info.loadDtype}` +
    (info.loadMs != null ? ` · loaded in ${(info.loadMs / 1000).toFixed(1)} s` : "");
  showProgress({ label: "Ready", value: 1, text: `${formatBytes(size)} · ${origin}` });

  // Vectors: reuse the ones in hand when the model did not change (worker restart, dtype change), else fetch the
  // vector file of the selected site (or keep a user-supplied file and let the engine judge it).
  state.vectors = null;
  if (!modelChanged && state.vectorsBytes) {
    await loadVectorBytes(state.vectorsBytes, state.vectorsLabel, { fallback: false, keepControls: true });
  } else {
    await loadVectorsForSite(el.site.value);
  }
  await restoreExtras(modelChanged);
  if (stale()) return;
  setPhase("ready");
  mark("ready", { origin });
  if (!state.recovering) {
    setStatus(
      `Ready: ${info.name || source.label}${state.vectors ? `, steering with ${state.vectorsLabel}` : ", steering off"}.`,
      "ok",
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Vectors

async function loadVectorsForSite(site) {
  const file = VECTOR_FILES[site];
  const url = new URL(VECTOR_DIR + file, location.href).href;
  let bytes;
  setStatus(`Loading the ${site} vectors…`);
  try {
    const resp = await fetch(url, { cache: "no-cache" });
    if (!resp.ok) throw new Error(`the server answered HTTP ${resp.status}`);
    bytes = new Uint8Array(await resp.arrayBuffer());
  } catch (err) {
    vectorsFailed(`Could not fetch the vector file ${VECTOR_DIR + file}: ${err.message}.`);
    return false;
  }
  return loadVectorBytes(bytes, `${file}`, { fallback: true, site });
}

async function loadVectorBytes(bytes, label, { fallback = true, keepControls = false } = {}) {
  const previous = state.vectors ? { bytes: state.vectorsBytes, label: state.vectorsLabel } : null;
  let meta;
  try {
    // Send copies: the page keeps the bytes for a worker restart.
    [meta] = await callAll("loadVectors", () => ({ bytes: bytes.slice().buffer }), (p) => [p.bytes]);
  } catch (err) {
    if (err.fatal || !state.workers.length) return false;
    const modelName = state.modelInfo?.name || "this model";
    let msg = `The vector file ${label} cannot be used with ${modelName}: ${err.message}`;
    if (fallback && previous && previous.bytes !== bytes) {
      try {
        const [back] = await callAll("loadVectors", () => ({ bytes: previous.bytes.slice().buffer }), (p) => [p.bytes]);
        applyVectors(back, previous.bytes, previous.label, { keepControls: true });
        showError(`${msg} Still steering with ${previous.label}.`);
        return false;
      } catch {
        /* fall through: steering off */
      }
    }
    vectorsFailed(msg);
    return false;
  }
  applyVectors(meta, bytes, label, { keepControls });
  return true;
}

function vectorsFailed(message) {
  state.vectors = null;
  state.vectorsBytes = null;
  state.vectorsLabel = null;
  state.extras = [];
  renderExtras();
  callAll("clearVectors").catch(() => {});
  showError(`${message} Steering is off: both panes show the unsteered model. Pick another site or drop a vector file made for this model.`);
  el.alpha.disabled = true;
  el.alpha.value = "0";
  el.vectorsInfo.textContent = "none (steering off)";
  renderHeatmap(null);
  updateAlphaUI();
}

/** The neutral read-out baselines of the shipped vector files (www/vectors/readout-baselines.json), fetched once. */
let baselinesPromise = null;
function readoutBaselines() {
  baselinesPromise ??= fetch(new URL(VECTOR_DIR + "readout-baselines.json", location.href).href)
    .then((r) => (r.ok ? r.json() : {}))
    .catch(() => ({}));
  return baselinesPromise;
}

/** Centre the colour scale on the loaded file's neutral read-out, when its bytes are a shipped file's. */
async function applyBaseline(bytes) {
  const [baselines, digest] = await Promise.all([readoutBaselines(), crypto.subtle.digest("SHA-256", bytes)]);
  if (state.vectorsBytes !== bytes) return; // another file was loaded meanwhile
  const sha = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const entry = Object.values(baselines).find((e) => e?.sha256 === sha);
  state.baseline = Number.isFinite(entry?.neutral) ? entry.neutral : 0;
  el.legendMid.textContent = entry ? `neutral ${signed(state.baseline, 3)}` : "0";
  el.legendMid.title = entry
    ? `centre of the scale: this file's neutral read-out ${signed(state.baseline, 3)} (${entry.texts})`
    : "centre of the scale: 0 (no neutral baseline is known for this file)";
}

function applyVectors(meta, bytes, label, { keepControls = false } = {}) {
  const keptAlpha = keepControls && !el.alpha.disabled ? Number(el.alpha.value) : null;
  state.baseline = 0;
  applyBaseline(bytes).catch(() => {});
  state.vectors = meta;
  state.vectorsBytes = bytes;
  state.vectorsLabel = label;
  if (meta.site && el.site.value !== meta.site && [...el.site.options].some((o) => o.value === meta.site)) {
    el.site.value = meta.site;
  }
  const max = Number(meta.maxAlpha) || 1;
  el.alpha.max = String(max);
  el.alpha.step = String(max <= 2 ? 0.01 : 0.05);
  const rec = Math.min(max, Math.max(0, Number(meta.recommendedAlpha) || 0));
  el.alpha.value = String(keptAlpha != null ? Math.min(max, keptAlpha) : rec);
  el.alpha.disabled = false;
  if (!keepControls && MODES.includes(meta.recommendedMode)) setMode(meta.recommendedMode);
  if (!keepControls) el.steerPrompt.checked = meta.recommendedScope !== "generated";
  el.vectorsInfo.textContent =
    `${label} · site ${meta.site} · ${meta.layers} layers × ${meta.heads} heads × ${meta.headDim} · ` +
    `${meta.pairs} steering pairs · made for ${meta.modelName} · recommended α ${fmt(rec)} (${meta.recommendedMode}` +
    `${meta.recommendedScope === "generated" ? ", new tokens only" : ""}), ` +
    `max ${fmt(max)}`;
  renderHeatmap(meta);
  updateAlphaUI();
}

// ---------------------------------------------------------------------------------------------------------------
// Several vectors at once: files added to steer together with the main one (slots 1 and 2 of the engine), each
// with its own α (the combined formulas are this project's generalisation, see src/steering.rs)

const MAX_VECTORS = 3;

async function addSteeringVector(bytes, label) {
  if (!state.vectors) {
    showError(`${label} cannot be added: no main vector file is loaded (pick a site, or drop a vector file).`);
    return false;
  }
  if (state.extras.length >= MAX_VECTORS - 1) {
    showError(`${MAX_VECTORS} vectors already steer together: remove one before adding ${label}.`);
    return false;
  }
  if (state.run && !state.run.ended) await stopRun();
  let meta;
  try {
    [meta] = await callAll("addVectors", () => ({ bytes: bytes.slice().buffer }), (p) => [p.bytes]);
  } catch (err) {
    if (!err.fatal) showError(`${label} cannot steer together with ${state.vectorsLabel}: ${err.message}`);
    return false;
  }
  state.extras.push({ meta, bytes, label, alpha: Math.min(Number(meta.maxAlpha) || 1, Math.max(0, Number(meta.recommendedAlpha) || 0)) });
  renderExtras();
  clearError();
  setStatus(`Steering with ${[state.vectorsLabel, ...state.extras.map((x) => x.label)].join(" + ")}.`, "ok");
  return true;
}

/** Remove every added file (engine slots from the last), saying why. */
async function dropExtras(why) {
  for (let slot = state.extras.length; slot >= 1; slot--) await callAll("removeVectors", () => ({ slot })).catch(() => {});
  state.extras = [];
  renderExtras();
  if (why) showError(why);
}

/** After the model was (re)loaded: the added files come back when the model is the same, else they go. */
async function restoreExtras(modelChanged) {
  const extras = state.extras;
  state.extras = [];
  if (extras.length && (modelChanged || !state.vectors)) {
    showError(`${extras.map((x) => x.label).join(" and ")} no longer steer${extras.length > 1 ? "" : "s"}: made for the previous model or without a main vector file.`);
  } else {
    for (const x of extras) {
      try {
        const [meta] = await callAll("addVectors", () => ({ bytes: x.bytes.slice().buffer }), (p) => [p.bytes]);
        state.extras.push({ ...x, meta });
      } catch (err) {
        showError(`${x.label} could not be added again: ${err.message}`);
      }
    }
  }
  renderExtras();
}

function renderExtras() {
  el.extraVectors.replaceChildren(
    ...state.extras.map((x, i) => {
      const id = `extra-alpha-${i + 1}`;
      const max = Number(x.meta.maxAlpha) || 1;
      const input = h("input", { type: "range", id, min: "0", max: String(max), step: "0.01", value: String(x.alpha), dataset: { slot: String(i + 1) } });
      return h(
        "div",
        { class: "field extra-vector" },
        h("label", { for: id, text: `α of ${x.label}${x.meta.concept ? ` (${x.meta.concept})` : ""}` }),
        h("div", { class: "slider-row" }, input, h("output", { for: id, class: "mono", text: fmt(x.alpha) }), h("button", { type: "button", class: "button small ghost", dataset: { removeSlot: String(i + 1) }, "aria-label": `remove ${x.label} from the steering`, text: "✕" })),
      );
    }),
  );
  el.extraHint.hidden = state.extras.length >= MAX_VECTORS - 1;
  updateFormula();
}

el.extraVectors.addEventListener("input", (ev) => {
  const slot = Number(ev.target.dataset?.slot);
  const x = state.extras[slot - 1];
  if (!x) return;
  x.alpha = Number(ev.target.value);
  ev.target.nextElementSibling.textContent = fmt(x.alpha);
  updateFormula();
  call("setAlpha", { alpha: x.alpha, slot }, [], STEERED_WORKER).catch((err) => showError(`α was not applied: ${err.message}`));
});
el.extraVectors.addEventListener("change", (ev) => {
  const slot = Number(ev.target.dataset?.slot);
  if (state.extras[slot - 1]) resteerOnRelease(state.extras[slot - 1].alpha, slot);
});
el.extraVectors.addEventListener("click", async (ev) => {
  const slot = Number(ev.target.closest?.("button")?.dataset?.removeSlot);
  if (!slot || !state.extras[slot - 1]) return;
  for (const b of el.extraVectors.querySelectorAll("button")) b.disabled = true; // one removal at a time
  if (state.run && !state.run.ended) await stopRun();
  const [x] = state.extras.splice(slot - 1, 1);
  await callAll("removeVectors", () => ({ slot })).catch((err) => showError(`${x.label} was not removed: ${err.message}`));
  renderExtras();
  setStatus(`Steering with ${[state.vectorsLabel, ...state.extras.map((e) => e.label)].join(" + ")}.`, "ok");
});

// ---------------------------------------------------------------------------------------------------------------
// Controls

function currentMode() {
  return document.querySelector('input[name="mode"]:checked')?.value || "rotate";
}
function setMode(mode) {
  const r = document.querySelector(`input[name="mode"][value="${mode}"]`);
  if (r) r.checked = true;
  if (mode === "headwise-reference") document.querySelector("details.advanced").open = true;
  updateFormula();
}
function currentAlpha() {
  return state.vectors ? Number(el.alpha.value) : 0;
}
function fmt(x, d = 2) {
  return Number(x).toFixed(d);
}

function updateButtons() {
  const phase = document.body.dataset.phase;
  const running = !!(state.run && !state.run.ended);
  el.start.disabled = running || !state.modelInfo || !["ready"].includes(phase);
  el.stop.disabled = !running;
  document.body.dataset.run = running ? "running" : state.run ? "done" : "idle";
}

function updateAlphaUI() {
  const a = currentAlpha();
  el.alphaValue.textContent = fmt(a);
  el.alpha.setAttribute("aria-valuetext", `α ${fmt(a)}${state.vectors ? "" : " (steering off)"}`);
  updateFormula();
}

function updatePromptCount() {
  const n = el.prompt.value.length;
  el.promptCount.textContent = `${n} / ${limits.maxPromptChars}`;
  el.promptCount.classList.toggle("over", n > limits.maxPromptChars);
}

function applyLimits({ maxPromptChars, maxNewTokens }) {
  Object.assign(limits, { maxPromptChars, maxNewTokens });
  el.prompt.maxLength = maxPromptChars;
  el.maxTokens.max = String(maxNewTokens);
  updatePromptCount();
}

el.alpha.addEventListener("input", () => {
  updateAlphaUI();
  if (!state.vectors) return;
  // Applies from the next token of a running generation.
  call("setAlpha", { alpha: Number(el.alpha.value) }, [], STEERED_WORKER).catch((err) =>
    showError(`α was not applied: ${err.message}`),
  );
});

el.alpha.addEventListener("change", () => {
  if (state.vectors) resteerOnRelease(Number(el.alpha.value), 0);
});
// The prompt is read once, at the start: a change of scope re-steers the whole text (when that is on), or applies
// to the next run.
el.steerPrompt.addEventListener("change", () => {
  if (state.vectors) resteerOnRelease(Number(el.alpha.value), 0);
});

/** "Re-steer the whole text" (the default): on release, the steered pane is rewritten as a run at this α. */
function resteerOnRelease(alpha, slot) {
  const choice = document.querySelector('input[name="alpha-applies"]:checked')?.value;
  const run = state.run;
  if (choice !== "resteer" || !run || run.reason === "error" || run.parts.every((p) => p.steps === 0)) return;
  const t0 = performance.now();
  setStatus(`Re-steering the whole text at α = ${fmt(alpha)}…`);
  call("resteer", { alpha, slot, steerPrompt: el.steerPrompt.checked }, [], STEERED_WORKER)
    .then((r) => {
      if (!r) return;
      mark("resteer", { steps: r.steps, ms: r.ms, wallMs: performance.now() - t0 });
      if (state.run === run) setStatus(`Re-steered ${r.steps} steps at α = ${fmt(alpha)} in ${fmtMs(r.ms)}.`, "ok");
    })
    .catch((err) => showError(`The text was not re-steered: ${err.message}`));
}

/** The steered worker restarts its run at a new α: its panes go back to the prompt, then the replay fills them. */
function onResteer(msg) {
  const run = state.run;
  const part = run?.parts.find((p) => p.runId === msg.runId);
  if (!part) return;
  Object.assign(run, { ended: false, reason: null });
  // The run's parameters now describe the re-steered text (what the run-finished event reports).
  if (!msg.slot) run.params = { ...run.params, alpha: msg.alpha, steerPrompt: el.steerPrompt.checked };
  Object.assign(part, { done: false, reason: null, steps: 0, stepMsSum: 0, prefillMs: null });
  for (const i of part.panes) {
    Object.assign(run.panes[i], { tokens: 0, pendingIds: [], finished: false, stopReason: null, lastAlpha: null, lastMode: null, text: "", judge: null });
    el.outs[i].replaceChildren();
    renderPromptInto(el.outs[i], run.params);
    renderJudgeSlot(i, null);
  }
  const marker = h("span", {
    class: "resteer-marker",
    role: "note",
    title: `the whole text was re-steered at α = ${fmt(msg.alpha)}: this is what a run at that α writes with the same seed`,
    dataset: { alpha: String(msg.alpha) },
    text: `↻ re-steered at α = ${fmt(msg.alpha)}`,
  });
  el.outs[1].append(marker);
  run.resteered = (run.resteered || 0) + 1;
  updateButtons();
}

for (const r of document.querySelectorAll('input[name="mode"]')) {
  r.addEventListener("change", () => {
    updateFormula();
    call("setMode", { mode: currentMode() }, [], STEERED_WORKER).catch((err) =>
      showError(`The mode was not applied: ${err.message}`),
    );
  });
}

el.site.addEventListener("change", async () => {
  if (!state.modelInfo) return;
  if (state.run && !state.run.ended) await stopRun();
  setPhase("loading");
  const other = state.extras.filter((x) => x.meta.site !== el.site.value);
  if (other.length) await dropExtras(`${other.map((x) => x.label).join(" and ")} steer${other.length > 1 ? "" : "s"} site ${other[0].meta.site}, not ${el.site.value}: removed from the steering.`);
  await loadVectorsForSite(el.site.value);
  setPhase(state.modelInfo ? "ready" : "failed");
  if (state.vectors) setStatus(`Steering with ${state.vectorsLabel}.`, "ok");
});

el.loadDtype.addEventListener("change", () => {
  if (state.source) loadModel(state.source);
});

el.prompt.addEventListener("input", updatePromptCount);
el.prompt.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    startRun();
  }
});
el.form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  startRun();
});
el.stop.addEventListener("click", () => stopRun());
el.reset.addEventListener("click", async () => {
  if (state.run && !state.run.ended) await stopRun();
  state.run = null;
  clearPanes();
  clearError();
  updateButtons();
  setStatus(state.modelInfo ? "Cleared." : el.status.textContent);
});
el.seedRandom.addEventListener("click", () => {
  el.seed.value = String(crypto.getRandomValues(new Uint32Array(1))[0] % 1_000_000);
});
el.retry.addEventListener("click", () => {
  loadModel(state.source || modelSourceFromParams());
});

// ---------------------------------------------------------------------------------------------------------------
// Generation

function readNumber(input, { min, max, integer = false, name }) {
  const v = Number(input.value);
  if (input.value.trim() === "" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    input.focus();
    throw new Error(`${name} must be ${integer ? "a whole number" : "a number"} from ${min} to ${max}.`);
  }
  return v;
}

function readParams() {
  const prompt = el.prompt.value;
  if (prompt.trim() === "") {
    el.prompt.focus();
    throw new Error("The prompt is empty: write something, or pick an example prompt.");
  }
  if (prompt.length > limits.maxPromptChars) {
    el.prompt.focus();
    throw new Error(`The prompt is ${prompt.length} characters long; at most ${limits.maxPromptChars} are allowed.`);
  }
  return {
    prompt,
    chat: document.querySelector('input[name="format"]:checked')?.value === "chat",
    maxNewTokens: readNumber(el.maxTokens, { min: 1, max: limits.maxNewTokens, integer: true, name: "Max new tokens" }),
    temperature: readNumber(el.temperature, { min: 0, max: 2, name: "Temperature" }),
    topP: readNumber(el.topP, { min: 0.01, max: 1, name: "Top-p" }),
    topK: readNumber(el.topK, { min: 0, max: 100000, integer: true, name: "Top-k" }),
    seed: readNumber(el.seed, { min: 0, max: 4294967295, integer: true, name: "Seed" }),
    alpha: currentAlpha(),
    alphas: state.extras.map((x) => x.alpha),
    mode: currentMode(),
    steerPrompt: el.steerPrompt.checked,
  };
}

function clearPanes() {
  for (let i = 0; i < 2; i++) {
    el.outs[i].replaceChildren();
    el.outs[i].style.setProperty("--scale", "0.1");
    for (const dd of el.panes[i].querySelectorAll("[data-stat]")) dd.textContent = dd.dataset.stat === "tokens" ? "0" : "–";
    renderJudgeSlot(i, null);
  }
  el.tokenReadout.textContent = "";
  el.legendMin.textContent = "−0.10";
  el.legendMax.textContent = "+0.10";
  el.paneSubs[1].textContent = `α = ${fmt(currentAlpha())}`;
}

function renderPrompt(params) {
  for (let i = 0; i < 2; i++) renderPromptInto(el.outs[i], params);
}

function renderPromptInto(out, params) {
  if (params.chat) out.append(h("span", { class: "prompt-label", text: "User" }));
  out.append(h("span", { class: "prompt", text: params.prompt }));
  if (params.chat) out.append(h("span", { class: "prompt-label", text: "\nAssistant" }));
}

async function startRun() {
  if (!state.modelInfo || document.body.dataset.phase !== "ready") {
    showError("The model is not loaded yet.");
    return;
  }
  let p;
  try {
    p = readParams();
  } catch (err) {
    showError(err.message);
    return;
  }
  if (state.run && !state.run.ended) await stopRun();
  clearError();
  clearPanes();
  renderPrompt(p);
  el.paneSubs[1].textContent = state.vectors ? `α = ${fmt(p.alpha)} · ${p.mode}${p.steerPrompt ? "" : " · new tokens only"}` : "steering off";
  // One start request per worker: the batch layout's worker decodes both rows, the pair layout's one row each.
  const starts = PARTS.map((part, i) => post("start", { params: { ...p, rows: part.rows } }, [], i));
  const id = starts[0].id;
  // Only the current run's marks are kept: a long session must not grow the timeline without bound.
  for (const name of ["run-start", "first-token", "run-end", "resteer"]) performance.clearMarks?.(`destein:${name}`);
  mark("run-start", { runId: id });
  document.body.dataset.runId = String(id);
  const run = (state.run = {
    runId: id,
    params: p,
    t0: performance.now(),
    firstAt: null,
    lastAt: null,
    maxAbs: 0,
    ended: false,
    parts: PARTS.map((part, i) => ({
      ...part,
      worker: i,
      runId: starts[i].id,
      steps: 0,
      stepMsSum: 0,
      prefillMs: null,
      done: false,
      reason: null,
    })),
    panes: [0, 1].map(() => ({
      tokens: 0,
      pendingIds: [],
      finished: false,
      stopReason: null,
      lastAlpha: null,
      lastMode: null,
      text: "",
      firstAt: null,
      lastAt: null,
      judge: null,
    })),
  });
  updateButtons();
  setStatus("Generating…");
  const settled = await Promise.allSettled(starts.map((x) => x.promise));
  const failed = settled.find((r) => r.status === "rejected");
  if (state.run !== run) return;
  if (failed) {
    run.ended = true;
    run.reason = "error";
    for (const part of run.parts) call("stop", {}, [], part.worker).catch(() => {});
    updateButtons();
    showError(`The engine refused to start: ${failed.reason.message}`);
    setStatus("Not started.");
    return;
  }
  run.promptTokens = settled[0].value?.promptTokens;
  if (run.firstAt == null) setStatus(`Reading the prompt (${run.promptTokens ?? "?"} tokens)…`);
}

function stopRun() {
  if (!state.run || state.run.ended) return Promise.resolve();
  const run = state.run;
  // Steps already on their way (a worker can be a few tokens ahead of what is painted) are not shown: the panes end
  // where they were when Stop was pressed.
  run.stopping = true;
  return new Promise((resolve) => {
    run.onEnded = resolve;
    callAll("stop").catch(() => {});
    // If a worker is gone, end the run here.
    setTimeout(() => {
      if (!run.ended) {
        endRun("stopped", run);
      }
    }, 5000);
  });
}

const NICE_SCALES = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1];

function onStep(msg) {
  const run = state.run;
  const part = run?.parts.find((p) => p.runId === msg.runId);
  if (!part || run.ended || run.stopping) return;
  const now = performance.now();
  if (run.firstAt == null) {
    run.firstAt = now;
    mark("first-token", { runId: run.runId });
    setStatus("Generating…");
  }
  run.lastAt = now;
  part.steps++;
  if (msg.index === 0) part.prefillMs = Number(msg.stepMs) || 0;
  else part.stepMsSum += Number(msg.stepMs) || 0;
  // Row j of this worker's step is pane part.panes[j].
  msg.rows.forEach((row, j) => appendToken(run, part.panes[j], row, msg, now, msg.judge?.[j]));
  scheduleStats();
}

function appendToken(run, i, row, msg, now, judgeScore) {
  const pane = run.panes[i];
  if (!row || pane.finished) return;
  if (judgeScore != null && Number.isFinite(judgeScore)) pane.judge = judgeScore;
  const out = el.outs[i];
  const atBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 8;
  if (i === 1) {
    const a = Number(row.alpha);
    if (pane.lastAlpha != null && Math.abs(a - pane.lastAlpha) > 1e-9) {
      out.append(
        h("span", {
          class: "alpha-marker",
          role: "note",
          title: `α changed to ${fmt(a)} from this token on`,
          dataset: { alpha: String(a), step: String(msg.index) },
          text: `α→${fmt(a)}`,
        }),
      );
    }
    if (pane.lastMode != null && msg.mode && msg.mode !== pane.lastMode) {
      out.append(
        h("span", {
          class: "alpha-marker mode-marker",
          role: "note",
          title: `fusion mode changed to ${msg.mode} from this token on`,
          text: `mode→${msg.mode}`,
        }),
      );
    }
    if (state.vectors && (pane.lastAlpha !== a || pane.lastMode !== msg.mode)) {
      el.paneSubs[1].textContent = `α = ${fmt(a)} · ${msg.mode}`;
    }
    pane.lastAlpha = a;
    pane.lastMode = msg.mode;
  }
  if (row.tokenId != null && !(row.finished && row.text === "" && row.stopReason === "eos")) {
    pane.pendingIds.push(row.tokenId);
  }
  if (row.text) {
    const proj = row.projection;
    const span = h("span", {
      class: (proj == null ? "tok noproj" : "tok") + (msg.resteer && i === 1 ? " resteered" : ""),
      text: row.text,
      dataset: {
        tokenIds: pane.pendingIds.join(" "),
        firstStep: String(msg.index - pane.pendingIds.length + 1),
        step: String(msg.index),
        alpha: String(row.alpha ?? 0),
        projection: proj == null ? "" : String(proj),
      },
    });
    if (proj != null) {
      const rel = proj - (state.baseline || 0);
      span.dataset.baseline = String(state.baseline || 0);
      span.style.setProperty("--p", String(rel));
      span.title = `projection ${signed(proj)} (${signed(rel)} from neutral) · α ${fmt(row.alpha ?? 0)}`;
      run.maxAbs = Math.max(run.maxAbs, Math.abs(rel));
      updateScale(run);
    } else {
      span.title = `no vectors loaded · α ${fmt(row.alpha ?? 0)}`;
    }
    out.append(span);
    pane.text += row.text;
    pane.tokens += pane.pendingIds.length;
    pane.pendingIds = [];
  }
  if (pane.firstAt == null) pane.firstAt = now;
  pane.lastAt = now;
  if (row.finished) {
    pane.finished = true;
    pane.stopReason = row.stopReason;
    pane.tokens += pane.pendingIds.length;
    if (pane.pendingIds.length) {
      out.append(
        h("span", {
          class: "tok noproj",
          dataset: { tokenIds: pane.pendingIds.join(" "), firstStep: String(msg.index - pane.pendingIds.length + 1), step: String(msg.index) },
          text: "",
        }),
      );
      pane.pendingIds = [];
    }
    out.append(h("span", { class: "stop-note", text: ` [${row.stopReason || "end"}]` }));
  }
  if (atBottom) out.scrollTop = out.scrollHeight;
}

function signed(x, d = 3) {
  const v = Number(x);
  return `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(d)}`;
}

function updateScale(run) {
  const want = Math.max(0.02, run.maxAbs);
  const scale = NICE_SCALES.find((s) => s >= want) || 1;
  if (scale === run.scale) return;
  run.scale = scale;
  for (const out of el.outs) out.style.setProperty("--scale", String(scale));
  el.legendMin.textContent = signed(-scale, 2);
  el.legendMax.textContent = signed(scale, 2);
}

let statsQueued = false;
function scheduleStats() {
  if (statsQueued) return;
  statsQueued = true;
  requestAnimationFrame(() => {
    statsQueued = false;
    renderStats();
  });
}

function fmtMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Tokens of a pane so far, and its decoding speed: tokens after the first, over the time since the first. */
function paneRate(p) {
  const n = p.tokens + p.pendingIds.length;
  const tps = n >= 2 && p.lastAt > p.firstAt ? (n - 1) / ((p.lastAt - p.firstAt) / 1000) : null;
  return { n, tps };
}

function renderStats() {
  const run = state.run;
  if (!run) return;
  for (let i = 0; i < 2; i++) {
    const p = run.panes[i];
    const set = (k, v) => (el.panes[i].querySelector(`[data-stat="${k}"]`).textContent = v);
    const { n, tps } = paneRate(p);
    set("tokens", String(n));
    if (p.firstAt != null) set("ttft", fmtMs(p.firstAt - run.t0));
    if (tps != null) set("tps", tps.toFixed(1));
    if (p.stopReason) set("stop", p.stopReason);
    renderJudgeSlot(i, p.judge);
  }
}

/** The numbers of a run as the page measured them (for ?debug=1 tools such as scripts/bench-browser.mjs). */
function runStats(run = state.run) {
  if (!run) return null;
  const t = runTimes(run);
  return {
    runId: run.runId,
    layout: LAYOUT,
    threads: state.workers[0]?.threads ?? null,
    ended: run.ended,
    reason: run.reason ?? null,
    promptTokens: run.promptTokens ?? null,
    steps: t.steps,
    prefillMs: t.prefillMs,
    stepMsMean: t.stepMsMean,
    ttftMs: run.firstAt != null ? run.firstAt - run.t0 : null,
    parts: run.parts.map((p) => ({ rows: p.rows, steps: p.steps, prefillMs: p.prefillMs })),
    panes: run.panes.map((p) => {
      const { n, tps } = paneRate(p);
      return {
        tokens: n,
        ttftMs: p.firstAt != null ? p.firstAt - run.t0 : null,
        decodeTokPerS: tps,
        stopReason: p.stopReason,
        judge: p.judge,
        text: p.text,
      };
    }),
  };
}

/** Steps, prompt time (the slowest worker's first step) and mean later step time (over the workers) of a run. */
function runTimes(run) {
  const parts = run.parts;
  const steps = Math.max(0, ...parts.map((p) => p.steps));
  const pre = parts.map((p) => p.prefillMs).filter((x) => x != null);
  const per = parts.filter((p) => p.steps > 1).map((p) => p.stepMsSum / (p.steps - 1));
  return {
    steps,
    prefillMs: pre.length ? Math.max(...pre) : null,
    stepMsMean: per.length ? per.reduce((a, b) => a + b, 0) / per.length : null,
  };
}

function onDone(msg) {
  const run = state.run;
  const part = run?.parts.find((p) => p.runId === msg.runId);
  if (!part || run.ended) return;
  part.done = true;
  part.reason = msg.reason;
  if (msg.reason === "error") return endRun("error", run, msg.error);
  if (run.parts.every((p) => p.done)) endRun(run.parts.some((p) => p.reason === "stopped") ? "stopped" : "finished", run);
}

function endRun(reason, run = state.run, error = null) {
  if (!run || run.ended) return;
  run.ended = true;
  run.reason = reason;
  mark("run-end", { runId: run.runId, reason });
  // A worker still decoding (the other one failed): stop it.
  for (const part of run.parts) if (!part.done) call("stop", {}, [], part.worker).catch(() => {});
  for (const p of run.panes) if (!p.stopReason) p.stopReason = reason === "finished" ? "end" : reason;
  renderStats();
  updateButtons();
  const total = run.lastAt && run.t0 ? run.lastAt - run.t0 : 0;
  const { steps, prefillMs, stepMsMean: perStep } = runTimes(run);
  if (reason === "error") {
    showError(`Generation failed: ${error?.message || "the engine stopped"}`);
    setStatus("Generation failed.");
    if (error?.fatal) handleWorkerDeath(error.message);
  } else {
    const parts = [`${steps} steps in ${fmtMs(total)}`];
    if (prefillMs != null) parts.push(`prompt (${run.promptTokens ?? "?"} tokens) read in ${fmtMs(prefillMs)}`);
    if (perStep) {
      parts.push(
        LAYOUT === "pair"
          ? `then ${perStep.toFixed(0)} ms per step for each row (two engines in parallel)`
          : `then ${perStep.toFixed(0)} ms per step for both rows${state.workers[0]?.threads > 1 ? ` (${state.workers[0].threads} threads)` : ""}`,
      );
    }
    setStatus(`${reason === "stopped" ? "Stopped" : "Finished"}: ${parts.join(" · ")}.`, "ok");
  }
  run.onEnded?.();
  document.dispatchEvent(
    new CustomEvent("destein:run-finished", {
      detail: { prompt: run.params.prompt, raw: run.panes[0].text, steered: run.panes[1].text, params: run.params, reason },
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Token inspection (hover, or keyboard in a focused pane)

function describeToken(i, span) {
  const ids = span.dataset.tokenIds ? span.dataset.tokenIds.split(" ").length : 0;
  const proj = span.dataset.projection;
  const pane = i === 0 ? "Raw" : "Steered";
  const where =
    proj === "" || proj == null
      ? "no projection (no vectors)"
      : `projection ${signed(proj)}, ${signed(Number(proj) - Number(span.dataset.baseline || 0))} from neutral (${Number(proj) >= Number(span.dataset.baseline || 0) ? "toward" : "away from"} toxic, at the position that produced it)`;
  return `${pane}, step ${Number(span.dataset.step) + 1}: “${span.textContent}” · ${where} · α ${fmt(span.dataset.alpha || 0)}${ids > 1 ? ` · ${ids} tokens` : ""}`;
}

for (let i = 0; i < 2; i++) {
  const out = el.outs[i];
  out.addEventListener("mouseover", (ev) => {
    const t = ev.target.closest?.(".tok");
    if (t && out.contains(t)) el.tokenReadout.textContent = describeToken(i, t);
  });
  out.addEventListener("keydown", (ev) => {
    const toks = [...out.querySelectorAll(".tok")];
    if (!toks.length) return;
    let idx = toks.findIndex((t) => t.classList.contains("inspect"));
    const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (ev.key in keys) idx = idx < 0 ? (keys[ev.key] > 0 ? 0 : toks.length - 1) : Math.max(0, Math.min(toks.length - 1, idx + keys[ev.key]));
    else if (ev.key === "Home") idx = 0;
    else if (ev.key === "End") idx = toks.length - 1;
    else return;
    ev.preventDefault();
    for (const t of out.querySelectorAll(".tok.inspect")) t.classList.remove("inspect");
    toks[idx].classList.add("inspect");
    toks[idx].scrollIntoView({ block: "nearest" });
    el.tokenReadout.textContent = describeToken(i, toks[idx]);
  });
  out.addEventListener("blur", () => {
    for (const t of out.querySelectorAll(".tok.inspect")) t.classList.remove("inspect");
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Heat map of per-head probe accuracy (layers × heads), keyboard navigable with a roving tabindex

/** The probe-accuracy heat map (and per-layer ‖z‖) of `meta` into `wrap`; the main card's by default, the vector
 * lab's results too. `legend`: also update the main card's colour legend. */
function renderHeatmap(meta, wrap = el.heatmapWrap, readout = el.heatmapReadout, legend = true) {
  readout.textContent = "";
  const acc = meta?.probeAccuracy;
  if (!acc || !acc.length) {
    wrap.replaceChildren(
      h("p", { class: "placeholder", text: meta ? "This vector file has no probe accuracies." : "Load a vector file to see its probe accuracies." }),
    );
    return;
  }
  const layers = acc.length;
  const heads = Math.max(...Array.from(acc, (r) => r.length));
  const norms = meta.layerNorms && meta.layerNorms.length === layers ? Array.from(meta.layerNorms) : null;
  const maxNorm = norms ? Math.max(...norms.map(Math.abs), 1e-12) : 1;
  const headRow = h("tr", {}, h("th", { scope: "col", text: "layer" }));
  for (let j = 0; j < heads; j++) headRow.append(h("th", { scope: "col", text: `h${j}` }));
  if (norms) headRow.append(h("th", { scope: "col", text: "‖z‖", title: "norm of the layer's detox direction" }));
  const table = h(
    "table",
    { class: "heatmap", role: "grid", "aria-label": `Probe accuracy, ${layers} layers by ${heads} heads`, "aria-describedby": "heatmap-hint" },
    h("thead", {}, headRow),
  );
  const tbody = h("tbody");
  let best = { v: -Infinity, l: 0, h: 0, n: 0 };
  const finite = acc.flatMap((r) => Array.from(r, Number)).filter(Number.isFinite);
  const lo = finite.length ? Math.min(...finite) : 0.5;
  const hi = finite.length ? Math.max(...finite) : 1;
  table.style.setProperty("--lo", String(lo));
  table.style.setProperty("--hi", String(hi));
  if (legend) {
    $("acc-lo").textContent = lo.toFixed(2);
    $("acc-mid").textContent = ((lo + hi) / 2).toFixed(2);
    $("acc-hi").textContent = hi.toFixed(2);
  }
  for (let l = 0; l < layers; l++) {
    const tr = h("tr", {}, h("th", { scope: "row", text: String(l) }));
    for (let j = 0; j < heads; j++) {
      const v = Number(acc[l][j]);
      if (v > best.v) best = { v, l, h: j, n: 1 };
      else if (v === best.v) best.n++;
      const td = h("td", {
        class: "cell",
        role: "gridcell",
        tabindex: "-1",
        title: `layer ${l}, head ${j}: accuracy ${Number.isFinite(v) ? v.toFixed(3) : "n/a"}`,
        "aria-label": `layer ${l}, head ${j}: ${Number.isFinite(v) ? v.toFixed(3) : "not available"}`,
        dataset: { layer: String(l), head: String(j), value: String(v) },
      });
      td.style.setProperty("--v", String(Number.isFinite(v) ? v : 0.5));
      tr.append(td);
    }
    if (norms) {
      const td = h("td", { class: "norm", title: `layer ${l}: ‖z‖ = ${norms[l].toPrecision(3)}` }, h("span", { class: "norm-bar" }));
      td.firstChild.style.setProperty("--w", String(Math.abs(norms[l]) / maxNorm));
      tr.append(td);
    }
    tbody.append(tr);
  }
  table.append(tbody);
  const first = tbody.querySelector("td.cell");
  if (first) first.tabIndex = 0;
  table.addEventListener("keydown", (ev) => {
    const cur = ev.target.closest?.("td.cell");
    if (!cur) return;
    let l = Number(cur.dataset.layer);
    let j = Number(cur.dataset.head);
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (ev.key in moves) {
      l = Math.max(0, Math.min(layers - 1, l + moves[ev.key][0]));
      j = Math.max(0, Math.min(heads - 1, j + moves[ev.key][1]));
    } else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = heads - 1;
    else if (ev.key === "PageUp") l = 0;
    else if (ev.key === "PageDown") l = layers - 1;
    else return;
    ev.preventDefault();
    const next = table.querySelector(`td.cell[data-layer="${l}"][data-head="${j}"]`);
    if (next) {
      cur.tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
    }
  });
  const show = (ev) => {
    const c = ev.target.closest?.("td.cell");
    if (!c) return;
    for (const a of table.querySelectorAll("td.cell.active")) a.classList.remove("active");
    c.classList.add("active");
    readout.textContent = `Layer ${c.dataset.layer}, head ${c.dataset.head}: probe accuracy ${Number(c.dataset.value).toFixed(3)}`;
  };
  table.addEventListener("focusin", show);
  table.addEventListener("mouseover", show);
  wrap.replaceChildren(table);
  const mean = finite.reduce((a, b) => a + b, 0) / Math.max(1, finite.length);
  readout.textContent = Number.isFinite(best.v)
    ? `Mean accuracy ${mean.toFixed(3)}. Best ${best.v.toFixed(3)}: layer ${best.l}, head ${best.h}` +
      (best.n > 1 ? ` and ${best.n - 1} more.` : ".")
    : "";
}

// ---------------------------------------------------------------------------------------------------------------
// The active fusion formula, and what it does to an activation

/** Angle (degrees) by which a unit activation with cos(a, z) = c turns under n(a) − k·n(z); NaN if undefined. */
export function turnAngle(c, k) {
  const len = Math.sqrt(Math.max(0, 1 - 2 * k * c + k * k));
  if (len < 1e-9) return NaN;
  return (Math.acos(Math.max(-1, Math.min(1, (1 - k * c) / len))) * 180) / Math.PI;
}

function updateFormula() {
  const mode = currentMode();
  const a = currentAlpha();
  const A = fmt(a);
  el.formulaMode.textContent = mode;
  el.formulaAlpha.textContent = A;
  let formula, note;
  const facts = [];
  const orth = Math.atan(a) * (180 / Math.PI);
  const aligned = a < 1 ? "0° (it only shrinks, then is rescaled)" : a === 1 ? "undefined (it collapses to zero)" : "180° (it flips)";
  switch (mode) {
    case "headwise":
      formula =
        `for each head h:\n  c_h = cos(a_h, z_h)\n  λ_h = 1 + max(0, c_h)\n  a′_h = ‖a_h‖ · n( n(a_h) − ${A} · λ_h · n(z_h) )`;
      note = "Rotate each head on its own. Heads already pointing toward toxic (c_h > 0) are pushed up to twice as hard; every head keeps its length.";
      facts.push(`A head orthogonal to z_h (c_h = 0) turns by atan(α) = ${orth.toFixed(1)}°.`);
      facts.push(`A head with c_h = 0.5 gets λ = 1.5 and turns by ${fmtAngle(turnAngle(0.5, 1.5 * a))}.`);
      facts.push(`A head pointing away from z_h (c_h = −0.5) turns by ${fmtAngle(turnAngle(-0.5, a))}.`);
      break;
    case "headwise-reference":
      formula =
        `for each head h:\n  c_h = cos(a_h, z_h)\n  λ_h = 1 + max(0, c_h)\n  u_h = n( n(a_h) − ${A} · λ_h · n(z_h) )\n` +
        `a′ = concat_h(u_h) · ‖a‖ / ‖concat_h(u_h)‖`;
      note = "The per-head branch of the released DeStein code: like head-wise, but every head ends up with the same length ‖a‖/√H.";
      facts.push(`A head orthogonal to z_h turns by atan(α) = ${orth.toFixed(1)}°.`);
      break;
    case "add":
      formula = `a′ = a − ${A} · ‖a‖ · n(z)`;
      note = "Subtract a piece of z as long as α times the activation. Same turn as rotate, but the length changes.";
      facts.push(`Orthogonal to z: turns by atan(α) = ${orth.toFixed(1)}° and grows to ${Math.sqrt(1 + a * a).toFixed(3)} ‖a‖.`);
      facts.push(`Aligned with z: turns by ${aligned}; length |1 − α| ‖a‖ = ${Math.abs(1 - a).toFixed(3)} ‖a‖.`);
      break;
    default:
      formula = `a′ = ‖a‖ · n( n(a) − ${A} · n(z) )`;
      note = "Rotate the whole activation away from z, keeping its length: the model hears the same volume, in a less toxic direction.";
      facts.push(`Orthogonal to z: turns by atan(α) = ${orth.toFixed(1)}°.`);
      facts.push(`Aligned with z: turns by ${aligned}.`);
      facts.push("Pointing straight away from z: does not turn at all.");
  }
  if (!state.vectors) note += " (No vectors are loaded, so α is 0 and nothing changes.)";
  const added = state.extras.map((x, k) => ({ ...x, name: `z${k + 2}` })).filter((x) => x.alpha > 0);
  if (added.length) [formula, note] = combinedFormula(mode, [{ alpha: a, name: "z", label: state.vectorsLabel }, ...added]);
  el.formula.textContent = formula;
  el.formulaNote.textContent = note;
  el.angleFacts.replaceChildren(...facts.map((f) => h("li", { text: f })));
  drawDiagram();
}

/** The fusion formula with several vectors, each term α_i·n(z_i) (this project's generalisation). */
function combinedFormula(mode, vectors) {
  const on = vectors.filter((v) => v.alpha > 0);
  const sum = (perHead) => on.map((v) => (perHead ? `${fmt(v.alpha)}·λ(${v.name})_h·n(${v.name}_h)` : `${fmt(v.alpha)}·n(${v.name})`)).join(" + ");
  const formula = {
    headwise: `for each head h and vector z_i:\n  λ(z_i)_h = 1 + max(0, cos(a_h, z_i,h))\n  a′_h = ‖a_h‖ · n( n(a_h) − [ ${sum(true)} ] )`,
    "headwise-reference": `for each head h and vector z_i:\n  λ(z_i)_h = 1 + max(0, cos(a_h, z_i,h))\n  u_h = n( n(a_h) − [ ${sum(true)} ] )\na′ = concat_h(u_h) · ‖a‖ / ‖concat_h(u_h)‖`,
    add: `a′ = a − ‖a‖ · [ ${sum(false)} ]`,
  }[mode] ?? `a′ = ‖a‖ · n( n(a) − [ ${sum(false)} ] )`;
  const names = vectors.map((v) => `${v.name} = ${v.label}`).join("; ");
  const note = `Several vectors at once (${names}): each pushes the activation away from its own direction with its own α, in one step. This combination is our own generalisation of DeStein's single-vector fusion; with one vector it is exactly the formula above.`;
  return [formula, note];
}

function fmtAngle(deg) {
  return Number.isFinite(deg) ? `${deg.toFixed(1)}°` : "an undefined angle";
}

function drawDiagram() {
  const mode = currentMode();
  const a = currentAlpha();
  const phi = (Number(el.diagramAngle.value) * Math.PI) / 180;
  el.diagramAngleValue.textContent = `${el.diagramAngle.value}°`;
  const c = Math.cos(phi);
  const k = mode === "headwise" || mode === "headwise-reference" ? a * (1 + Math.max(0, c)) : a;
  // 2-D picture: z points up; a is a unit vector at angle phi from z.
  const av = [Math.sin(phi), c];
  const v = [av[0], av[1] - k];
  const vlen = Math.hypot(v[0], v[1]);
  const out = mode === "add" ? v : vlen > 1e-9 ? [v[0] / vlen, v[1] / vlen] : [0, 0];
  const extent = Math.max(1.15, Math.abs(v[1]) + 0.1, Math.abs(out[1]) + 0.1, 1 + k * 0.5);
  const R = Math.min(85, 95 / extent);
  const cx = 130;
  const cy = 110;
  const P = (x, y) => [cx + R * x, cy - R * y];
  const line = (from, to, cls, marker) => {
    const [x1, y1] = P(...from);
    const [x2, y2] = P(...to);
    const attrs = { x1, y1, x2, y2, class: cls };
    if (marker) attrs["marker-end"] = `url(#${marker})`;
    return s("line", attrs);
  };
  const label = (at, text, dx = 6, dy = -4) => {
    const [x, y] = P(...at);
    return s("text", { x: x + dx, y: y + dy, class: "d-label" }, text);
  };
  const g = el.diagramLayer;
  const items = [
    s("circle", { cx, cy, r: R, class: "d-axis" }),
    line([0, -1.1], [0, 1.1], "d-axis"),
    line([0, 0], [0, 1.12], "d-z", "arrow-z"),
    label([0, 1.12], "z (toxic)", 6, 10),
    line([0, 0], av, "d-a", "arrow-a"),
    label(av, "a", 6, -2),
  ];
  if (k > 1e-9) {
    items.push(line(av, [av[0], av[1] - k], "d-push", "arrow-p"));
    items.push(label([av[0], av[1] - k / 2], mode.startsWith("headwise") ? "−αλ·n(z)" : "−α·n(z)", 6, 4));
  }
  const turn = turnAngle(c, k);
  if (vlen > 1e-9) {
    items.push(line([0, 0], out, "d-new", "arrow-s"));
    items.push(label(out, "a′", -18, 14));
    if (Number.isFinite(turn) && turn > 0.5) {
      const r = 0.3;
      const [x1, y1] = P(av[0] * r, av[1] * r);
      const on = Math.hypot(out[0], out[1]);
      const [x2, y2] = P((out[0] / on) * r, (out[1] / on) * r);
      const large = turn > 180 ? 1 : 0;
      const sweep = out[0] * av[1] - out[1] * av[0] > 0 ? 0 : 1;
      items.push(s("path", { d: `M${x1},${y1} A${R * r},${R * r} 0 ${large} ${sweep} ${x2},${y2}`, class: "d-arc" }));
    }
  }
  g.replaceChildren(...items);
  const newCos = vlen > 1e-9 ? (c - k) / vlen : NaN;
  const lenText = mode === "add" ? `‖a′‖ = ${vlen.toFixed(3)} ‖a‖` : "‖a′‖ = ‖a‖";
  el.diagramReadout.textContent =
    vlen > 1e-9
      ? `a turns by ${fmtAngle(turn)} · cos(a, z) ${signed(c, 2)} → ${signed(newCos, 2)} · ${lenText}`
      : "a′ is undefined here: the push cancels a exactly.";
}

el.diagramAngle.addEventListener("input", drawDiagram);

// ---------------------------------------------------------------------------------------------------------------
// Example prompts

async function loadExamples() {
  let data;
  try {
    const resp = await fetch(new URL("./examples.json", import.meta.url));
    if (!resp.ok) throw new Error(`www/examples.json: the server answered HTTP ${resp.status}`);
    data = await resp.json();
  } catch (err) {
    el.examplesNeutral.replaceChildren(h("p", { class: "placeholder", text: `Examples unavailable (${err.message}).` }));
    return;
  }
  const use = (ex) => () => {
    el.prompt.value = ex.text;
    const cont = document.querySelector('input[name="format"][value="continuation"]');
    if (cont) cont.checked = true;
    updatePromptCount();
    setStatus("Example prompt set. Press Start (or Ctrl+Enter in the prompt).");
  };
  el.examplesNeutral.replaceChildren(
    ...(data.neutral || []).map((ex) =>
      h("button", { type: "button", class: "example", onclick: use(ex) }, h("span", { class: "example-text", text: ex.text })),
    ),
  );
  el.examplesToxic.replaceChildren(
    ...(data.toxic || []).map((ex, i) => {
      const b = h(
        "button",
        { type: "button", class: "example", onclick: use(ex), dataset: { hiddenLabel: `Toxic example ${i + 1} (text hidden)` } },
        h("span", { class: "example-text", text: ex.text }),
        h("span", { class: "meta", text: `toxicity ${Number(ex.toxicity).toFixed(2)} (Perspective API)` }),
      );
      return b;
    }),
  );
  applyReveal();
}

function applyReveal() {
  const show = el.revealToxic.checked;
  el.examplesToxic.classList.toggle("blurred", !show);
  for (const b of el.examplesToxic.querySelectorAll(".example")) {
    if (show) b.removeAttribute("aria-label");
    else b.setAttribute("aria-label", b.dataset.hiddenLabel);
    b.querySelector(".example-text").setAttribute("aria-hidden", show ? "false" : "true");
  }
}
el.revealToxic.addEventListener("change", applyReveal);

// ---------------------------------------------------------------------------------------------------------------
// Drop / pick your own model or vectors

async function useFile(file) {
  if (!file) return;
  const name = file.name.toLowerCase();
  if (name.endsWith(".safetensors")) {
    if (!state.modelInfo) {
      showError("Load a model before a vector file.");
      return;
    }
    if (state.run && !state.run.ended) await stopRun();
    setPhase("loading");
    const bytes = new Uint8Array(await file.arrayBuffer());
    const ok = await loadVectorBytes(bytes, file.name, { fallback: true });
    setPhase("ready");
    if (ok) {
      clearError();
      setStatus(`Steering with ${file.name}.`, "ok");
    }
  } else if (name.endsWith(".gguf")) {
    await loadModel({ kind: "file", file, label: file.name });
  } else {
    showError(`'${file.name}' is neither a .gguf model nor a .safetensors vector file.`);
  }
}

el.fileInput.addEventListener("change", () => {
  const f = el.fileInput.files?.[0];
  el.fileInput.value = "";
  useFile(f);
});
for (const target of [el.dropzone, document.body]) {
  target.addEventListener("dragover", (ev) => {
    if (![...(ev.dataTransfer?.types || [])].includes("Files")) return;
    ev.preventDefault();
    el.dropzone.classList.add("dragging");
  });
  target.addEventListener("dragleave", (ev) => {
    if (ev.target === el.dropzone || target === document.body) el.dropzone.classList.remove("dragging");
  });
  target.addEventListener("drop", (ev) => {
    if (!ev.dataTransfer?.files?.length) return;
    ev.preventDefault();
    ev.stopPropagation();
    el.dropzone.classList.remove("dragging");
    useFile(ev.dataTransfer.files[0]);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The live toxicity judge: tox-block (the primary judge of this project's evaluation), fetched from data/judges/ and
// run by the workers after every step (www/worker.js), shown under each pane next to the model's own projection
// read-out: two different views of how toxic the text is. Optional: when its files cannot be fetched or loaded, the
// demo runs without it and says so under the panes.

async function loadJudge() {
  setJudgeState("loading");
  const get = async (file) => {
    const url = new URL(JUDGE_DIR + file, location.href);
    let resp;
    try {
      resp = await fetch(url, { cache: "no-cache" });
    } catch (err) {
      throw new Error(`${JUDGE_DIR + file}: ${err.message}`);
    }
    if (!resp.ok) throw new Error(`${JUDGE_DIR + file}: the server answered HTTP ${resp.status}`);
    return new Uint8Array(await resp.arrayBuffer());
  };
  try {
    const [weights, vocab] = await Promise.all([get(JUDGE_FILES.weights), get(JUDGE_FILES.vocab)]);
    state.judge.bytes = { weights, vocab };
  } catch (err) {
    judgeFailed(`its files could not be fetched (${err.message})`);
    return;
  }
  await sendJudge();
}

/** Give every worker its own judge (again after a worker restart: the page keeps the bytes). */
async function sendJudge() {
  const bytes = state.judge.bytes;
  const workers = state.workers;
  if (!bytes || !workers.length || state.judge.status === "failed") return;
  setJudgeState("loading");
  try {
    await callAll(
      "loadJudge",
      () => ({ weights: bytes.weights.slice().buffer, vocab: bytes.vocab.slice().buffer }),
      (p) => [p.weights, p.vocab],
    );
  } catch (err) {
    if (state.workers !== workers || err.fatal) return; // the workers were replaced: the new ones get it
    judgeFailed(`the engine could not load it (${err.message})`);
    return;
  }
  if (state.workers === workers) setJudgeState("ready");
}

function judgeFailed(reason) {
  state.judge.bytes = null;
  state.judge.error =
    `The toxicity judge (tox-block) is unavailable: ${reason}. The demo works without it; only the judge's ` +
    "scores under the panes are missing.";
  setJudgeState("failed");
}

function setJudgeState(status) {
  state.judge.status = status;
  document.body.dataset.judge = status;
  el.judgeNote.hidden = status !== "failed";
  el.judgeNote.textContent = status === "failed" ? state.judge.error : "";
  for (let i = 0; i < 2; i++) renderJudgeSlot(i, state.run?.panes[i].judge ?? null);
}

/** One pane's judge read-out: "tox-block 0.83" and a bar; "–" before the pane has text. */
function renderJudgeSlot(i, score) {
  const slot = el.judgeSlots[i];
  const value = slot.querySelector("[data-judge-value]");
  const status = state.judge.status;
  const has = status === "ready" && score != null && Number.isFinite(score);
  slot.dataset.state = has ? "scored" : status;
  if (has) {
    const text = score.toFixed(2);
    if (slot.dataset.score !== String(score)) {
      slot.dataset.score = String(score);
      value.textContent = text;
      slot.style.setProperty("--v", String(Math.max(0, Math.min(1, score))));
    }
    return;
  }
  delete slot.dataset.score;
  slot.style.setProperty("--v", "0");
  value.textContent = status === "loading" ? "loading…" : status === "failed" ? "unavailable" : "–";
}

// ---------------------------------------------------------------------------------------------------------------
// The vector lab (www/lab.js): derivation runs in the steered pane's worker

/** Progress callbacks of derivations in flight, by request id. */
const deriveListeners = new Map();

function deriveInWorker(request, onProgress) {
  let id = null;
  const promise = (async () => {
    if (state.run && !state.run.ended) await stopRun();
    const job = post("derive", { request }, [], STEERED_WORKER);
    id = job.id;
    deriveListeners.set(id, onProgress);
    try {
      return await job.promise;
    } finally {
      deriveListeners.delete(id);
    }
  })();
  const cancel = () => call("deriveCancel", {}, [], STEERED_WORKER).catch(() => {});
  return { promise, cancel };
}

async function steerWithLabVector(bytes, label) {
  if (!state.modelInfo) return false;
  if (state.run && !state.run.ended) await stopRun();
  const ok = await loadVectorBytes(bytes, label, { fallback: true });
  if (ok) {
    clearError();
    setStatus(`Steering with ${label}.`, "ok");
  }
  return ok;
}

lab = initLab({
  h,
  derive: deriveInWorker,
  steerWith: steerWithLabVector,
  addToSteering: addSteeringVector,
  modelInfo: () => state.modelInfo,
  currentVectors: () => (state.vectorsBytes ? { bytes: state.vectorsBytes, label: state.vectorsLabel } : null),
  renderHeatmap,
  ready: () => !!state.modelInfo && document.body.dataset.phase === "ready",
  vectorDir: VECTOR_DIR,
});

// ---------------------------------------------------------------------------------------------------------------
// Boot

document.addEventListener("securitypolicyviolation", (ev) => {
  cspBlocked.add(ev.blockedURI);
  // A refused model URL: loadModel's own message says so (this event may come after it, and must not replace it).
  if (modelUrls.has(ev.blockedURI)) return;
  showError(
    `The page's Content-Security-Policy blocked ${ev.blockedURI || "a resource"} (${ev.effectiveDirective}). ` +
      "This page only talks to its own origin; see index.html for how to allow another.",
  );
});

const api = { turnAngle };
if (DEBUG) {
  Object.assign(api, {
    state,
    crashWorker: () => call("crash"),
    loadModel,
    runStats: () => runStats(),
    engineMemory: () => Promise.all(state.workers.map((_, i) => call("memory", {}, [], i))),
    kernelCheck: (seed) => call("kernelCheck", { seed }),
  });
}
globalThis.destein = api;

async function boot() {
  updatePromptCount();
  updateAlphaUI();
  updateButtons();
  // First, cross-origin isolation (SharedArrayBuffer, for wasm threads): on a static host this may register
  // coi-sw.js and reload the page once, so nothing is fetched before it.
  const isolation = await ensureIsolation(trustedScriptURL);
  document.body.dataset.isolation = isolation.isolated ? isolation.how : "no";
  el.isolationInfo.textContent = describeIsolation(isolation);
  loadExamples();
  spawnWorkers();
  const config = await readSiteConfig();
  const source = modelSourceFromParams(config.model);
  if (!cacheAvailable()) {
    setStatus("This page is not in a secure context: the model cannot be cached and is downloaded each time.");
  }
  await loadModel(source);
  // Problems with the site's configuration or the URL's parameters, shown once the model load no longer clears the
  // alert (before a failure of the load itself, when there is one).
  const notes = [config.error, source.error].filter(Boolean);
  if (notes.length) showError([...notes, el.alert.hidden ? "" : el.alertText.textContent].join(" ").trim());
  // The judge is optional and small: load it once the model is in, so it does not slow the model's loading down.
  // (A run started meanwhile gets its scores from the judge's arrival on.)
  await loadJudge();
}

boot().catch((err) => {
  showError(`Unexpected error while starting: ${err.message || err}`);
  setPhase("failed");
});
