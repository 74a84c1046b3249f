#!/usr/bin/env node
// The engine layouts for the two panes, measured in one Chromium session on the real engine and model, without the
// page's rendering (www/bench/: the demo's worker), alternating the layouts in every round:
//   batch          one worker, the raw and the steered row as a batch of two, single-threaded build
//   batch-threads  the same in the threaded build with --threads threads (the page cross-origin isolated)
//   pair           two workers, a row each, single-threaded build (two copies of the model)
// and one pane alone (the steered row) single-threaded and threaded. Per layout: each pane's decoding speed while
// both stream, the prompt's prefill time (44-token prompt), time to first token, and wasm memory. It also runs the
// kernels' exactness check in the threaded worker (scalar = simd128 = threaded, bit for bit) and fails if it differs.
//
//   node scripts/bench-threads.mjs [--rounds 5] [--tokens 64] [--threads 2] [--out reports/threads-bench.json]
import fs from "node:fs";
import os from "node:os";
import { ROOT, parseOptions, PROMPT, median, summary, openSession, chromiumPids, cpuMeter, sha256File, f0, f1, withRange } from "./bench-common.mjs";
import path from "node:path";

const opts = parseOptions(process.argv.slice(2), { rounds: 5, tokens: 64, threads: 2, out: "reports/threads-bench.json", seed: 42 }, import.meta.url);
const log = (...a) => console.error("[bench]", ...a);
const LAYOUTS = ["batch", "batch-threads", "pair", "steered", "steered-threads"];

const session = await openSession("threads");
const { srv, page, problems, ours, userDataDir } = session;
const env = {
  date: new Date().toISOString(),
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  chromium: session.chromium,
  loadavgBefore: os.loadavg(),
  wasmSha256: sha256File(path.join(ROOT, "pkg/destein_bg.wasm")),
  threadedWasmSha256: sha256File(path.join(ROOT, "pkg/threads/destein_bg.wasm")),
};
const rounds = [];
let setup, check;
try {
  // Let the demo download and cache the model once (the bench page reads it from Cache Storage).
  await page.goto(`${srv.url}?workers=1`);
  await page.waitForFunction(() => document.body.dataset.phase === "ready", null, { timeout: 300000 });
  await page.goto(`${srv.url}www/bench/index.html`);
  await page.waitForSelector("body[data-ready]");
  env.crossOriginIsolated = await page.evaluate(() => globalThis.crossOriginIsolated);
  setup = await page.evaluate((t) => globalThis.bench.setup({ threads: t }), opts.threads);
  log(`setup: threads per worker ${setup.threads.join(" / ")}${setup.threadsNote ? ` (${setup.threadsNote})` : ""}`);
  if (setup.threads[2] !== opts.threads) throw new Error(`the threaded worker runs ${setup.threads[2]} threads: ${setup.threadsNote}`);
  check = await page.evaluate(() => globalThis.bench.kernelCheck(2, 7));
  log(`kernel check in the threaded worker: ${check.cases} cases, ${check.mismatches} mismatches, ${check.threads} threads, ${check.isas.join("/")}`);
  if (check.mismatches) throw new Error(`threaded kernels differ from scalar in ${check.mismatches} cases`);
  const params = {
    prompt: PROMPT, chat: false, maxNewTokens: opts.tokens, temperature: 0, topP: 1, topK: 0, seed: opts.seed,
    alpha: setup.vectors.recommendedAlpha, mode: setup.vectors.recommendedMode,
  };
  for (const l of LAYOUTS) await page.evaluate(([l, p]) => (globalThis.bench.begin(l, p), globalThis.bench.finish()), [l, { ...params, maxNewTokens: 8 }]);
  for (let i = 0; i < opts.rounds; i++) {
    const order = i % 2 === 0 ? LAYOUTS : [...LAYOUTS].reverse();
    for (const layout of order) {
      const cpu = cpuMeter(ours);
      await page.evaluate(([l, p]) => globalThis.bench.begin(l, p), [layout, params]);
      const r = await page.evaluate(() => globalThis.bench.finish());
      r.foreignCores = cpu.foreignCores();
      r.round = i + 1;
      for (const p of r.panes) delete p.text;
      rounds.push(r);
      log(`${layout} ${i + 1}: tok/s ${r.panes.map((p) => f1(p.decodeTokPerS)).join(" / ")}, prefill ${r.panes.map((p) => f0(p.prefillMs)).join(" / ")} ms, ttft ${r.panes.map((p) => f0(p.ttftMs)).join(" / ")} ms, other load ${f1(r.foreignCores)} cores`);
    }
  }
  env.wasmMemory = await page.evaluate(() => globalThis.bench.memory());
  env.chromiumPids = chromiumPids(userDataDir).length;
} finally {
  env.loadavgAfter = os.loadavg();
  await session.close();
}
if (problems.length) console.error("page problems:", problems);

