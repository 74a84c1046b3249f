// @ts-check
// The demo's inference worker (www/worker.js, its messages in www/protocol.js) as the benchmark pages drive it
// (www/bench/bench.js, www/bench/wllama-bench.js; not part of the demo).
//
//   new EngineWorker(name, threads?, simd?) starts a worker (threads > 1: the threaded build, when the page is
//                                    cross-origin isolated; simd "baseline": the simd128 build, not the relaxed one);
//                                    await .hello (-> {threads, threadsNote, simd}) before the first call
//   .call(type, payload, transfer)   one request -> its result value
//   .generate(params, t0?)           one generation (Engine.start options) -> {t0, end, steps: [{at, index, stepMs,
//                                    rows}], started: {promptTokens}}; .lastSteps grows while it runs
//   paneStats(gen, r)                the numbers of row r of a generation (see its comment)

const WORKER_URL = new URL("../worker.js", import.meta.url).href;

// Trusted Types: like the demo, a benchmark page only ever creates this worker's script URL.
const policy = globalThis.trustedTypes?.createPolicy?.("destein-worker", {
  createScriptURL: (url) => {
    if (url.split("?")[0] !== WORKER_URL) throw new TypeError(`refusing worker URL ${url}`);
    return url;
  },
});

export class EngineWorker {
  constructor(name, threads = 1, simd = "relaxed") {
    this.nextId = 1;
    this.pending = new Map();
    this.runs = new Map();
    this.hello = new Promise((resolve, reject) => (this.helloWaiter = { resolve, reject }));
    const query = new URLSearchParams();
    if (threads > 1) query.set("threads", String(threads));
    if (simd === "baseline") query.set("simd", "baseline");
    const url = query.size ? `${WORKER_URL}?${query}` : WORKER_URL;
    this.worker = new Worker(policy ? policy.createScriptURL(url) : url, { type: "module", name });
    this.worker.onmessage = (ev) => this.onMessage(ev.data, performance.now());
    this.worker.onerror = (ev) => {
      const err = new Error(`worker ${name}: ${ev.message || "error"}`);
      this.helloWaiter.reject(err);
      for (const p of this.pending.values()) p.reject(err);
      for (const r of this.runs.values()) r.fail(err);
    };
  }

  onMessage(msg, now) {
    switch (msg.type) {
      case "hello":
        if (msg.ok) this.helloWaiter.resolve({ threads: msg.threads, threadsNote: msg.threadsNote, simd: msg.simd });
        else this.helloWaiter.reject(new Error(msg.error.message));
        break;
      case "result": {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        if (msg.ok) p.resolve(msg.value);
        else p.reject(new Error(msg.error.message));
        break;
      }
      case "step":
        this.runs.get(msg.runId)?.step(msg, now);
        break;
      case "done":
        this.runs.get(msg.runId)?.done(msg, now);
        break;
    }
  }

  post(type, payload = {}, transfer = []) {
    const id = this.nextId++;
    const promise = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.worker.postMessage({ type, id, ...payload }, transfer);
    return { id, promise };
  }

  call(type, payload, transfer) {
    return this.post(type, payload, transfer).promise;
  }

  /**
   * Start a generation; resolves when it finishes, with the arrival time of every step and what Engine.start returned
   * ({promptTokens}).
   */
  generate(params, t0 = performance.now()) {
    return new Promise((resolve, reject) => {
      const steps = (this.lastSteps = []);
      const { id, promise } = this.post("start", { params });
      let started = null; // Engine.start's result: {promptTokens}
      const fail = (err) => {
        this.runs.delete(id);
        reject(err);
      };
      this.runs.set(id, {
        step: (msg, now) => steps.push({ at: now, index: msg.index, stepMs: msg.stepMs, rows: msg.rows }),
        done: (msg, now) => {
          this.runs.delete(id);
          if (msg.reason === "finished") resolve({ t0, end: now, steps, started });
          else reject(new Error(`generation ${msg.reason}: ${msg.error?.message || ""}`));
        },
        fail,
      });
      promise.then((v) => (started = v), fail);
    });
  }
}

/**
 * The numbers of row `r` of a generation: {tokens, tokenIds, text, prefillMs (the engine's time for step 0: prompt +
 * first token), ttftMs (start posted → first step received), decodeTokPerS (tokens after the first over the time
 * since the first, as received by the page), engineStepMs (mean engine time of the later steps)}.
 */
export function paneStats(gen, r) {
  const withToken = gen.steps.filter((s) => s.rows[r] && s.rows[r].tokenId != null);
  const n = withToken.length;
  const first = withToken[0];
  const last = withToken[n - 1];
  const later = withToken.filter((s) => s.index > 0);
  return {
    tokens: n,
    tokenIds: withToken.map((s) => s.rows[r].tokenId),
    text: withToken.map((s) => s.rows[r].text).join(""),
    prefillMs: gen.steps[0]?.stepMs ?? null,
    ttftMs: first ? first.at - gen.t0 : null,
    decodeTokPerS: n >= 2 && last.at > first.at ? (n - 1) / ((last.at - first.at) / 1000) : null,
    engineStepMs: later.length ? later.reduce((a, s) => a + s.stepMs, 0) / later.length : null,
  };
}
