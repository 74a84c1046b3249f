#!/usr/bin/env node
// What steering costs in the browser: one pane's engine with the detox vectors fused at the recommended α, against
// the same engine without vectors, measured in one headless Chromium session.
//
//   node scripts/bench-steering.mjs [--rounds 9] [--tokens 64] [--out reports/steering-bench.json]
//
// Needs what scripts/bench-browser.mjs needs. It opens www/bench/index.html (the demo's worker, no page rendering, no
// judge), loads the model and the heads vectors into two workers, clears the vectors of the second, and alternates,
// one generation at a time (one core each, the order rotating every round), same prompt, greedy, --tokens tokens:
//   plain     no vectors: the forward has no hook at all
//   readout   vectors loaded, α = 0: the hook only reads the projection onto z (what the demo's raw pane does)
//   steered   vectors loaded, the vectors' recommended mode and α: the hook fuses z into every layer
// and reports per variant the engine's mean step time after the first token, the received decode tok/s, the prefill
// (prompt + first token) and the worker thread's CPU ms per step; medians, min–max, and the ratio to `plain`.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as B from "./bench-common.mjs";

const VARIANTS = ["plain", "readout", "steered"];

function parseArgs(argv) {
  const o = B.parseOptions(argv, { rounds: 9, tokens: 64, out: "reports/steering-bench.json" }, import.meta.url);
  if (o.tokens < 2) throw new Error("--tokens must be at least 2");
  return o;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  for (const need of [B.CHROMIUM, "pkg/destein_bg.wasm", "models/SmolLM2-135M-Instruct.Q4_1.gguf"]) {
    if (!fs.existsSync(path.isAbsolute(need) ? need : path.join(B.ROOT, need))) throw new Error(`missing ${need}`);
  }
  const env = {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    loadavgBefore: os.loadavg(),
    node: process.version,
    wasmSha256: B.sha256File(path.join(B.ROOT, "pkg/destein_bg.wasm")),
    vectorsSha256: B.sha256File(path.join(B.ROOT, "www/vectors/smollm2-135m.heads.safetensors")),
  };
  const log = (...a) => console.error("[bench-steering]", ...a);
  const session = await B.openSession("steering-bench");
  const { srv, userDataDir, context, page, problems, ours } = session;
  env.chromium = session.chromium;
  const results = { env, options: { ...opts, prompt: B.PROMPT, greedy: true }, rounds: [] };
  try {
    await page.goto(`${srv.url}www/bench/index.html`);
    await page.waitForSelector("body[data-ready]", { state: "attached" });
    const setup = await page.evaluate(() => globalThis.bench.setup({ loadDtype: "as-is" }));
    await page.evaluate(() => globalThis.bench.clearVectors(1));
    const params = {
      prompt: B.PROMPT,
      chat: false,
      maxNewTokens: opts.tokens,
      temperature: 0,
      topP: 1,
      topK: 0,
      seed: 1,
      alpha: Number(setup.vectors.recommendedAlpha.toPrecision(6)),
      mode: setup.vectors.recommendedMode,
    };
    results.setup = { ...setup, mode: params.mode, alpha: params.alpha };
    log(`model ${setup.modelSource}; steering: heads, ${params.mode} α ${params.alpha}`);
    for (const v of VARIANTS) await page.evaluate(([l, p]) => globalThis.bench.single(l, { ...p, maxNewTokens: 8 }), [v, params]);
    for (let i = 0; i < opts.rounds; i++) {
      const order = VARIANTS.map((_, k) => VARIANTS[(k + i) % VARIANTS.length]);
      for (const variant of order) {
        const cpu = B.cpuMeter(ours);
        await page.evaluate(([l, p]) => globalThis.bench.begin(l, p), [variant, params]);
        const before = await page.evaluate(() => globalThis.bench.firstToken());
        const wcpu = B.workerCpu(B.chromiumPids(userDataDir));
        const r = await page.evaluate(() => globalThis.bench.finish());
        const pane = r.panes[0];
        const row = {
          variant,
          round: i + 1,
          tokens: pane.tokens,
          text: pane.text,
          prefillMs: pane.prefillMs,
          engineStepMs: pane.engineStepMs,
          decodeTokPerS: pane.decodeTokPerS,
          cpuMsPerStep: B.cpuPerStep(wcpu.done().slice(0, 1), before, r.stepsPerWorker),
          foreignCores: cpu.foreignCores(),
        };
        results.rounds.push(row);
        log(
          `${variant.padEnd(7)} ${i + 1}: step ${row.engineStepMs.toFixed(2)} ms, ${B.f1(row.decodeTokPerS)} tok/s, ` +
            `prefill ${B.f0(row.prefillMs)} ms, CPU ${B.f1(row.cpuMsPerStep)} ms/step, other load ${B.f1(row.foreignCores)} cores`,
        );
      }
    }
    // The profile: each phase's time over a whole run minus over a prompt-only run (1 token), per decoding step;
    // medians of three such pairs, alternating the variants.
    const profiles = { plain: [], steered: [] };
    for (let i = 0; i < 3; i++) {
      for (const variant of ["plain", "steered"]) {
        const whole = await page.evaluate(([l, p]) => globalThis.bench.profiled(l, p), [variant, params]);
        const prompt = await page.evaluate(([l, p]) => globalThis.bench.profiled(l, { ...p, maxNewTokens: 1 }), [variant, params]);
        const steps = whole.result.panes[0].tokens - 1;
        profiles[variant].push({
          engineStepMs: whole.result.panes[0].engineStepMs,
          phases: whole.phases.map(([phase, ms], k) => [phase, (ms - prompt.phases[k][1]) / steps]),
        });
      }
    }
    results.profile = {};
    for (const [variant, runs] of Object.entries(profiles)) {
      results.profile[variant] = {
        runs,
        engineStepMs: B.median(runs.map((r) => r.engineStepMs)),
        phases: runs[0].phases.map(([phase], k) => [phase, B.median(runs.map((r) => r.phases[k][1]))]),
      };
    }
  } finally {
    env.loadavgAfter = os.loadavg();
    await session.close();
  }
  if (problems.length) results.problems = problems;

  const metrics = ["engineStepMs", "decodeTokPerS", "prefillMs", "cpuMsPerStep", "foreignCores"];
  const S = (results.summary = {});
  for (const v of VARIANTS) {
    const rs = results.rounds.filter((r) => r.variant === v);
    S[v] = Object.fromEntries(metrics.map((m) => [m, B.summary(rs.map((r) => r[m]))]));
  }
  // Per round, each variant's step time over plain's in the same round: the pairing cancels slow drifts.
  for (const v of VARIANTS.slice(1)) {
    const ratios = [];
    for (let i = 1; i <= opts.rounds; i++) {
      const a = results.rounds.find((r) => r.round === i && r.variant === v);
      const b = results.rounds.find((r) => r.round === i && r.variant === "plain");
      ratios.push(a.engineStepMs / b.engineStepMs);
    }
    S[v].stepRatioToPlain = B.summary(ratios);
  }
  const same = new Set(results.rounds.filter((r) => r.variant !== "steered").map((r) => r.text)).size === 1;
  S.plainEqualsReadout = same;
  const outPath = path.resolve(B.ROOT, opts.out);
  fs.mkdirSync(path.dirname(outPath), { recursive: true });
  fs.writeFileSync(outPath, JSON.stringify(results, null, 2) + "\n");

  const pct = (s) => `${((s.median - 1) * 100).toFixed(1)}% (${((s.min - 1) * 100).toFixed(1)} … ${((s.max - 1) * 100).toFixed(1)}%)`;
  const lines = [
    `Chromium ${env.chromium}, ${opts.rounds} rounds × ${opts.tokens} greedy tokens, heads vectors, ${results.setup.mode} α ${results.setup.alpha}; medians (min–max)`,
    "",
    "| | engine ms / step | decode tok/s (received) | prefill ms | CPU ms / step | step time vs plain, paired by round |",
    "|---|---|---|---|---|---|",
  ];
  for (const v of VARIANTS) {
    const s = S[v];
    lines.push(
      `| ${v} | ${B.withRange(s.engineStepMs, (x) => x.toFixed(2))} | ${B.withRange(s.decodeTokPerS)} | ${B.withRange(s.prefillMs, B.f0)} | ` +
        `${B.withRange(s.cpuMsPerStep)} | ${v === "plain" ? "–" : pct(s.stepRatioToPlain)} |`,
    );
  }
  lines.push("", `plain and readout continuations identical: ${same}; other processes used a median ${B.f1(S.plain.foreignCores.median)} cores`);
  const P = results.profile;
  lines.push("", "Where a decoding step's time goes (engine profile, src/profile.rs; ms per step and share of the engine's step):", "");
  lines.push("| phase | plain | steered |", "|---|---|---|");
  const cell = (v, i) => `${P[v].phases[i][1].toFixed(3)} (${((P[v].phases[i][1] / P[v].engineStepMs) * 100).toFixed(0)}%)`;
  P.plain.phases.forEach(([phase], i) => lines.push(`| ${phase} | ${cell("plain", i)} | ${cell("steered", i)} |`));
  const rest = (v) => {
    const ms = P[v].engineStepMs - P[v].phases.reduce((a, [, x]) => a + x, 0);
    return `${ms.toFixed(3)} (${((ms / P[v].engineStepMs) * 100).toFixed(0)}%)`;
  };
  lines.push(`| other (tensor glue, results to JavaScript) | ${rest("plain")} | ${rest("steered")} |`);
  lines.push(`| engine step | ${P.plain.engineStepMs.toFixed(3)} | ${P.steered.engineStepMs.toFixed(3)} |`);
  console.log(lines.join("\n"));
  log(`wrote ${opts.out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
