// @ts-check
// Our engine vs. llama.cpp in the browser (wllama), for scripts/bench-wllama.mjs (not part of the demo).
//
// Both engines get the same GGUF bytes (read from the demo's Cache Storage entry, or downloaded from this server and
// verified), the same prompt as a plain continuation (no chat template), greedy decoding and the same number of new
// tokens, each in a Web Worker of its own:
//   ours    the demo's worker (www/worker.js) with `rows: "raw"`: one row, no steering vectors loaded;
//   wllama  @wllama/wllama (served from node_modules/@wllama/wllama/esm/) with n_threads 1,
// or, with setup({threads: N}), both with N threads (ours: its threaded build; wllama: its pthread pool), which needs
// the page cross-origin isolated (scripts/serve.mjs sends COOP and COEP).
//
// API (globalThis.wbench), all async:
//   setup()                 load both engines -> {modelSource, sha256, modelBytes, crossOriginIsolated, ours: {...},
//                           wllama: {...}} with each one's load time (bytes in page memory → ready to generate: the
//                           worker's start, the wasm's instantiation and the model's load, and for wllama its warm-up)
//   run(engine, params)     one generation -> result (below)
//   begin(engine, params), then firstToken() -> tokens received so far (once the first has arrived), then finish()
//                           -> result: the same generation in three calls, so that a tool can take measurements
//                           (the worker's CPU time) between the prefill and the rest of the decoding.
// engine: "ours" | "wllama"; params: {prompt, maxNewTokens}. result: {engine, promptTokens, tokens, text,
//   prefillMs (the engine's own time for the prompt and the first token), ttftMs (request → first token received),
//   decodeTokPerS (tokens after the first over the time since the first, as received by this page),
//   engineDecodeTokPerS (the same from the engine's own timings), wallMs, stopReason}.
import { DEFAULT_MODEL, loadModelBytes } from "../model-store.js";
import { EngineWorker, paneStats } from "./engine-worker.js";
import { Wllama } from "../../node_modules/@wllama/wllama/esm/index.js";

const WLLAMA_WASM = new URL("../../node_modules/@wllama/wllama/esm/wasm/wllama.wasm", import.meta.url).href;
const N_CTX = 1024;
const status = document.getElementById("status");

let ours = null; // EngineWorker
let wllama = null; // Wllama
const wllamaLog = []; // wllama's (and llama.cpp's) log lines while it loads

const quietLogger = {
  debug: (...a) => keepLog("debug", a),
  log: (...a) => keepLog("log", a),
  warn: (...a) => keepLog("warn", a),
  error: (...a) => keepLog("error", a),
};
let logging = true;
function keepLog(level, args) {
  if (level === "error") console.error("[wllama]", ...args);
  if (logging && wllamaLog.length < 400) wllamaLog.push(`${level}: ${args.map(String).join(" ")}`);
}

async function setup({ wllamaParams = {}, threads = 1 } = {}) {
  status.textContent = "Reading the model…";
  // DEFAULT_MODEL.url is relative to the demo page (the site root): the same absolute URL, so the same cache entry.
  const modelUrl = new URL(`../../${DEFAULT_MODEL.url}`, import.meta.url).href;
  const model = await loadModelBytes({ url: modelUrl, expectedSha256: DEFAULT_MODEL.sha256 });

  status.textContent = "Loading our engine…";
  let t = performance.now();
  ours = new EngineWorker("ours", threads);
  const hello = await ours.hello;
  const oursWorkerMs = performance.now() - t;
  const bytes = model.bytes.slice(); // transferred to the worker
  const info = await ours.call("loadModel", { bytes: bytes.buffer, sha256: model.sha256, loadDtype: "as-is" }, [bytes.buffer]);
  const oursLoadMs = performance.now() - t;

  status.textContent = "Loading wllama…";
  const blob = new Blob([/** @type {BlobPart} */ (model.bytes)], { type: "application/octet-stream" });
  t = performance.now();
  wllama = new Wllama({ default: WLLAMA_WASM }, { logger: quietLogger, allowOffline: false });
  await wllama.loadModel([blob], {
    n_threads: threads,
    n_gpu_layers: 0, // CPU only (the page has no WebGPU under --disable-gpu anyway)
    n_ctx: N_CTX,
    n_parallel: 1,
    ...wllamaParams,
  });
  const wllamaLoadMs = performance.now() - t;
  logging = false;
  const ctx = wllama.getLoadedContextInfo();
  status.textContent = "Ready.";
  return {
    modelSource: model.source,
    sha256: model.sha256,
    modelBytes: model.bytes.length,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    sharedArrayBuffer: typeof SharedArrayBuffer !== "undefined",
    jspi: typeof /** @type {any} */ (WebAssembly).Suspending === "function", // (JSPI: not in TypeScript's library yet)
    webgpu: !!(/** @type {any} */ (navigator).gpu),
    hardwareConcurrency: navigator.hardwareConcurrency,
    userAgent: navigator.userAgent,
    ours: {
      loadMs: oursLoadMs, // worker start + wasm instantiation + Engine built from the bytes
      workerStartMs: oursWorkerMs, // of which: worker start and wasm instantiation
      engineLoadMs: info.loadMs, // of which: the engine's own time to build the model
      loadDtype: info.loadDtype,
      threads: hello.threads,
      threadsNote: hello.threadsNote,
      simd: hello.simd,
      info,
    },
    wllama: {
      loadMs: wllamaLoadMs, // worker start + wasm instantiation + model load + llama.cpp's warm-up decode
      libllamaVersion: Wllama.getLibllamaVersion(),
      multithread: wllama.isMultithread(),
      threads: wllama.getNumThreads(),
      nCtx: ctx.n_ctx,
      nBatch: ctx.n_batch,
      nUbatch: ctx.n_ubatch,
      addBosToken: ctx.add_bos_token,
      params: wllamaParams,
      log: wllamaLog.slice(),
    },
  };
}

