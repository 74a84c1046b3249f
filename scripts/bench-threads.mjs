#!/usr/bin/env node
// The engine layouts for the two panes, measured in one Chromium session on the real engine and model, without the
// page's rendering (www/bench/: the demo's worker), alternating the layouts in every round:
//   batch          one worker, the raw and the steered row as a batch of two, single-threaded build
//   batch-threads  the same in the threaded build with --threads threads (the page cross-origin isolated)
//   pair           two workers, a row each, single-threaded build (two copies of the model)
// and one pane alone (the steered row) single-threaded and threaded. The single-threaded layouts run the relaxed-SIMD
// build (pkg/relaxed/, as the demo does where the browser has relaxed SIMD; the threaded build has it too); the
// "-simd128" layouts run the same in the simd128 build (pkg/, ?simd=baseline), side by side. Per layout: each pane's decoding speed while
// both stream, the prompt's prefill time (44-token prompt), time to first token, and wasm memory. It also runs the
// kernels' exactness check in the threaded worker (scalar = simd128 = threaded, bit for bit) and fails if it differs.
// Then the page itself (index.html?debug=1, warm cache: a reload reads the model from Cache Storage), driven through
// its controls, in the layouts (?workers=1&threads=1, ?workers=1&threads=2, ?workers=2, and the first and last with
// &simd=baseline): navigation → ready,
// Start → first token, prefill, and each pane's speed while both stream (with rendering and the tox-block judge).
//
//   node scripts/bench-threads.mjs [--rounds 5] [--tokens 64] [--threads 2] [--profile 0] [--out reports/threads-bench.json]
//
// --profile N: also N rounds of profiled runs (src/profile.rs): one pane and the batch of both, one thread and --threads
// threads, alternating; each a whole run minus a prompt-only run, so per decoding step: where a step's time goes, what
// the second row adds, and which phases the threads shorten.
import fs from "node:fs";
import os from "node:os";
import { ROOT, parseOptions, PROMPT, median, summary, openSession, openWorkerBench, chromiumPids, cpuMeter, sha256File, f0, f1, withRange } from "./bench-common.mjs";
import path from "node:path";

const opts = parseOptions(process.argv.slice(2), { rounds: 5, tokens: 64, threads: 2, profile: 0, out: "reports/threads-bench.json", seed: 42 }, import.meta.url);
const log = (...a) => console.error("[bench]", ...a);
// Profiled (--profile): one pane, and the batch of both, single-threaded and threaded.
const PROFILED = ["steered", "steered-threads", "batch", "batch-threads"];
const LAYOUTS = ["batch", "batch-threads", "pair", "steered", "steered-threads", "batch-simd128", "pair-simd128", "steered-simd128"];

const session = await openSession("threads");
const { srv, page, problems, ours, userDataDir } = session;
const env = {
  date: new Date().toISOString(),
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  chromium: session.chromium,
  loadavgBefore: os.loadavg(),
  wasmSha256: sha256File(path.join(ROOT, "pkg/destein_bg.wasm")),
  relaxedWasmSha256: sha256File(path.join(ROOT, "pkg/relaxed/destein_bg.wasm")),
  threadedWasmSha256: sha256File(path.join(ROOT, "pkg/threads/destein_bg.wasm")),
};
const rounds = [];
const pageRounds = [];
const profiles = [];
let setup, check;
// The page's layouts: URL parameters, and what the page must report running.
const PAGE_LAYOUTS = ["batch", "batch-threads", "pair", "batch-simd128", "pair-simd128"];
const PAGE_URL = {
  batch: "workers=1&threads=1", "batch-threads": `workers=1&threads=${opts.threads}`, pair: "workers=2",
  "batch-simd128": "workers=1&threads=1&simd=baseline", "pair-simd128": "workers=2&simd=baseline",
};

