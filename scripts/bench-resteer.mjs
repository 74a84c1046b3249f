#!/usr/bin/env node
// How long "re-steer the whole text" takes in the demo page: after a finished run of N tokens at α = 0, the α slider
// is released at the recommended α and the steered pane is rewritten as a run at that α (prompt and N steps replayed
// in the steered pane's worker, then painted). Measured in one headless Chromium session with the real engine.
//
//   node scripts/bench-resteer.mjs [--rounds 5] [--lengths 16,64,128] [--out reports/resteer-bench.json]
//
// For each length, every round: one run at α = 0 (its wall time from Start to the last token is `generate`), then
// the release (its wall time from the release to the last re-steered token painted is `resteer`, and the worker's
// own time for the restart and the replay is `resteerEngine`). Reported: medians and min–max, and the ratio
// resteer / generate (the replay has no per-token yield, so it can be faster than streaming the same tokens).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as B from "./bench-common.mjs";

function parseArgs(argv) {
  const o = B.parseOptions(argv, { rounds: 5, lengths: "16,64,128", out: "reports/resteer-bench.json" }, import.meta.url);
  o.lengths = o.lengths.split(",").map(Number);
  if (!o.lengths.every((n) => Number.isInteger(n) && n >= 1)) throw new Error("--lengths takes whole numbers ≥ 1");
  return o;
}

/** Fill the form and run to the end; the wall time from the click to the run's end (page marks). */
async function generate(page, { tokens, alpha }) {
  await page.fill("#prompt", B.PROMPT);
  await page.fill("#max-tokens", String(tokens));
  await page.fill("#seed", "7");
  await page.evaluate((a) => {
    const el = document.querySelector("#alpha");
    el.value = String(a);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, alpha);
  const before = await page.evaluate(() => document.body.dataset.runId || "");
  const t0 = await page.evaluate(() => performance.now());
  await page.click("#start");
  await page.waitForFunction((b) => document.body.dataset.runId !== b, before);
  await page.waitForSelector('body[data-run="done"]', { timeout: 600000 });
  return page.evaluate((t) => {
    const last = performance.getEntriesByName("destein:run-end").at(-1)?.startTime ?? performance.now();
    return last - t;
  }, t0);
}

async function resteer(page, alpha) {
  return page.evaluate(
    (a) =>
      new Promise((resolve, reject) => {
        const n = performance.getEntriesByName("destein:resteer").length;
        const el = document.querySelector("#alpha");
        const t0 = performance.now();
        el.value = String(a);
        el.dispatchEvent(new Event("input", { bubbles: true }));
        el.dispatchEvent(new Event("change", { bubbles: true }));
        const timer = setInterval(() => {
          const marks = performance.getEntriesByName("destein:resteer");
          if (marks.length > n && document.body.dataset.run === "done") {
            clearInterval(timer);
            resolve({ wallMs: performance.now() - t0, engineMs: marks.at(-1).detail.ms, steps: marks.at(-1).detail.steps });
          }
        }, 5);
        setTimeout(() => reject(new Error("re-steer did not finish in 120 s")), 120000);
      }),
    alpha,
  );
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  for (const need of [B.CHROMIUM, "pkg/destein_bg.wasm", "models/SmolLM2-135M-Instruct.Q4_1.gguf"]) {
    if (!fs.existsSync(path.isAbsolute(need) ? need : path.join(B.ROOT, need))) throw new Error(`missing ${need}`);
  }
  const log = (...a) => console.error("[bench-resteer]", ...a);
  const session = await B.openSession("resteer-bench");
  const { srv, page, problems } = session;
  const results = {
    env: { date: new Date().toISOString(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, chromium: session.chromium },
    options: { ...opts, prompt: B.PROMPT, seed: 7 },
    lengths: [],
  };
  try {
    await page.goto(srv.url);
    await page.waitForSelector('body[data-phase="ready"]', { timeout: 600000 });
    await page.waitForFunction(() => !document.querySelector("#start").disabled);
    const alpha = Number(await page.inputValue("#alpha"));
    results.options.alpha = alpha;
    results.env.layout = await page.getAttribute("body", "data-layout");
    await page.check('input[name="alpha-applies"][value="resteer"]');
    await generate(page, { tokens: 4, alpha: 0 }); // warm-up
    for (const tokens of opts.lengths) {
      const rows = { generate: [], resteer: [], resteerEngine: [], steps: [] };
      for (let r = 0; r < opts.rounds; r++) {
        rows.generate.push(await generate(page, { tokens, alpha: 0 }));
        const x = await resteer(page, alpha);
        rows.resteer.push(x.wallMs);
        rows.resteerEngine.push(x.engineMs);
        rows.steps.push(x.steps);
        log(`${tokens} tokens, round ${r + 1}: generate ${rows.generate.at(-1).toFixed(0)} ms, re-steer ${x.wallMs.toFixed(0)} ms (${x.steps} steps)`);
      }
      const s = { tokens, generate: B.summary(rows.generate), resteer: B.summary(rows.resteer), resteerEngine: B.summary(rows.resteerEngine), steps: rows.steps };
      s.ratio = s.resteer.median / s.generate.median;
      results.lengths.push(s);
    }
  } finally {
    await session.close();
  }
  if (problems.length) throw new Error(`page errors: ${problems.join("; ")}`);
  fs.writeFileSync(path.join(B.ROOT, opts.out), JSON.stringify(results, null, 1) + "\n");
  console.log(`re-steer latency in the page (${results.env.layout} layout, α ${results.options.alpha}, medians of ${opts.rounds} rounds, min–max):`);
  console.log("| tokens | generate at α = 0 (ms) | re-steer on release (ms) | of which in the worker (ms) | re-steer / generate |");
  console.log("|---|---|---|---|---|");
  for (const s of results.lengths) {
    console.log(`| ${s.tokens} | ${B.withRange(s.generate, B.f0)} | ${B.withRange(s.resteer, B.f0)} | ${B.withRange(s.resteerEngine, B.f0)} | ${s.ratio.toFixed(2)} |`);
  }
  console.log(`wrote ${opts.out}`);
  void srv;
}

main().catch((err) => {
  console.error(`bench-resteer: ${err.message}`);
  process.exit(1);
});
