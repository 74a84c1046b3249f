// @ts-check
// The page's side of its engine workers (www/worker.js; the messages are in www/protocol.js): it starts them, sends
// them requests and matches the replies, and tells the page (through the hooks it was given) what they report on
// their own, and when one dies.
import { PARTS, SIMD, THREADS, mark } from "./config.js";
import { MESSAGE, REQUEST } from "./protocol.js";
import { serviceWorkerUrl } from "./isolation.js";

/** An error the engine reported; `fatal` (a wasm trap): the engine is unusable. */
export class EngineError extends Error {
  /** @param {import("./protocol.js").EngineErrorInfo} info */
  constructor({ message, name, fatal }) {
    super(message);
    this.name = "EngineError";
    this.engineName = name;
    this.fatal = !!fatal;
  }
}

// Trusted Types: the only script URLs this page ever creates are its worker and its service worker (coi-sw.js next
// to index.html, see www/isolation.js).
const ttPolicy = /** @type {any} */ (globalThis).trustedTypes?.createPolicy?.("destein-worker", {
  createScriptURL: (/** @type {string} */ url) => {
    const u = new URL(url, location.href);
    const worker = u.origin === location.origin && u.pathname.endsWith("/www/worker.js");
    if (!worker && u.href !== serviceWorkerUrl()) throw new TypeError(`refusing script URL ${url}`);
    return u.href;
  },
});
/** A script URL this page may load (a TrustedScriptURL where Trusted Types are enforced). */
export const trustedScriptURL = (/** @type {string} */ url) => (ttPolicy ? ttPolicy.createScriptURL(url) : url);

/**
 * @typedef {object} EngineHooks  what the page does when a worker reports on its own
 * @property {(limits: import("./protocol.js").Limits) => void} onLimits  the engine's request limits
 * @property {() => void} onHello  a worker's engine module loaded (or failed to)
 * @property {(message: string) => void} onEngineMissing  its engine module could not be loaded
 * @property {(message: string) => void} onWorkerMissing  the worker script itself could not start
 * @property {(reason: string) => void} onDeath  a worker died: the engines must be started again
 * @property {(msg: import("./protocol.js").StepEvent) => void} onStep
 * @property {(msg: import("./protocol.js").ResteerEvent) => void} onResteer
 * @property {(msg: import("./protocol.js").DoneEvent) => void} onDone
 * @property {(msg: import("./protocol.js").JudgeErrorEvent) => void} onJudgeError
 */

/** @typedef {Worker & {hello: boolean|null, threads?: number, threadsNote?: string|null, simd?: string}} EngineWorker */

/** @type {EngineHooks|null} */
let hooks = null;
/** @type {EngineWorker[]} one (batch layout) or two (pair layout) Web Workers, each with its own Engine */
let workers = [];
/** Counts the sets of workers started and stopped, so that a late answer can tell its workers were replaced. */
let generation = 0;
/** @type {boolean|null} null: not known yet; false: the engine module is missing */
let engineOk = null;
/** @type {string|null} */
let engineError = null;
let nextId = 1;
/** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void, type: string}>} */
const pending = new Map();
/** @type {Map<number, (msg: any) => void>} progress listeners of requests in flight, by id */
const progressListeners = new Map();

/** Give the client the page's hooks (once, before the first start). */
export function setEngineHooks(/** @type {EngineHooks} */ h) {
  hooks = h;
}

export const engineCount = () => workers.length;
/** Identifies the current set of workers: it changes when they are started or stopped. */
export const engineGeneration = () => generation;
/** The threads of the first engine's matrix products, or null before it said hello. */
export const engineThreads = () => workers[0]?.threads ?? null;
export const engineThreadsNote = () => workers[0]?.threadsNote ?? null;
/** The SIMD of the engines' build ("relaxed-simd" or "simd128"; the workers all load the same one). */
export const engineSimd = () => workers[0]?.simd ?? "simd128";
/** Whether every engine said hello with its module loaded. */
export const enginesStarted = () => workers.length > 0 && workers.every((w) => w.hello === true);
/** @returns {{ok: boolean|null, error: string|null}} */
export const engineStatus = () => ({ ok: engineOk, error: engineError });