/** One warm-cache page load and run in `layout`, through the page's own controls. */
async function pageRound(page, base, layout, ours) {
  await page.goto(`${base}?debug=1&${PAGE_URL[layout]}`);
  await page.waitForSelector('body[data-phase="ready"]', { timeout: 600000 });
  await page.waitForFunction(() => !document.querySelector("#start").disabled, null, { timeout: 600000 });
  await page.waitForSelector("body[data-judge=ready]", { state: "attached", timeout: 60000 });
  const facts = await page.evaluate(() => ({
    layout: document.body.dataset.layout, threads: Number(document.body.dataset.threads), source: document.body.dataset.modelSource,
    simd: document.body.dataset.simd,
    readyMs: performance.getEntriesByName("destein:ready")[0]?.startTime,
  }));
  const wantThreads = layout === "batch-threads" ? opts.threads : 1;
  const wantSimd = layout.endsWith("simd128") ? "simd128" : "relaxed-simd";
  if (facts.layout !== layout.split("-")[0] || facts.threads !== wantThreads || facts.simd !== wantSimd) throw new Error(`asked for ${layout}, the page runs ${JSON.stringify(facts)}`);
  if (facts.source !== "from cache") throw new Error(`warm load came ${facts.source}`);
  await page.fill("#prompt", PROMPT);
  await page.check('input[name="format"][value="continuation"]');
  await page.fill("#max-tokens", String(opts.tokens));
  await page.fill("#seed", String(opts.seed));
  await page.fill("#temperature", "0");
  const before = await page.evaluate(() => document.body.dataset.runId || "");
  const cpu = cpuMeter(ours);
  await page.click("#start");
  await page.waitForFunction((b) => document.body.dataset.runId !== b, before, { timeout: 10000 });
  await page.waitForSelector('body[data-run="done"]', { timeout: 600000 });
  const stats = await page.evaluate(() => globalThis.destein.runStats());
  return {
    layout, readyMs: facts.readyMs, startToFirstTokenMs: stats.ttftMs, ttftMs: facts.readyMs + stats.ttftMs, prefillMs: stats.prefillMs,
    promptTokens: stats.promptTokens, foreignCores: cpu.foreignCores(), panes: stats.panes.map(({ text, ...p }) => p),
  };
}
try {
  await openWorkerBench(page, srv.url);
  env.crossOriginIsolated = await page.evaluate(() => globalThis.crossOriginIsolated);
  setup = await page.evaluate((t) => globalThis.bench.setup({ threads: t, baseline: true }), opts.threads);
  log(`setup: threads per worker ${setup.threads.join(" / ")}${setup.threadsNote ? ` (${setup.threadsNote})` : ""}, SIMD ${setup.simd.join(" / ")}`);
  if (setup.threads[2] !== opts.threads) throw new Error(`the threaded worker runs ${setup.threads[2]} threads: ${setup.threadsNote}`);
  const wantSimd = ["relaxed-simd", "relaxed-simd", "relaxed-simd", "simd128", "simd128"];
  if (JSON.stringify(setup.simd) !== JSON.stringify(wantSimd)) throw new Error(`the workers run ${setup.simd.join(" / ")}, not ${wantSimd.join(" / ")}`);
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
  for (let i = 0; i < opts.profile; i++) {
    for (const layout of i % 2 === 0 ? PROFILED : [...PROFILED].reverse()) {
      // A whole run minus a prompt-only run (1 token): the phases of the decoding steps alone.
      const whole = await page.evaluate(([l, p]) => globalThis.bench.profiled(l, p), [layout, params]);
      const prompt = await page.evaluate(([l, p]) => globalThis.bench.profiled(l, { ...p, maxNewTokens: 1 }), [layout, params]);
      const steps = whole.result.panes[0].tokens - 1;
      const phases = whole.phases.map(([k, ms], j) => [k, (ms - prompt.phases[j][1]) / steps]);
      profiles.push({ layout, round: i + 1, steps, engineStepMs: whole.result.panes[0].engineStepMs, phases });
      log(`profile ${layout} ${i + 1}: ${phases.map(([k, ms]) => `${k} ${f1(ms)}`).join(", ")} ms per step`);
    }
  }
  for (let i = 0; i < opts.rounds; i++) {
    const order = i % 2 === 0 ? PAGE_LAYOUTS : [...PAGE_LAYOUTS].reverse();
    for (const layout of order) {
      const r = await pageRound(page, srv.url, layout, ours);
      r.round = i + 1;
      pageRounds.push(r);
      log(`page ${layout} ${i + 1}: ready ${f0(r.readyMs)} ms, first token +${f0(r.startToFirstTokenMs)} ms, prefill ${f0(r.prefillMs)} ms, tok/s ${r.panes.map((p) => f1(p.decodeTokPerS)).join(" / ")}, other load ${f1(r.foreignCores)} cores`);
    }
  }
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
  "batch-simd128 step / single step (1 thread)": ratio("steered-simd128", "batch-simd128", 0),
  "relaxed / simd128, one pane": ratio("steered", "steered-simd128", 0),
  "relaxed / simd128, batch": ratio("batch", "batch-simd128"),
  "relaxed / simd128, pair": ratio("pair", "pair-simd128"),
};
const P = {};
for (const layout of PAGE_LAYOUTS) {
  const rs = pageRounds.filter((r) => r.layout === layout);
  P[layout] = {
    readyMs: summary(rs.map((r) => r.readyMs)),
    startToFirstTokenMs: summary(rs.map((r) => r.startToFirstTokenMs)),
    ttftMs: summary(rs.map((r) => r.ttftMs)),
    prefillMs: summary(rs.map((r) => r.prefillMs)),
    promptTokens: rs[0].promptTokens,
    paneTokPerS: [0, 1].map((k) => summary(rs.map((r) => r.panes[k].decodeTokPerS))),
    foreignCores: median(rs.map((r) => r.foreignCores)),
  };
}
// Per phase: median over the profiled runs of its ms per decoding step; and the engine's whole step.
const profile = {};
for (const layout of PROFILED) {
  const ps = profiles.filter((p) => p.layout === layout);
  const names = [...new Set(ps.flatMap((p) => p.phases.map(([k]) => k)))];
  if (ps.length) {
    profile[layout] = Object.fromEntries(names.map((k) => [k, median(ps.map((p) => p.phases.find(([n]) => n === k)?.[1] ?? 0))]));
    profile[layout]["whole step (engine)"] = median(ps.map((p) => p.engineStepMs));
  }
}
const out = { env, opts, profile, profiles, page: P, pageRounds, setup: { names: setup.names, threads: setup.threads, threadsNote: setup.threadsNote, simd: setup.simd, loadMs: setup.loadMs }, kernelCheck: check, summary: S, ratios, rounds };
const outPath = path.resolve(ROOT, opts.out);
fs.mkdirSync(path.dirname(outPath), { recursive: true });
fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + "\n");
console.log(`| layout | raw pane tok/s | steered pane tok/s | prefill ms | time to first token ms |\n|---|---|---|---|---|`);
for (const layout of LAYOUTS) {
  const s = S[layout];
  const panes = s.paneTokPerS.length === 2 ? s.paneTokPerS.map((p) => withRange(p)) : ["–", withRange(s.paneTokPerS[0])];
  console.log(`| ${layout} | ${panes[0]} | ${panes[1]} | ${withRange(s.prefillMs, f0)} | ${withRange(s.ttftMs, f0)} |`);
}
console.log(`\n| the page (warm cache) | raw pane tok/s | steered pane tok/s | prefill ms | navigation → ready ms | Start → first token ms | time to first token ms |\n|---|---|---|---|---|---|---|`);
for (const layout of PAGE_LAYOUTS) {
  const s = P[layout];
  console.log(`| ${layout} | ${withRange(s.paneTokPerS[0])} | ${withRange(s.paneTokPerS[1])} | ${withRange(s.prefillMs, f0)} | ${withRange(s.readyMs, f0)} | ${withRange(s.startToFirstTokenMs, f0)} | ${withRange(s.ttftMs, f0)} |`);
}
if (profiles.length) {
  console.log(`\n| phase, ms per decoding step | ${PROFILED.join(" | ")} |\n|---|${PROFILED.map(() => "---|").join("")}`);
  for (const k of Object.keys(profile.steered)) console.log(`| ${k} | ${PROFILED.map((l) => f1(profile[l]?.[k])).join(" | ")} |`);
}
for (const [k, v] of Object.entries(ratios)) console.log(`${k}: ${withRange(v, (x) => x.toFixed(2))}`);
console.log(`wrote ${opts.out}`);