function runOurs(params) {
  const t0 = performance.now();
  const gen = ours.generate(
    {
      prompt: params.prompt,
      chat: false,
      maxNewTokens: params.maxNewTokens,
      temperature: 0,
      topP: 1,
      topK: 0,
      seed: 42,
      alpha: 0,
      mode: "rotate",
      rows: "raw",
    },
    t0,
  );
  return {
    tokensSoFar: () => ours.lastSteps?.filter((s) => s.rows[0]?.tokenId != null).length ?? 0,
    result: gen.then((g) => {
      const p = paneStats(g, 0);
      const last = g.steps[g.steps.length - 1];
      return {
        engine: "ours",
        promptTokens: g.started?.promptTokens ?? null,
        tokens: p.tokens,
        tokenIds: p.tokenIds,
        text: p.text,
        prefillMs: p.prefillMs,
        ttftMs: p.ttftMs,
        decodeTokPerS: p.decodeTokPerS,
        engineDecodeTokPerS: p.engineStepMs ? 1000 / p.engineStepMs : null,
        wallMs: g.end - t0,
        stopReason: last?.rows[0]?.stopReason ?? null,
      };
    }),
  };
}

function runWllama(params) {
  const chunks = []; // {at, text, predictedN}
  let firstTimings = null; // llama.cpp's timings as the first token arrived
  let final = null;
  const t0 = performance.now();
  const done = wllama.createCompletion({
    prompt: params.prompt,
    max_tokens: params.maxNewTokens,
    temperature: 0, // greedy
    top_k: 1,
    penalty_repeat: 1,
    cache_prompt: false, // read the whole prompt every round, as our engine does
    timings_per_token: true,
    stream: true,
    onData: (chunk) => {
      const at = performance.now();
      final = chunk;
      const text = chunk.choices?.[0]?.text ?? "";
      const predictedN = chunk.timings?.predicted_n ?? null;
      if (text !== "" || (predictedN ?? 0) > (chunks[chunks.length - 1]?.predictedN ?? 0)) {
        if (!chunks.length) firstTimings = chunk.timings ?? null;
        chunks.push({ at, text, predictedN });
      }
    },
  });
  return {
    tokensSoFar: () => chunks[chunks.length - 1]?.predictedN ?? chunks.length,
    result: done.then(() => {
      const end = performance.now();
      const tm = final?.timings ?? {};
      const tokens = tm.predicted_n ?? chunks.length;
      const first = chunks[0];
      const last = chunks[chunks.length - 1];
      const firstN = first?.predictedN ?? 1;
      const lastN = last?.predictedN ?? chunks.length;
      return {
        engine: "wllama",
        promptTokens: tm.prompt_n ?? final?.usage?.prompt_tokens ?? null,
        cachedPromptTokens: tm.cache_n ?? null,
        tokens,
        text: chunks.map((c) => c.text).join(""),
        prefillMs: tm.prompt_ms ?? null,
        ttftMs: first ? first.at - t0 : null,
        decodeTokPerS: last && last.at > first.at ? (lastN - firstN) / ((last.at - first.at) / 1000) : null,
        // llama.cpp's predicted_ms runs from the first token to the last: tokens - 1 steps.
        engineDecodeTokPerS: tm.predicted_ms > 0 && tokens > 1 ? (tokens - 1) / (tm.predicted_ms / 1000) : null,
        wallMs: end - t0,
        stopReason: final?.choices?.[0]?.finish_reason ?? null,
        chunks: chunks.length,
        timings: tm,
        firstTimings,
      };
    }),
  };
}

let current = null;
function begin(engine, params) {
  if (engine !== "ours" && engine !== "wllama") throw new Error(`unknown engine ${engine}`);
  const run = (engine === "ours" ? runOurs : runWllama)(params);
  run.settled = false;
  run.result.then(
    () => (run.settled = true),
    () => (run.settled = true),
  );
  current = run;
  status.textContent = `Running ${engine}…`;
  return true;
}
async function firstToken() {
  for (;;) {
    const n = current.tokensSoFar();
    if (n > 0 || current.settled) return n; // finish() reports a failure
    await new Promise((r) => setTimeout(r, 1));
  }
}
async function finish() {
  const r = await current.result;
  status.textContent = "Ready.";
  return r;
}
async function run(engine, params) {
  begin(engine, params);
  return finish();
}

globalThis.wbench = { setup, run, begin, firstToken, finish };
status.textContent = "Idle: call wbench.setup().";
document.body.dataset.ready = "1";