/** Start one worker per part of the layout (config.js PARTS). */
export function startEngines() {
  const query = new URLSearchParams();
  if (THREADS > 1) query.set("threads", String(THREADS));
  if (SIMD === "baseline") query.set("simd", "baseline");
  const url = new URL(`./worker.js${query.size ? `?${query}` : ""}`, import.meta.url).href;
  engineOk = null;
  generation++;
  workers = PARTS.map((part, i) => {
    const w = /** @type {EngineWorker} */ (
      new Worker(trustedScriptURL(url), {
        type: "module",
        name: PARTS.length > 1 ? `destein-engine-${part.rows}` : "destein-engine",
      })
    );
    w.hello = null; // the engine module's load result, from its "hello"
    w.onmessage = (ev) => onWorkerMessage(w, ev.data);
    w.onerror = (ev) => {
      ev.preventDefault?.();
      if (!workers.includes(w)) return;
      if (w.hello === null) workerDidNotStart(url, ev.message);
      else hooks.onDeath(ev.message || `worker ${i + 1} reported an error`);
    };
    w.onmessageerror = () => {
      if (workers.includes(w)) hooks.onDeath("a message from the worker could not be read");
    };
    return w;
  });
}

/**
 * Stop every worker; their requests in flight fail with `the engine stopped (reason)`. False when there were none
 * (they are already being replaced).
 */
export function stopEngines(/** @type {string} */ reason) {
  if (!workers.length) return false;
  terminateWorkers(new Error(`the engine stopped (${reason})`));
  return true;
}

function terminateWorkers(/** @type {Error} */ error) {
  const old = workers;
  workers = [];
  generation++;
  for (const w of old) w.terminate();
  for (const [, p] of pending) p.reject(error);
  pending.clear();
}

/**
 * Send a request to worker `index`; {id, promise}. `onProgress` gets the progress events of this request.
 * @param {string} type  one of protocol.js REQUEST
 * @param {object} [payload]
 * @param {Transferable[]} [transfer]
 * @param {(msg: any) => void} [onProgress]
 * @returns {{id: number, promise: Promise<any>}}
 */
export function post(type, payload = {}, transfer = [], index = 0, onProgress = undefined) {
  const id = nextId++;
  const promise = new Promise((resolve, reject) => {
    const w = workers[index];
    if (!w) return reject(new Error("the engine is not running"));
    pending.set(id, { resolve, reject, type });
    w.postMessage({ type, id, ...payload }, transfer);
  });
  if (onProgress) {
    progressListeners.set(id, onProgress);
    const forget = () => progressListeners.delete(id);
    promise.then(forget, forget);
  }
  return { id, promise };
}

/**
 * A request to worker `index`; its result.
 * @param {string} type
 * @param {object} [payload]
 * @param {Transferable[]} [transfer]
 */
export const call = (type, payload, transfer, index = 0) => post(type, payload, transfer, index).promise;

/**
 * The same request to every worker (payload(i) builds each one's, e.g. its own copy of some bytes); [values].
 * @param {string} type
 * @param {(i: number) => any} [payload]
 * @param {(payload: any) => Transferable[]} [transfer]
 */
export function callAll(type, payload = () => ({}), transfer = () => []) {
  if (!workers.length) return Promise.reject(new Error("the engine is not running"));
  return Promise.all(
    workers.map((_, i) => {
      const p = payload(i);
      return call(type, p, transfer(p), i);
    }),
  );
}

