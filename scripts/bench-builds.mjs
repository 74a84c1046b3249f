#!/usr/bin/env node
// Two engine builds side by side, for a change to the engine: browser sessions of the workers-alone benchmark
// (www/bench/, the demo's worker without the page) alternate between build A and build B (A, B, A, B, …), and each
// session runs every layout --runs times, alternating their order:
//   batch            one worker, the raw and the steered row as a batch of two, one thread
//   steered          one worker, the steered row alone, one thread
//   pair             two workers, a row each, one thread each
//   batch-threads    the batch of two in the threaded build, two threads
//   steered-threads  the steered row alone in the threaded build, two threads
// or, with --simd baseline, the simd128 build's (pkg/ itself, what browsers without relaxed SIMD run): batch-simd128,
// steered-simd128, pair-simd128.
// A build is a directory laid out as scripts/build-wasm.sh writes pkg/ (so a copy of pkg/ made before the change,
// `cp -r pkg /tmp/pkg-before`); --b defaults to the repository's own pkg/. The server serves the session's build in
// place of pkg/ (scripts/serve.mjs, DESTEIN_PKG). Per layout and build: the engine's time per decoding step and each
// pane's decoding speed (medians over all runs), and A's step time over B's (> 1: B is faster).
//
//   node scripts/bench-builds.mjs --a DIR [--b DIR] [--simd relaxed|baseline] [--sessions 2] [--runs 3] [--tokens 64]
//                                 [--out reports/builds-ab.json]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT, parseOptions, PROMPT, median, summary, openSession, openWorkerBench, sha256File, f1, f0, withRange } from "./bench-common.mjs";

const opts = parseOptions(process.argv.slice(2), { a: "", b: "", simd: "relaxed", sessions: 2, runs: 3, tokens: 64, out: "reports/builds-ab.json" }, import.meta.url);
if (!opts.a) throw new Error("--a DIR is needed (a copy of pkg/ as scripts/build-wasm.sh writes it)");
if (!["relaxed", "baseline"].includes(opts.simd)) throw new Error("--simd is relaxed or baseline");
const LAYOUTS = opts.simd === "baseline"
  ? ["batch-simd128", "steered-simd128", "pair-simd128"]
  : ["batch", "steered", "pair", "batch-threads", "steered-threads"];
const builds = { A: path.resolve(opts.a), B: opts.b ? path.resolve(opts.b) : path.join(ROOT, "pkg") };
for (const dir of Object.values(builds)) {
  for (const f of ["destein_bg.wasm", "relaxed/destein_bg.wasm", "threads/destein_bg.wasm"]) {
    if (!fs.existsSync(path.join(dir, f))) throw new Error(`${dir} has no ${f}: not a pkg/ directory of scripts/build-wasm.sh`);
  }
}
const log = (...a) => console.error("[builds]", ...a);

/** One browser session on `build`: every layout `opts.runs` times -> [{build, session, layout, stepMs, tokPerS, prefillMs}]. */
async function session(build, index) {
  const { srv, page, close } = await openSession("builds", { DESTEIN_PKG: builds[build] });
  try {
    await openWorkerBench(page, srv.url);
    const setup = await page.evaluate((baseline) => globalThis.bench.setup({ threads: 2, baseline }), opts.simd === "baseline");
    if (setup.threads[2] !== 2) throw new Error(`the threaded worker runs ${setup.threads[2]} threads: ${setup.threadsNote}`);
    const params = {
      prompt: PROMPT, chat: false, maxNewTokens: opts.tokens, temperature: 0, topP: 1, topK: 0, seed: 42,
      alpha: setup.vectors.recommendedAlpha, mode: setup.vectors.recommendedMode,
    };
    const run = (layout, p) => page.evaluate(([l, p]) => (globalThis.bench.begin(l, p), globalThis.bench.finish()), [layout, p]);
    for (const layout of LAYOUTS) await run(layout, { ...params, maxNewTokens: 8 }); // warm-up
    const rows = [];
    for (let i = 0; i < opts.runs; i++) {
      for (const layout of i % 2 === 0 ? LAYOUTS : [...LAYOUTS].reverse()) {
        const r = await run(layout, params);
        const row = {
          build, session: index, layout,
          stepMs: median(r.panes.map((p) => p.engineStepMs)),
          tokPerS: r.panes.map((p) => p.decodeTokPerS),
          prefillMs: Math.max(...r.panes.map((p) => p.prefillMs)),
          tokenIds: r.panes.map((p) => p.tokenIds),
        };
        log(`${build} session ${index} ${layout}: step ${f1(row.stepMs)} ms, tok/s ${row.tokPerS.map(f1).join(" / ")}`);
        rows.push(row);
      }
    }
    return rows;
  } finally {
    await close();
  }
}

const env = {
  date: new Date().toISOString(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadavgBefore: os.loadavg(),
  builds: Object.fromEntries(Object.entries(builds).map(([k, dir]) => [k, { dir, relaxedWasmSha256: sha256File(path.join(dir, "relaxed/destein_bg.wasm")) }])),
};
const rows = [];
for (let s = 0; s < opts.sessions; s++) for (const build of ["A", "B"]) rows.push(...(await session(build, s + 1)));
env.loadavgAfter = os.loadavg();

// Both builds must write the same tokens (a speed change must not change what the engine computes).
const differ = LAYOUTS.filter((l) => new Set(rows.filter((r) => r.layout === l).map((r) => JSON.stringify(r.tokenIds))).size > 1);
const summaryOf = (rs) => ({
  stepMs: summary(rs.map((r) => r.stepMs)),
  tokPerS: rs[0].tokPerS.map((_, k) => summary(rs.map((r) => r.tokPerS[k]))),
  prefillMs: summary(rs.map((r) => r.prefillMs)),
});
const S = {};
for (const layout of LAYOUTS) {
  const of = (b) => rows.filter((r) => r.layout === layout && r.build === b);
  S[layout] = { A: summaryOf(of("A")), B: summaryOf(of("B")) };
  S[layout].stepAoverB = S[layout].A.stepMs.median / S[layout].B.stepMs.median;
}
for (const r of rows) delete r.tokenIds;
const outPath = path.resolve(ROOT, opts.out);
fs.mkdirSync(path.dirname(outPath), { recursive: true });
fs.writeFileSync(outPath, JSON.stringify({ env, opts, sameTokens: differ.length === 0, summary: S, rows }, null, 1) + "\n");

console.log(`| layout | A: ms per step | B: ms per step | A / B | A: tok/s per pane | B: tok/s per pane |\n|---|---|---|---|---|---|`);
for (const layout of LAYOUTS) {
  const { A, B, stepAoverB } = S[layout];
  const tps = (x) => x.tokPerS.map((s) => f1(s.median)).join(" / ");
  console.log(`| ${layout} | ${withRange(A.stepMs, (x) => x.toFixed(2))} | ${withRange(B.stepMs, (x) => x.toFixed(2))} | ${stepAoverB.toFixed(2)} | ${tps(A)} | ${tps(B)} |`);
}
console.log(`${opts.sessions} sessions per build, ${opts.runs} runs per layout and session; prefill ms A / B: ${LAYOUTS.map((l) => `${l} ${f0(S[l].A.prefillMs.median)} / ${f0(S[l].B.prefillMs.median)}`).join(", ")}`);
if (differ.length) {
  console.log(`the builds wrote different tokens in: ${differ.join(", ")}`);
  process.exitCode = 1;
}
console.log(`wrote ${opts.out}`);
