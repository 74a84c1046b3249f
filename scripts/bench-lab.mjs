#!/usr/bin/env node
// How long the vector lab takes to derive a vector in the page, and how often its progress bar moves.
//
//   node scripts/bench-lab.mjs [--rounds 3] [--out reports/lab-bench.json]
//
// Needs what scripts/bench-browser.mjs needs. Opens the demo page (index.html) in one headless Chromium session,
// loads the model, and derives, alternating by round: the sentiment starter concept from 40 pairs and the detox
// concept from 200 pairs (site heads, seed 0). Per derivation: the wall time from the click on Derive to the result
// (what a reader waits), the largest gap between two moves of the progress bar, and the number of moves.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as B from "./bench-common.mjs";

const CASES = [
  { concept: "sentiment", count: 40 },
  { concept: "detox", count: 200 },
];

async function deriveOnce(page, { concept, count }) {
  await page.selectOption("#lab-concept", concept);
  await page.waitForFunction((n) => document.querySelectorAll("#lab-rows tr").length >= n, count);
  await page.selectOption("#lab-site", "heads");
  await page.fill("#lab-count", String(count));
  await page.fill("#lab-seed", "0");
  await page.evaluate(() => {
    const bar = document.querySelector("#lab-progress");
    const moves = (globalThis.__labMoves = []);
    globalThis.__labObserver?.disconnect();
    globalThis.__labObserver = new MutationObserver(() => moves.push({ t: performance.now(), v: bar.value }));
    globalThis.__labObserver.observe(bar, { attributes: true });
    // The progress element's value is a property: watch it through the text line the page updates with it.
    const text = document.querySelector("#lab-progress-text");
    new MutationObserver(() => moves.push({ t: performance.now(), v: bar.value })).observe(text, { childList: true, characterData: true, subtree: true });
  });
  const t0 = await page.evaluate(() => performance.now());
  await page.click("#lab-derive");
  await page.waitForFunction(() => /^Derived /.test(document.querySelector("#lab-progress-text").textContent) || !document.querySelector("#lab-error").hidden, null, { timeout: 600000 });
  const { t1, moves, error } = await page.evaluate(() => ({
    t1: performance.now(),
    moves: globalThis.__labMoves,
    error: document.querySelector("#lab-error").hidden ? null : document.querySelector("#lab-error").textContent,
  }));
  if (error) throw new Error(error);
  const times = [t0, ...moves.map((m) => m.t), t1];
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  return { concept, count, wallMs: t1 - t0, maxGapMs: Math.max(...gaps), moves: moves.length };
}

async function main() {
  const opts = B.parseOptions(process.argv.slice(2), { rounds: 3, out: "reports/lab-bench.json" }, import.meta.url);
  for (const need of [B.CHROMIUM, "pkg/destein_bg.wasm", "models/SmolLM2-135M-Instruct.Q4_1.gguf"]) {
    if (!fs.existsSync(path.isAbsolute(need) ? need : path.join(B.ROOT, need))) throw new Error(`missing ${need}`);
  }
  const log = (...a) => console.error("[bench-lab]", ...a);
  const env = { date: new Date().toISOString(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadavgBefore: os.loadavg(), node: process.version, wasmSha256: B.sha256File(path.join(B.ROOT, "pkg/destein_bg.wasm")) };
  const session = await B.openSession("lab-bench");
  env.chromium = session.chromium;
  const results = { env, options: opts, runs: [] };
  try {
    const { page, srv } = session;
    await page.goto(srv.url);
    await page.waitForSelector('body[data-phase="ready"]', { timeout: 300000 });
    await page.waitForFunction(() => !document.querySelector("#lab-derive").disabled, null, { timeout: 300000 });
    for (let round = 0; round < opts.rounds; round++) {
      for (const c of round % 2 ? [...CASES].reverse() : CASES) {
        const r = { round: round + 1, ...(await deriveOnce(page, c)) };
        log(`${r.concept} × ${r.count}: ${(r.wallMs / 1000).toFixed(2)} s, progress moved ${r.moves} times, largest gap ${(r.maxGapMs / 1000).toFixed(2)} s`);
        results.runs.push(r);
      }
    }
    if (session.problems.length) throw new Error(`page problems: ${session.problems.join("; ")}`);
  } finally {
    await session.close();
  }
  env.loadavgAfter = os.loadavg();
  results.summary = Object.fromEntries(
    CASES.map(({ concept, count }) => {
      const runs = results.runs.filter((r) => r.concept === concept);
      return [`${concept}-${count}`, { wallMs: B.summary(runs.map((r) => r.wallMs)), maxGapMs: B.summary(runs.map((r) => r.maxGapMs)) }];
    }),
  );
  fs.writeFileSync(path.join(B.ROOT, opts.out), JSON.stringify(results, null, 2) + "\n");
  for (const [k, s] of Object.entries(results.summary)) {
    console.log(`${k}: median ${(s.wallMs.median / 1000).toFixed(2)} s (${B.range(s.wallMs, (x) => (x / 1000).toFixed(2))} s); largest progress gap median ${(s.maxGapMs.median / 1000).toFixed(2)} s`);
  }
  console.log(`wrote ${opts.out}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