// Same tokens in every layout (greedy): the layouts must not change what is written.
const ids = (r, k) => JSON.stringify(r.panes[k].tokenIds);
const ref = rounds.find((r) => r.layout === "batch");
for (const r of rounds) {
  const steered = r.panes.length === 1 ? 0 : 1;
  if (ids(r, steered) !== ids(ref, 1) || (r.panes.length === 2 && ids(r, 0) !== ids(ref, 0))) throw new Error(`${r.layout} round ${r.round} wrote other tokens than batch`);
}
const S = {};
for (const layout of LAYOUTS) {
  const rs = rounds.filter((r) => r.layout === layout);
  S[layout] = {
    paneTokPerS: rs[0].panes.map((_, k) => summary(rs.map((r) => r.panes[k].decodeTokPerS))),
    prefillMs: summary(rs.map((r) => Math.max(...r.panes.map((p) => p.prefillMs)))),
    ttftMs: summary(rs.map((r) => Math.max(...r.panes.map((p) => p.ttftMs)))),
    foreignCores: median(rs.map((r) => r.foreignCores)),
  };
}
// Ratios within each round (the machine may be shared: side by side, then the median).
const ratio = (a, b, k = 1) => summary(Array.from({ length: opts.rounds }, (_, i) => {
  const ra = rounds.find((r) => r.layout === a && r.round === i + 1), rb = rounds.find((r) => r.layout === b && r.round === i + 1);
  return ra.panes[Math.min(k, ra.panes.length - 1)].decodeTokPerS / rb.panes[Math.min(k, rb.panes.length - 1)].decodeTokPerS;
}));
const ratios = {
  "batch-threads / batch": ratio("batch-threads", "batch"),
  "batch-threads / pair": ratio("batch-threads", "pair"),
  "pair / batch": ratio("pair", "batch"),
  "steered-threads / steered": ratio("steered-threads", "steered", 0),
  "batch step / single step (1 thread)": ratio("steered", "batch", 0),
};
const out = { env, opts, setup: { threads: setup.threads, threadsNote: setup.threadsNote, loadMs: setup.loadMs }, kernelCheck: check, summary: S, ratios, rounds };
const outPath = path.resolve(ROOT, opts.out);
fs.mkdirSync(path.dirname(outPath), { recursive: true });
fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + "\n");
console.log(`| layout | raw pane tok/s | steered pane tok/s | prefill ms | time to first token ms |\n|---|---|---|---|---|`);
for (const layout of LAYOUTS) {
  const s = S[layout];
  const panes = s.paneTokPerS.length === 2 ? s.paneTokPerS.map((p) => withRange(p)) : ["–", withRange(s.paneTokPerS[0])];
  console.log(`| ${layout} | ${panes[0]} | ${panes[1]} | ${withRange(s.prefillMs, f0)} | ${withRange(s.ttftMs, f0)} |`);
}
for (const [k, v] of Object.entries(ratios)) console.log(`${k}: ${withRange(v, (x) => x.toFixed(2))}`);
console.log(`wrote ${opts.out}`);
