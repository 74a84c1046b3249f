// @ts-check
// The inference worker of the DeStein demo (a module Web Worker). It owns the wasm Engine, so the page never
// blocks on inference.
//
// The messages it takes and sends are in www/protocol.js.

import { MESSAGE, REQUEST } from "./protocol.js";

let mod = null; // the wasm-bindgen module namespace
let wasmExports = null; // the wasm instance's exports (for its linear memory size)
let engine = null;
let judge = null; // the tox-block Judge, once loaded
let run = null; // {runId, stopRequested, steps, texts, scores}
let currentMode = "rotate";
let derivation = null; // {id, cancelled, reason} while the vector lab derives
let lastRun = null; // {runId, params, steps} of the latest start: what a re-steer restarts

/** Stop the vector lab's derivation between two steps, saying why (a model load or a generation needs the engine). */
function cancelDerivation(reason) {
  if (derivation) Object.assign(derivation, { cancelled: true, reason });
}

// Threads the page asked for (?threads=N in this worker's URL). More than one needs the threaded build
// (pkg/threads/, shared memory and relaxed SIMD), which only a cross-origin isolated page may use; otherwise, or if it
// fails to start, a single-threaded build runs: pkg/relaxed/ (relaxed SIMD: a faster Q4_1 kernel, the same results)
// when this browser validates relaxed SIMD and the worker's URL does not say ?simd=baseline, else pkg/ (simd128),
// which always works.
const WORKER_PARAMS = new URL(self.location.href).searchParams;
const THREADS_WANTED = Math.max(1, Math.min(16, Math.floor(Number(WORKER_PARAMS.get("threads"))) || 1));
// (module (func (result v128) (i8x16.relaxed_swizzle (i8x16.splat (i32.const 1)) (i8x16.splat (i32.const 2)))))
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2, 253, 15, 253, 128, 2, 11,
]);
const RELAXED_SIMD = WORKER_PARAMS.get("simd") !== "baseline" && WebAssembly.validate(RELAXED_SIMD_PROBE);
let threadsNote = null; // why the threaded build is not in use, when threads were asked for

// Trusted Types (enforced here when the server sends the page's CSP with this script): the only script URL this
// worker creates is its helper threads'.
const ttPolicy = globalThis.trustedTypes?.createPolicy?.("destein-worker", {
  createScriptURL: (url) => {
    const u = new URL(url, self.location.href);
    if (u.origin !== self.location.origin || !u.pathname.endsWith("/www/thread.js")) {
      throw new TypeError(`refusing helper thread URL ${url}`);
    }
    return u.href;
  },
});