/** Each worker's warm-up run (worker.js REQUEST.warmUp) of its own rows; failures are left to the real runs to show. */
export function warmUpEngines() {
  callAll(REQUEST.warmUp, (i) => ({ rows: PARTS[i].rows })).then(
    (r) => mark("warmed-up", { ms: r.map((x) => x.ms ?? null) }),
    () => {},
  );
}

/** @param {EngineWorker} w @param {import("./protocol.js").WorkerMessage} msg */
function onWorkerMessage(w, msg) {
  if (!workers.includes(w)) return;
  switch (msg.type) {
    case MESSAGE.hello:
      onHello(w, /** @type {import("./protocol.js").HelloMessage} */ (msg));
      break;
    case MESSAGE.result:
      onResult(/** @type {import("./protocol.js").ResultMessage} */ (msg));
      break;
    case MESSAGE.step:
      hooks.onStep(/** @type {import("./protocol.js").StepEvent} */ (msg));
      break;
    case MESSAGE.resteer:
      hooks.onResteer(/** @type {import("./protocol.js").ResteerEvent} */ (msg));
      break;
    case MESSAGE.done:
      hooks.onDone(/** @type {import("./protocol.js").DoneEvent} */ (msg));
      break;
    case MESSAGE.deriveProgress: {
      const progress = /** @type {import("./protocol.js").DeriveProgressEvent} */ (msg);
      progressListeners.get(progress.id)?.(progress);
      break;
    }
    case MESSAGE.judgeError:
      hooks.onJudgeError(/** @type {import("./protocol.js").JudgeErrorEvent} */ (msg));
      break;
  }
}

/** @param {EngineWorker} w @param {import("./protocol.js").HelloMessage} msg */
function onHello(w, msg) {
  w.hello = msg.ok;
  w.threads = msg.ok ? msg.threads ?? 1 : 1;
  w.threadsNote = msg.ok ? msg.threadsNote ?? null : null;
  w.simd = msg.ok ? msg.simd ?? "simd128" : undefined;
  if (msg.ok && msg.limits) hooks.onLimits(msg.limits);
  hooks.onHello();
  if (!msg.ok) {
    engineOk = false;
    engineError = msg.error.message;
    hooks.onEngineMissing(msg.error.message);
  } else if (workers.every((x) => x.hello === true)) {
    engineOk = true;
  }
}

function onResult(/** @type {import("./protocol.js").ResultMessage} */ msg) {
  const p = pending.get(msg.id);
  if (!p) return;
  pending.delete(msg.id);
  if (msg.ok) p.resolve(msg.value);
  else {
    const err = new EngineError(msg.error);
    p.reject(err);
    if (err.fatal) hooks.onDeath(err.message);
  }
}

/** The worker script failed before its engine said hello (missing or broken file): no restart, say which file. */
async function workerDidNotStart(/** @type {string} */ url, /** @type {string} */ detail) {
  const old = workers;
  workers = [];
  generation++;
  for (const w of old) w.terminate();
  const status = await fetch(url, { method: "HEAD", cache: "no-store" }).then((r) => r.status, () => /** @type {number|null} */ (null));
  const file = new URL(url).pathname.split("/").slice(-2).join("/");
  engineOk = false;
  engineError =
    status === 404
      ? `The inference engine cannot start: ${file} is missing on the server (HTTP 404). Upload the whole site folder (scripts/build-site.sh).`
      : `The inference engine cannot start: its worker ${file} failed to load${detail ? ` (${detail})` : ""}.`;
  for (const [, p] of pending) p.reject(new Error(engineError));
  pending.clear();
  hooks.onWorkerMissing(engineError);
}

/** The debugging API's requests (www/main.js, ?debug=1). */
export const debugRequests = {
  crashWorker: () => call(REQUEST.crash),
  engineMemory: () => Promise.all(workers.map((_, i) => call(REQUEST.memory, {}, [], i))),
  kernelCheck: (/** @type {number} */ seed) => call(REQUEST.kernelCheck, { seed }),
};
