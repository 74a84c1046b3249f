// @ts-check
// Worker-layout benchmark for scripts/bench-browser.mjs (not part of the demo).
//
// It drives the demo's own worker (www/worker.js, its messages in www/protocol.js) in the two layouts the demo could
// use:
//   batch: one worker, one Engine, `rows: "both"`: the raw and the steered row decode as a batch of two (the demo's
//          design);
//   pair:  two workers, one Engine each, `rows: "raw"` in one and `rows: "steered"` in the other, started together
//          and decoding in parallel (two model copies in memory).
// The batch layout reuses the first worker of the pair, so alternating the two costs no reload.
//
// API (globalThis.bench), all async:
//   setup({loadDtype})  load the model (from Cache Storage if the demo cached it) and the heads vectors into both
//                       workers -> {modelSource, info: [engine info ×2], vectors: {recommendedAlpha, …}, loadMs}
//   batch(params)       one generation, batch layout   -> {layout, wallMs, panes: [paneStats raw, paneStats steered]}
//   pair(params)        one generation, pair layout    -> same shape
//   single(layout, p)   one row in one worker, layout "steered" | "readout" | "plain" (see SINGLE below)
//                                                      -> {layout, wallMs, panes: [paneStats]}
//   clearVectors(i)     drop worker i's vectors (for "plain")
//   profiled(layout, p) single() or batch() (a batch layout) with the engine's per-phase profile on
//                                                      -> {result, phases: [[phase, ms], …]}
//   memory()            wasm memory of each worker     -> [{wasmBytes}, {wasmBytes}]
//   begin(layout, params) (any layout above), then firstToken() -> [steps received so far, per worker], once every row has its first
//   token, then
//   finish() -> the result of batch/pair: the same generation in three calls, so that a tool can take measurements
//   (scripts/bench-browser.mjs: the workers' CPU time) between the prefill and the rest of the decoding.
// params are Engine.start options (docs/wasm-api.md) without `rows`. paneStats: {tokens, tokenIds, prefillMs (the
// engine's time for step 0: prompt + first token), ttftMs (start posted → first step received), decodeTokPerS
// (tokens after the first over the time since the first, as received by the page: what the demo shows),
// engineStepMs (mean engine time of the later steps)}.
import { DEFAULT_MODEL, loadModelBytes } from "../model-store.js";
import { EngineWorker, paneStats } from "./engine-worker.js";

const VECTORS_URL = new URL("../vectors/smollm2-135m.heads.safetensors", import.meta.url).href;
const status = document.getElementById("status");

const workers = [];

// Workers 0, 1 (and 2, threaded, with setup({threads})) run the build the demo picks (relaxed SIMD where the browser
// has it); with setup({baseline: true}) workers 3 and 4 run the simd128 build, for the "-simd128" layouts.
async function setup({ loadDtype = "as-is", threads = 1, baseline = false } = {}) {
  status.textContent = "Reading the model…";
  // DEFAULT_MODEL.url is relative to the demo page (the site root): the same absolute URL, so the same cache entry.
  const modelUrl = new URL(`../../${DEFAULT_MODEL.url}`, import.meta.url).href;
  const model = await loadModelBytes({ url: modelUrl, expectedSha256: DEFAULT_MODEL.sha256 });
  const vresp = await fetch(VECTORS_URL, { cache: "no-cache" });
  if (!vresp.ok) throw new Error(`vectors: HTTP ${vresp.status}`);
  const vectorBytes = new Uint8Array(await vresp.arrayBuffer());
  const info = [];
  let vectors = null;
  const loadMs = [];
  const names = ["bench-a", "bench-b", "bench-t", "bench-a0", "bench-b0"].filter(
    (n) => (n !== "bench-t" || threads > 1) && (!n.endsWith("0") || baseline),
  );
  const helloes = [];
  for (const name of names) {
    const w = new EngineWorker(name, name === "bench-t" ? threads : 1, name.endsWith("0") ? "baseline" : "relaxed");
    helloes.push(await w.hello);
    const bytes = model.bytes.slice(); // each engine gets (and keeps) its own copy
    const t = performance.now();
    info.push(await w.call("loadModel", { bytes: bytes.buffer, sha256: model.sha256, loadDtype }, [bytes.buffer]));
    loadMs.push(performance.now() - t);
    vectors = await w.call("loadVectors", { bytes: vectorBytes.slice().buffer });
    workers[{ "bench-a": 0, "bench-b": 1, "bench-t": 2, "bench-a0": 3, "bench-b0": 4 }[name]] = w;
  }
  status.textContent = "Ready.";
  const { probeAccuracy, layerNorms, ...vectorFacts } = vectors;
  return {
    modelSource: model.source, info, vectors: vectorFacts, loadMs, names, threads: helloes.map((h) => h.threads),
    threadsNote: helloes.find((h, i) => names[i] === "bench-t")?.threadsNote ?? null, simd: helloes.map((h) => h.simd),
  };
}