/** The threaded engine with `threads - 1` helper workers on its shared memory; throws if any part fails. */
async function loadThreadedEngine(threads) {
  const m = await import("../pkg/threads/destein.js");
  const wasmUrl = new URL("../pkg/threads/destein_bg.wasm", import.meta.url);
  const response = await fetch(wasmUrl);
  if (!response.ok) throw new Error(`${wasmUrl.pathname}: HTTP ${response.status}`);
  // Compiled here (not by the glue) because the helpers need the module itself.
  const module = await WebAssembly.compile(await response.arrayBuffer());
  const exports = await m.default({ module_or_path: module });
  if (!m.threadedBuild?.()) throw new Error("pkg/threads/ holds a single-threaded build");
  const url = new URL("./thread.js", import.meta.url).href;
  const helpers = [];
  let failed = null;
  try {
    for (let i = 1; i < threads; i++) {
      const w = new Worker(ttPolicy ? ttPolicy.createScriptURL(url) : url, { type: "module", name: `destein-engine-thread-${i}` });
      w.postMessage({ module, memory: exports.memory });
      helpers.push(w);
    }
    failed = new Promise((_, reject) => {
      for (const w of helpers) w.onerror = (ev) => reject(new Error(`a helper thread failed to start: ${ev.message || "error"}`));
    });
    const started = (async () => {
      const deadline = performance.now() + 15000;
      while (m.engineThreads() < threads) {
        if (performance.now() > deadline) throw new Error(`only ${m.engineThreads() - 1} of ${threads - 1} helper threads started`);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    started.catch(() => {}); // (settled through the race)
    await Promise.race([started, failed]);
  } catch (err) {
    for (const w of helpers) w.terminate();
    throw err;
  }
  failed?.catch(() => {});
  // A helper that fails later leaves the engine without a thread it counts on: end this worker with an error, which
  // the page answers by starting a new one (if the engine thread is waiting for that helper, src/pool.rs gives up
  // after a while and traps, with the same outcome).
  for (const w of helpers) {
    w.onerror = (ev) => {
      throw new Error(`a helper thread of the engine failed: ${ev.message || "error"}`);
    };
  }
  return { m, exports };
}

const enginePromise = (async () => {
  try {
    if (THREADS_WANTED > 1) {
      if (!self.crossOriginIsolated) threadsNote = "the page is not cross-origin isolated";
      else if (!RELAXED_SIMD) {
        threadsNote = WORKER_PARAMS.get("simd") === "baseline" ? "?simd=baseline: the threaded build uses relaxed SIMD" : "this browser has no relaxed SIMD, which the threaded build uses";
      } else {
        try {
          ({ m: mod, exports: wasmExports } = await loadThreadedEngine(THREADS_WANTED));
        } catch (err) {
          threadsNote = `the threaded engine could not start (${err?.message || err})`;
        }
      }
    }
    if (!mod && RELAXED_SIMD) {
      try {
        const m = await import("../pkg/relaxed/destein.js");
        wasmExports = await m.default();
        mod = m;
      } catch {
        /* not built or refused: the simd128 build below, which has the same results */
      }
    }
    if (!mod) {
      const m = await import("../pkg/destein.js");
      wasmExports = await m.default();
      mod = m;
    }
    const simd = mod.simdBuild?.() ?? "simd128";
    postMessage({ type: MESSAGE.hello, ok: true, threads: mod.engineThreads?.() ?? 1, threadsNote, simd, limits: mod.limits?.() ?? null });
  } catch (err) {
    const message = await engineLoadError(err);
    postMessage({ type: MESSAGE.hello, ok: false, error: { message, name: "EngineMissing", fatal: false } });
    throw new Error(message);
  }
})();

/** Why the engine could not be loaded; names the file when one that the error mentions is missing on the server. */
async function engineLoadError(err) {
  const detail = err?.message || String(err);
  const root = new URL("../", import.meta.url).href; // the page's folder
  for (const url of detail.match(/https?:\/\/[^\s'"]+/g) || []) {
    const status = await fetch(url, { method: "HEAD", cache: "no-store" }).then((r) => r.status, () => null);
    if (status === 404) {
      const file = url.startsWith(root) ? url.slice(root.length) : url;
      return (
        `The inference engine cannot start: ${file} is missing on the server (HTTP 404). Upload the whole site ` +
        "folder, pkg/ included (scripts/build-site.sh); in a checkout, build the engine with scripts/build-wasm.sh."
      );
    }
  }
  return `The inference engine (pkg/destein.js) could not be loaded: ${detail}. Build it with scripts/build-wasm.sh.`;
}
enginePromise.catch(() => {}); // reported through "hello" and through each request

function serializeError(err) {
  const fatal =
    (typeof WebAssembly !== "undefined" && err instanceof WebAssembly.RuntimeError) ||
    /\bunreachable\b|memory access out of bounds/i.test(String(err?.message));
  const message = err instanceof Error ? err.message : String(err);
  return { message: message || "unknown engine error", name: err?.name || "Error", fatal };
}

// A zero-delay yield to the event loop (setTimeout is clamped to 4 ms when nested), so that setAlpha / setMode /
// stop messages are handled between two decoding steps.
const yieldChannel = new MessageChannel();
const yieldQueue = [];
yieldChannel.port1.onmessage = () => yieldQueue.shift()?.();
function yieldToEvents() {
  return new Promise((resolve) => {
    yieldQueue.push(resolve);
    yieldChannel.port2.postMessage(0);
  });
}

function freeEngine() {
  if (engine) {
    try {
      engine.free?.();
    } catch {
      /* already freed */
    }
    engine = null;
  }
}

function requireEngine() {
  if (!engine) throw new Error("no model is loaded yet");
  return engine;
}

function stopRun(reason) {
  if (!run) return;
  const r = run;
  run = null;
  try {
    engine?.stop();
  } catch {
    /* the generation had already ended */
  }
  postMessage({ type: MESSAGE.done, runId: r.runId, reason, steps: r.steps });
}

async function loop(r) {
  while (run === r) {
    if (r.stopRequested) return stopRun("stopped");
    const t0 = performance.now();
    let out, scores, wallMs, judgeMs;
    try {
      out = requireEngine().step();
      wallMs = performance.now() - t0;
      const t1 = performance.now();
      scores = scoreRows(r, out.rows);
      judgeMs = scores ? performance.now() - t1 : 0;
    } catch (err) {
      const error = serializeError(err);
      run = null;
      if (error.fatal) freeEngineAfterTrap();
      else {
        try {
          engine?.stop();
        } catch {
          /* ignore */
        }
      }
      postMessage({ type: MESSAGE.done, runId: r.runId, reason: "error", error, steps: r.steps });
      return;
    }
    postMessage({
      type: MESSAGE.step,
      runId: r.runId,
      index: r.steps,
      rows: out.rows,
      stepMs: out.stepMs,
      wallMs,
      mode: currentMode,
      judge: scores,
      judgeMs,
    });
    r.steps++;
    if (lastRun?.runId === r.runId) lastRun.steps = r.steps;
    if (out.done) return stopRun("finished");
    await yieldToEvents();
  }
}

/** One step of run `r` posted as a step message (the replay of a re-steer: no yield in between). */
function replayStep(r) {
  const t0 = performance.now();
  const out = requireEngine().step();
  const wallMs = performance.now() - t0;
  const scores = scoreRows(r, out.rows);
  postMessage({ type: MESSAGE.step, runId: r.runId, index: r.steps, rows: out.rows, stepMs: out.stepMs, wallMs, mode: currentMode, judge: scores, judgeMs: 0, resteer: true });
  r.steps++;
  return out.done;
}

// The judge's score of each row's continuation so far, re-scored when the row got new text (about 0.3 ms per
// score in wasm). null when no judge is loaded; a row without text yet has no score (the judge would call empty
// text clean).
function scoreRows(r, rows) {
  rows.forEach((row, i) => {
    if (row?.text) r.texts[i] = (r.texts[i] || "") + row.text;
  });
  if (!judge) return null;
  try {
    return rows.map((row, i) => {
      if (row?.text || (r.scores[i] == null && r.texts[i])) r.scores[i] = judge.score(r.texts[i]);
      return r.scores[i] ?? null;
    });
  } catch (err) {
    judge = null;
    const error = serializeError(err);
    // The judge lives in the engine's wasm instance: a trap there kills the engine too.
    if (error.fatal) throw err;
    postMessage({ type: MESSAGE.judgeError, runId: r.runId, error });
    return null;
  }
}

function freeEngineAfterTrap() {
  // After a trap the wasm instance's state is undefined; drop the engine. The page replaces the worker.
  engine = null;
}

const handlers = {
  async [REQUEST.loadModel]({ bytes, sha256, loadDtype }) {
    // A Blob (the page's cached copy) is read here, while the page checks its hash.
    if (bytes instanceof Blob) bytes = await bytes.arrayBuffer();
    await enginePromise;
    stopRun("stopped");
    cancelDerivation("another model is being loaded");
    const opts = { loadDtype: loadDtype || "as-is" };
    if (sha256) opts.sha256 = sha256;
    // Build the new engine first: if it fails, the previous model stays usable.
    const next = new mod.Engine(new Uint8Array(bytes), opts);
    freeEngine();
    engine = next;
    return engine.info();
  },
  async [REQUEST.loadVectors]({ bytes }) {
    await enginePromise;
    stopRun("stopped");
    return requireEngine().loadVectors(new Uint8Array(bytes));
  },
  async [REQUEST.profile]({ on }) {
    await enginePromise;
    return requireEngine().profile(!!on);
  },
  async [REQUEST.addVectors]({ bytes }) {
    await enginePromise;
    stopRun("stopped");
    return requireEngine().addVectors(new Uint8Array(bytes));
  },
  async [REQUEST.removeVectors]({ slot }) {
    await enginePromise;
    stopRun("stopped");
    requireEngine().removeVectors(slot);
    return true;
  },
  async [REQUEST.clearVectors]() {
    await enginePromise;
    stopRun("stopped");
    requireEngine().clearVectors();
    return true;
  },
  async [REQUEST.start]({ params }, id) {
    await enginePromise;
    stopRun("stopped");
    cancelDerivation("a generation was started");
    const e = requireEngine();
    const value = e.start(params);
    currentMode = params.mode;
    const r = { runId: id, stopRequested: false, steps: 0, texts: [], scores: [] };
    run = r;
    lastRun = { runId: id, params: { ...params }, steps: 0 };
    // Reply first (microtasks), then stream from the next macrotask on.
    yieldToEvents().then(() => loop(r));
    return value;
  },
  async [REQUEST.stop]() {
    if (run) run.stopRequested = true;
    return true;
  },
  // α and mode only matter to a running generation (start() carries both); without one these are no-ops.
  async [REQUEST.setAlpha]({ alpha, slot }) {
    if (run && engine) engine.setAlpha(alpha, slot ?? 0);
    return !!run;
  },
  // Re-steer the whole text: what a run started at this α would have written, up to where the old run got.
  async [REQUEST.resteer]({ alpha, slot, steerPrompt }) {
    await enginePromise;
    if (!lastRun || !engine) return null;
    const t0 = performance.now();
    const params = { ...lastRun.params, mode: currentMode };
    if (typeof steerPrompt === "boolean") params.steerPrompt = steerPrompt;
    if (!slot) params.alpha = alpha;
    else params.alphas = (params.alphas || []).map((a, i) => (i === slot - 1 ? alpha : a));
    const target = lastRun.steps;
    // The old run (streaming or finished) is replaced without a "done": the page keeps the same run.
    const old = run;
    run = null;
    try {
      engine.start(params); // checks α and mode
    } catch (err) {
      // Nothing replaced the old text; a run that was streaming has been stopped by the engine.
      if (old) postMessage({ type: MESSAGE.done, runId: old.runId, reason: "stopped", steps: old.steps });
      throw err;
    }
    lastRun.params = params;
    const r = { runId: lastRun.runId, stopRequested: false, steps: 0, texts: [], scores: [] };
    run = r;
    postMessage({ type: MESSAGE.resteer, runId: r.runId, alpha, slot: slot || 0, steps: target });
    let done = false;
    try {
      while (!done && r.steps < Math.max(target, 1)) done = replayStep(r);
    } catch (err) {
      run = null;
      postMessage({ type: MESSAGE.done, runId: r.runId, reason: "error", error: serializeError(err), steps: r.steps });
      throw err;
    }
    lastRun.steps = r.steps;
    const ms = performance.now() - t0;
    if (done) stopRun("finished");
    else yieldToEvents().then(() => loop(r));
    return { steps: r.steps, ms };
  },
  async [REQUEST.setMode]({ mode }) {
    if (run && engine) {
      engine.setMode(mode);
      currentMode = mode;
    }
    return !!run;
  },
  async [REQUEST.loadJudge]({ weights, vocab }) {
    await enginePromise;
    if (typeof mod.Judge !== "function") {
      throw new Error("this engine build has no Judge class; rebuild pkg/ with scripts/build-wasm.sh");
    }
    const t0 = performance.now();
    const next = new mod.Judge(new Uint8Array(weights), new Uint8Array(vocab));
    try {
      judge?.free?.();
    } catch {
      /* already freed */
    }
    judge = next;
    return { loadMs: performance.now() - t0 };
  },
  // The size of the engine's wasm linear memory, in bytes (it only grows: the high-water mark).
  async [REQUEST.memory]() {
    await enginePromise;
    return { wasmBytes: wasmExports?.memory?.buffer?.byteLength ?? null };
  },
  // A few tokens through the engine once a model is in: V8 compiles the hot wasm functions with its optimizing tier
  // only after they have run a while, which otherwise falls on the reader's first run (measured: first token about
  // 90 ms later than in the runs after it). Nothing is kept: the next start replaces this generation.
  async [REQUEST.warmUp]({ rows }) {
    await enginePromise;
    if (!engine || run || derivation) return { skipped: true };
    const t0 = performance.now();
    const params = { prompt: "Warming up: one, two, three.", chat: false, maxNewTokens: 2, temperature: 0, topP: 1, topK: 0 };
    engine.start({ ...params, seed: 0, rows, alpha: 0, mode: currentMode });
    while (!engine.step().done);
    return { ms: performance.now() - t0 };
  },
  // Kernel exactness in this browser and build: scalar = simd128 = split over the engine's threads, bit for bit.
  async [REQUEST.kernelCheck]({ seed }) {
    await enginePromise;
    return mod.kernelCheck(seed >>> 0);
  },
  async [REQUEST.derive]({ request }, id) {
    await enginePromise;
    stopRun("stopped");
    const e = requireEngine();
    const d = { id, cancelled: false, reason: null };
    cancelDerivation("another derivation was started");
    derivation = d;
    const t0 = performance.now();
    try {
      let p = e.deriveStart(request);
      postMessage({ type: MESSAGE.deriveProgress, id, ...p });
      while (!p.finished) {
        // Between two steps: let a deriveCancel (or another request) in.
        await yieldToEvents();
        if (d.cancelled) throw new Error(`cancelled${d.reason ? `: ${d.reason}` : ""}`);
        p = e.deriveStep();
        postMessage({ type: MESSAGE.deriveProgress, id, ...p });
      }
      const bytes = e.deriveFinish();
      return { bytes: bytes.buffer, ms: performance.now() - t0 };
    } catch (err) {
      // Free the derivation's activations, unless a newer derivation has replaced it (deriveStart already did).
      if (derivation === d && engine === e) {
        try {
          e.deriveCancel();
        } catch {
          /* the engine is gone */
        }
      }
      throw err;
    } finally {
      if (derivation === d) derivation = null;
    }
  },
  async [REQUEST.deriveCancel]() {
    cancelDerivation(null);
    return true;
  },
  async [REQUEST.crash]() {
    setTimeout(() => {
      throw new Error("simulated engine crash (testing aid)");
    });
    return true;
  },
};

self.onmessage = async (ev) => {
  const msg = ev.data;
  const handler = handlers[msg?.type];
  if (!handler) {
    postMessage({
      type: MESSAGE.result,
      id: msg?.id,
      ok: false,
      error: { message: `unknown request '${msg?.type}'`, name: "Error", fatal: false },
    });
    return;
  }
  try {
    const value = await handler(msg, msg.id);
    postMessage({ type: MESSAGE.result, id: msg.id, ok: true, value });
  } catch (err) {
    const error = serializeError(err);
    if (error.fatal) freeEngineAfterTrap();
    postMessage({ type: MESSAGE.result, id: msg.id, ok: false, error });
  }
};