const BATCH_WORKER = { batch: 0, "batch-threads": 2, "batch-simd128": 3 };
const PAIR_WORKERS = { pair: [0, 1], "pair-simd128": [3, 4] };

async function batch(params, layout = "batch") {
  const gen = await workers[BATCH_WORKER[layout]].generate({ ...params, rows: "both" });
  return {
    layout,
    wallMs: gen.end - gen.t0,
    stepsPerWorker: [gen.steps.length],
    panes: [paneStats(gen, 0), paneStats(gen, 1)],
  };
}

async function pair(params, layout = "pair") {
  const [a, b] = PAIR_WORKERS[layout];
  const t0 = performance.now();
  const [raw, steered] = await Promise.all([
    workers[a].generate({ ...params, rows: "raw" }, t0),
    workers[b].generate({ ...params, rows: "steered" }, t0),
  ]);
  return {
    layout,
    wallMs: Math.max(raw.end, steered.end) - t0,
    stepsPerWorker: [raw.steps.length, steered.steps.length],
    panes: [paneStats(raw, 0), paneStats(steered, 0)],
  };
}

// One row in one worker, for the steering-overhead benchmark (scripts/bench-steering.mjs): worker 0 keeps the
// vectors, worker 1 has them cleared (clearVectors(1)), so that "plain" runs the forward without any hook.
const SINGLE = {
  steered: { worker: 0, rows: "steered" }, // the hook fuses z at the given α and reads the projection
  readout: { worker: 0, rows: "raw" }, // the hook at α = 0: the projection read-out only (the demo's raw pane)
  plain: { worker: 1, rows: "raw" }, // no vectors: no hook
  "steered-threads": { worker: 2, rows: "steered" }, // "steered" in the threaded worker (setup({threads}))
  "steered-simd128": { worker: 3, rows: "steered" }, // "steered" in the simd128 build (setup({baseline: true}))
};
async function single(layout, params) {
  const { worker, rows } = SINGLE[layout];
  // A raw row is never steered; α 0 also lets the engine without vectors start.
  const gen = await workers[worker].generate({ ...params, rows, ...(rows === "raw" ? { alpha: 0 } : {}) });
  return { layout, wallMs: gen.end - gen.t0, stepsPerWorker: [gen.steps.length], panes: [paneStats(gen, 0)] };
}
const clearVectors = (i) => workers[i].call("clearVectors");

// One run of `layout` with worker i's per-phase profile on -> {result, phases: [[phase, ms], …]}.
async function profiled(layout, params) {
  const w = workers[BATCH_WORKER[layout] ?? SINGLE[layout].worker];
  await w.call("profile", { on: true });
  const result = layout in BATCH_WORKER ? await batch(params, layout) : await single(layout, params);
  return { result, phases: await w.call("profile", { on: false }) };
}

let current = null;
function begin(layout, params) {
  const run = layout.startsWith("pair") ? (p) => pair(p, layout) : layout.startsWith("batch") ? (p) => batch(p, layout) : (p) => single(layout, p);
  const result = run(params);
  result.catch(() => {});
  const busy = layout.startsWith("pair")
    ? PAIR_WORKERS[layout].map((i) => workers[i])
    : [workers[BATCH_WORKER[layout] ?? SINGLE[layout]?.worker ?? 0]];
  current = { result, workers: busy };
  return true;
}
async function firstToken() {
  for (;;) {
    const counts = current.workers.map((w) => w.lastSteps?.length ?? 0);
    if (counts.every((n) => n > 0)) return counts;
    await new Promise((r) => setTimeout(r, 1));
  }
}
const finish = () => current.result;

async function memory() {
  return Promise.all(workers.map((w) => w.call("memory")));
}

// The kernels' exactness check (www/worker.js "kernelCheck") in worker i.
const kernelCheck = (i, seed) => workers[i].call("kernelCheck", { seed });

globalThis.bench = { kernelCheck, setup, batch, pair, single, clearVectors, profiled, memory, begin, firstToken, finish };
status.textContent = "Idle: call bench.setup().";
document.body.dataset.ready = "1";
