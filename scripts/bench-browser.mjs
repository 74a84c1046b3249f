#!/usr/bin/env node
// Browser performance of the DeStein demo, measured in headless Chromium on the real engine, model and vectors.
//
//   node scripts/bench-browser.mjs [--rounds 5] [--page-rounds 3] [--tokens 48] [--seed 42]
//                                  [--out reports/browser-bench.json]
//
// Needs: npm install (playwright-core), Chromium at /usr/bin/chromium (or CHROMIUM_PATH), pkg/ (scripts/build-wasm.sh),
// models/SmolLM2-135M-Instruct.Q4_1.gguf, www/vectors/ and data/judges/. It starts scripts/serve.mjs on a free port,
// launches one Chromium with a fresh profile, and measures with a fixed prompt of ~40 tokens, greedy decoding and the
// vectors' recommended α:
//
//  1. The page as a visitor experiences it (index.html?debug=1, driven through its own controls; times from the
//     page's User Timing marks "destein:*" and its ?debug=1 runStats()), in both pane layouts (?workers=1: one
//     worker decoding both rows as a batch of two; ?workers=2: two workers, a row each), alternating:
//       cold  the model not in Cache Storage: download + SHA-256 + cache store + engine(s) + vectors, then
//             Start → first token (prefill + first step). The very first load is a fresh profile; later cold loads
//             delete the Cache Storage entry first.
//       warm  a reload: the model comes from Cache Storage (read + SHA-256), then the same.
//     and each pane's decoding speed while both stream (with the page's rendering and its tox-block judge).
//  2. The two layouts without the page (www/bench/index.html, www/bench/bench.js: the demo's worker, no rendering,
//     no judge), alternated for --rounds rounds, same prompt, seed and token count.
//  3. Memory: each worker's wasm memory and the PSS of all of this Chromium's processes, per layout.
//
// The machine may be shared: for every run it also records how many cores other processes kept busy, and the CPU
// time the worker threads spent per decoding step, which, unlike wall-clock speed, does not depend on the other
// processes (1000 / that = a pane's speed with a core of its own). Prints a Markdown table; writes every number
// (each round, and medians with min–max) as JSON to --out.
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  ROOT,
  parseOptions,
  CHROMIUM,
  PROMPT,
  sha256File,
  median,
  summary,
  openSession,
  chromiumPids,
  cpuMeter,
  workerCpu,
  cpuPerStep,
  chromiumPss,
  MB,
  f0,
  f1,
  withRange,
} from "./bench-common.mjs";

function parseArgs(argv) {
  const o = parseOptions(argv, { rounds: 5, pageRounds: 3, tokens: 48, out: "reports/browser-bench.json", seed: 42 }, import.meta.url);
  return o;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  for (const need of [CHROMIUM, "pkg/destein_bg.wasm", "models/SmolLM2-135M-Instruct.Q4_1.gguf", "www/vectors/smollm2-135m.heads.safetensors"]) {
    if (!fs.existsSync(path.isAbsolute(need) ? need : path.join(ROOT, need))) throw new Error(`missing ${need}`);
  }
  const env = {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memBytes: os.totalmem(),
    loadavgBefore: os.loadavg(),
    node: process.version,
    // Which engine build and vectors were measured (pkg/ and www/vectors/ change as the project moves on).
    wasmSha256: sha256File(path.join(ROOT, "pkg/destein_bg.wasm")),
    wasmMtime: fs.statSync(path.join(ROOT, "pkg/destein_bg.wasm")).mtime.toISOString(),
    vectorsSha256: sha256File(path.join(ROOT, "www/vectors/smollm2-135m.heads.safetensors")),
  };
  const log = (...a) => console.error("[bench]", ...a);

  const session = await openSession("bench");
  const { srv, userDataDir, context, page, problems, ours } = session;
  env.chromium = session.chromium;

  const results = {
    env,
    options: { ...opts, prompt: PROMPT, temperature: 0 },
    page: { batch: { cold: [], warm: [] }, pair: { cold: [], warm: [] } },
    memory: {},
  };
  try {
    // ---------------------------------------------------------------------------------------- 1. the page itself
    const waitReady = async () => {
      await page.waitForSelector('body[data-phase="ready"]', { timeout: 600000 });
      await page.waitForFunction(() => !document.querySelector("#start").disabled, null, { timeout: 600000 });
    };
    const pageRun = async () => {
      await page.fill("#prompt", PROMPT);
      await page.check('input[name="format"][value="continuation"]');
      await page.fill("#max-tokens", String(opts.tokens));
      await page.fill("#seed", String(opts.seed));
      await page.fill("#temperature", "0");
      const before = await page.evaluate(() => document.body.dataset.runId || "");
      const cpu = cpuMeter(ours);
      await page.click("#start");
      await page.waitForFunction((b) => document.body.dataset.runId !== b, before, { timeout: 10000 });
      // After the first token of both panes: the decoding steps' CPU time from here on.
      await page.waitForFunction(() => globalThis.destein.runStats().panes.every((p) => p.tokens > 0), null, {
        timeout: 600000,
        polling: 5,
      });
      const wcpu = workerCpu(chromiumPids(userDataDir));
      const stepsBefore = await page.evaluate(() => globalThis.destein.runStats().parts.map((p) => p.steps));
      await page.waitForSelector('body[data-run="done"]', { timeout: 600000 });
      const foreignCores = cpu.foreignCores();
      const workerCpuMs = wcpu.done();
      const stats = await page.evaluate(() => globalThis.destein.runStats());
      const after = stats.parts.map((p) => p.steps);
      return { ...stats, foreignCores, workerCpuMs, cpuMsPerStep: cpuPerStep(workerCpuMs, stepsBefore, after) };
    };
    const marks = () =>
      page.evaluate(() =>
        Object.fromEntries(
          performance
            .getEntriesByType("mark")
            .filter((m) => m.name.startsWith("destein:"))
            .map((m) => [m.name.slice(8), m.startTime]),
        ),
      );
    let freshProfile = true;
    const oneLoad = async (layout, kind, round) => {
      const workers = layout === "pair" ? 2 : 1;
      if (kind === "cold" && !freshProfile) await page.evaluate(() => caches.delete("destein-models-v1"));
      await page.goto(`${srv.url}?debug=1&workers=${workers}`);
      await waitReady();
      const m = await marks();
      const facts = await page.evaluate(() => ({
        layout: document.body.dataset.layout,
        judge: document.body.dataset.judge,
        source: document.body.dataset.modelSource,
        alpha: Number(document.querySelector("#alpha").value),
        mode: document.querySelector('input[name="mode"]:checked').value,
        loadDtype: globalThis.destein.state.modelInfo?.loadDtype ?? null,
        loadMs: globalThis.destein.state.modelInfo?.loadMs ?? null,
      }));
      if (facts.layout !== layout) throw new Error(`asked for ${layout}, the page runs ${facts.layout}`);
      // The judge loads right after the model (~0.1 s): wait for it, so that every run includes its cost.
      await page.waitForSelector("body[data-judge=ready], body[data-judge=failed]", { state: "attached" });
      facts.judge = await page.evaluate(() => document.body.dataset.judge);
      const stats = await pageRun();
      const r = {
        round: round + 1,
        freshProfile: kind === "cold" && freshProfile,
        source: facts.source,
        judge: facts.judge,
        alpha: facts.alpha,
        mode: facts.mode,
        loadDtype: facts.loadDtype,
        modelBytesMs: m["model-bytes"], // navigation → bytes fetched (or read), hashed and stored
        engineLoadedMs: m["engine-loaded"], // … → the Engine(s) built in the worker(s)
        engineLoadMs: facts.loadMs, // the engine's own time to build the model
        readyMs: m.ready, // … → vectors loaded, Start enabled
        startToFirstTokenMs: stats.ttftMs, // click on Start → first token on screen (prefill + first step)
        ttftMs: m.ready + stats.ttftMs, // a visitor who presses Start the moment the page is ready
        prefillMs: stats.prefillMs,
        promptTokens: stats.promptTokens,
        stepMsMean: stats.stepMsMean,
        foreignCores: stats.foreignCores,
        workerCpuMs: stats.workerCpuMs,
        // CPU ms per decoding step of a worker: a pane's cost with a core of its own.
        cpuMsPerStep: stats.cpuMsPerStep,
        panes: stats.panes.map(({ text, ...p }) => p),
      };
      if (kind === "cold") freshProfile = false;
      if (kind === "cold" && !/^downloaded/.test(r.source)) throw new Error(`cold load came ${r.source}`);
      if (kind === "warm" && r.source !== "from cache") throw new Error(`warm load came ${r.source}`);
      log(
        `page ${layout} ${kind} ${round + 1}: ready ${f0(r.readyMs)} ms, first token +${f0(r.startToFirstTokenMs)} ms, ` +
          `tok/s ${r.panes.map((p) => f1(p.decodeTokPerS)).join(" / ")}, other load ${f1(r.foreignCores)} cores`,
      );
      results.page[layout][kind].push(r);
    };
    for (let i = 0; i < opts.pageRounds; i++) {
      for (const layout of i % 2 === 0 ? ["pair", "batch"] : ["batch", "pair"]) {
        await oneLoad(layout, "cold", i);
        await oneLoad(layout, "warm", i);
        if (!results.memory[layout]) {
          results.memory[layout] = {
            chromium: chromiumPss(userDataDir),
            wasm: await page.evaluate(() => globalThis.destein.engineMemory()),
          };
        }
      }
    }

    // ------------------------------------------------------------------------------------ 2. worker layouts
    await page.goto(`${srv.url}www/bench/index.html`);
    await page.waitForSelector("body[data-ready]");
    // The page's own default for the weights in memory, so that both parts measure the same engine.
    const loadDtype = results.page.batch.warm[0]?.loadDtype || "as-is";
    const setup = await page.evaluate((d) => globalThis.bench.setup({ loadDtype: d }), loadDtype);
    log(`bench setup: model ${setup.modelSource}, load ${setup.loadMs.map(f0).join(" / ")} ms`);
    const params = {
      prompt: PROMPT,
      chat: false,
      maxNewTokens: opts.tokens,
      temperature: 0,
      topP: 1,
      topK: 0,
      seed: opts.seed,
      alpha: setup.vectors.recommendedAlpha,
      mode: setup.vectors.recommendedMode,
    };
    results.layouts = { params: { ...params, prompt: undefined }, setup, rounds: [] };
    // Warm-up (JIT tiering, first-touch memory), not counted.
    await page.evaluate((p) => globalThis.bench.batch({ ...p, maxNewTokens: 8 }), params);
    await page.evaluate((p) => globalThis.bench.pair({ ...p, maxNewTokens: 8 }), params);
    for (let i = 0; i < opts.rounds; i++) {
      for (const layout of i % 2 === 0 ? ["batch", "pair"] : ["pair", "batch"]) {
        const cpu = cpuMeter(ours);
        await page.evaluate(([l, p]) => globalThis.bench.begin(l, p), [layout, params]);
        const stepsBefore = await page.evaluate(() => globalThis.bench.firstToken());
        const wcpu = workerCpu(chromiumPids(userDataDir));
        const r = await page.evaluate(() => globalThis.bench.finish());
        r.foreignCores = cpu.foreignCores();
        r.workerCpuMs = wcpu.done();
        r.cpuMsPerStep = cpuPerStep(r.workerCpuMs, stepsBefore, r.stepsPerWorker);
        r.round = i + 1;
        for (const p of r.panes) delete p.text;
        results.layouts.rounds.push(r);
        log(
          `workers ${layout} ${i + 1}: tok/s ${r.panes.map((p) => f1(p.decodeTokPerS)).join(" / ")}, ` +
            `prefill ${r.panes.map((p) => f0(p.prefillMs)).join(" / ")} ms, other load ${f1(r.foreignCores)} cores`,
        );
      }
    }
    results.layouts.chromium = chromiumPss(userDataDir);
    results.layouts.wasmMemory = await page.evaluate(() => globalThis.bench.memory());
  } finally {
    env.loadavgAfter = os.loadavg();
    await session.close();
  }
  if (problems.length) results.problems = problems;

  // ------------------------------------------------------------------------------------------------ summary
  const pick = (rs, f) => summary(rs.map(f));
  const S = (results.summary = { page: {}, workers: {} });
  for (const layout of ["batch", "pair"]) {
    const P = results.page[layout];
    const all = [...P.cold, ...P.warm];
    const load = (rs) => ({
      modelBytesMs: pick(rs, (r) => r.modelBytesMs),
      readyMs: pick(rs, (r) => r.readyMs),
      startToFirstTokenMs: pick(rs, (r) => r.startToFirstTokenMs),
      ttftMs: pick(rs, (r) => r.ttftMs),
    });
    S.page[layout] = {
      cold: load(P.cold),
      warm: load(P.warm),
      rawTokPerS: pick(all, (r) => r.panes[0].decodeTokPerS),
      steeredTokPerS: pick(all, (r) => r.panes[1].decodeTokPerS),
      prefillMs: pick(all, (r) => r.prefillMs),
      engineLoadMs: pick(all, (r) => r.engineLoadMs),
      foreignCores: pick(all, (r) => r.foreignCores),
      cpuMsPerStep: pick(all, (r) => r.cpuMsPerStep),
      promptTokens: all[0]?.promptTokens,
      tokens: all[0]?.panes.map((p) => p.tokens),
      judge: all[0]?.judge,
    };
    const rs = results.layouts.rounds.filter((r) => r.layout === layout);
    S.workers[layout] = {
      rawTokPerS: pick(rs, (r) => r.panes[0].decodeTokPerS),
      steeredTokPerS: pick(rs, (r) => r.panes[1].decodeTokPerS),
      rawPrefillMs: pick(rs, (r) => r.panes[0].prefillMs),
      steeredPrefillMs: pick(rs, (r) => r.panes[1].prefillMs),
      ttftMs: pick(rs, (r) => Math.max(r.panes[0].ttftMs, r.panes[1].ttftMs)),
      wallMs: pick(rs, (r) => r.wallMs),
      foreignCores: pick(rs, (r) => r.foreignCores),
      cpuMsPerStep: pick(rs, (r) => r.cpuMsPerStep),
      tokens: rs[0]?.panes.map((p) => p.tokens),
    };
  }
  const ratio = (a, b) => (a != null && b ? a / b : null);
  const slower = (s) => Math.min(s.rawTokPerS.median, s.steeredTokPerS.median);
  for (const where of ["page", "workers"]) {
    const [b, p] = [S[where].batch, S[where].pair];
    S[where].ratio = {
      rawTokPerS: ratio(p.rawTokPerS.median, b.rawTokPerS.median),
      steeredTokPerS: ratio(p.steeredTokPerS.median, b.steeredTokPerS.median),
      slowerPaneTokPerS: ratio(slower(p), slower(b)),
      // Per-pane speed with a core per worker (CPU time, insensitive to the other processes): batch / pair cost.
      cpuBoundTokPerS: ratio(b.cpuMsPerStep.median, p.cpuMsPerStep.median),
      prefillMs:
        where === "page"
          ? ratio(p.prefillMs.median, b.prefillMs.median)
          : ratio(Math.max(p.rawPrefillMs.median, p.steeredPrefillMs.median), Math.max(b.rawPrefillMs.median, b.steeredPrefillMs.median)),
    };
  }
  const L = results.layouts.rounds;
  const bt = L.find((r) => r.layout === "batch");
  const pt = L.find((r) => r.layout === "pair");
  S.sameTokens = {
    raw: JSON.stringify(bt?.panes[0].tokenIds) === JSON.stringify(pt?.panes[0].tokenIds),
    steered: JSON.stringify(bt?.panes[1].tokenIds) === JSON.stringify(pt?.panes[1].tokenIds),
  };
  S.memory = {
    batch: { chromiumPssBytes: results.memory.batch?.chromium.totalBytes, wasmBytes: results.memory.batch?.wasm.map((m) => m.wasmBytes) },
    pair: { chromiumPssBytes: results.memory.pair?.chromium.totalBytes, wasmBytes: results.memory.pair?.wasm.map((m) => m.wasmBytes) },
  };

  const outPath = path.resolve(ROOT, opts.out);
  await fsp.mkdir(path.dirname(outPath), { recursive: true });
  await fsp.writeFile(outPath, JSON.stringify(results, null, 2) + "\n");

  // Markdown
  const pb = S.page.batch;
  const pp = S.page.pair;
  const wb = S.workers.batch;
  const wp = S.workers.pair;
  const x = (r) => (r == null ? "–" : `${r.toFixed(2)}×`);
  const lines = [
    `Chromium ${String(env.chromium).replace(/^.*Chrome\/(\S+).*$/, "$1")}, headless, ${env.cpus} CPU cores ` +
      `(${env.cpuModel}), SmolLM2-135M-Instruct Q4_1 (weights in memory: ${results.layouts.setup.info[0].loadDtype}), prompt of ` +
      `${pb.promptTokens} tokens, ${opts.tokens} new tokens, greedy, α ${+results.layouts.params.alpha.toFixed(3)} ` +
      `(${results.layouts.params.mode}). Medians (min–max) over ${opts.pageRounds} page rounds and ${opts.rounds} ` +
      `worker rounds, the layouts alternating. Other processes kept ${f1(median([...pb.foreignCores.values, ...pp.foreignCores.values, ...wb.foreignCores.values, ...wp.foreignCores.values]))} ` +
      `of the ${env.cpus} cores busy during the runs (median; load average ${env.loadavgBefore[0].toFixed(2)} before, ` +
      `${env.loadavgAfter[0].toFixed(2)} after).`,
    "",
    "| The page (index.html) | one worker, batch of 2 (`?workers=1`) | two workers in parallel (`?workers=2`) |",
    "|---|---|---|",
    `| cold cache: navigation → model bytes (download, SHA-256, cache store) | ${withRange(pb.cold.modelBytesMs, f0)} ms | ${withRange(pp.cold.modelBytesMs, f0)} ms |`,
    `| cold cache: navigation → ready (engines built, vectors loaded) | ${withRange(pb.cold.readyMs, f0)} ms | ${withRange(pp.cold.readyMs, f0)} ms |`,
    `| warm cache (reload): navigation → model bytes (Cache Storage, SHA-256) | ${withRange(pb.warm.modelBytesMs, f0)} ms | ${withRange(pp.warm.modelBytesMs, f0)} ms |`,
    `| warm cache: navigation → ready | ${withRange(pb.warm.readyMs, f0)} ms | ${withRange(pp.warm.readyMs, f0)} ms |`,
    `| Start → first token (prefill + first step), cold / warm | ${withRange(pb.cold.startToFirstTokenMs, f0)} / ${withRange(pb.warm.startToFirstTokenMs, f0)} ms | ${withRange(pp.cold.startToFirstTokenMs, f0)} / ${withRange(pp.warm.startToFirstTokenMs, f0)} ms |`,
    `| **time to first token, cold cache** | **${withRange(pb.cold.ttftMs, f0)} ms** | **${withRange(pp.cold.ttftMs, f0)} ms** |`,
    `| **time to first token, warm cache** | **${withRange(pb.warm.ttftMs, f0)} ms** | **${withRange(pp.warm.ttftMs, f0)} ms** |`,
    `| prefill (engine time of step 0) | ${withRange(pb.prefillMs, f0)} ms | ${withRange(pp.prefillMs, f0)} ms |`,
    `| **raw pane decode** (both panes streaming) | **${withRange(pb.rawTokPerS)} tok/s** | **${withRange(pp.rawTokPerS)} tok/s** |`,
    `| **steered pane decode** | **${withRange(pb.steeredTokPerS)} tok/s** | **${withRange(pp.steeredTokPerS)} tok/s** |`,
    `| CPU ms per decoding step of a worker (a core each: ${f1(1000 / pb.cpuMsPerStep.median)} vs ${f1(1000 / pp.cpuMsPerStep.median)} tok/s per pane) | ${withRange(pb.cpuMsPerStep)} | ${withRange(pp.cpuMsPerStep)} |`,
    `| memory: PSS of all Chromium processes | ${MB(S.memory.batch.chromiumPssBytes)} | ${MB(S.memory.pair.chromiumPssBytes)} |`,
    `| memory: wasm memory per worker | ${(S.memory.batch.wasmBytes || []).map(MB).join(" + ")} | ${(S.memory.pair.wasmBytes || []).map(MB).join(" + ")} |`,
    "",
    `Page ratio two workers / one: raw ${x(S.page.ratio.rawTokPerS)}, steered ${x(S.page.ratio.steeredTokPerS)} tok/s, ` +
      `prefill ${x(S.page.ratio.prefillMs)} (time), per-pane speed from CPU time ${x(S.page.ratio.cpuBoundTokPerS)}. The page's numbers include its rendering and the tox-block judge ` +
      `(judge ${pb.judge}).`,
    "",
    `| Workers alone (www/bench/, no rendering, no judge) | raw tok/s | steered tok/s | prefill ms (raw / steered) | first token ms | whole run ms | CPU ms per step |`,
    "|---|---|---|---|---|---|---|",
    `| one worker, batch of 2 | ${withRange(wb.rawTokPerS)} | ${withRange(wb.steeredTokPerS)} | ${withRange(wb.rawPrefillMs, f0)} / ${withRange(wb.steeredPrefillMs, f0)} | ${withRange(wb.ttftMs, f0)} | ${withRange(wb.wallMs, f0)} | ${withRange(wb.cpuMsPerStep)} |`,
    `| two workers, one row each | ${withRange(wp.rawTokPerS)} | ${withRange(wp.steeredTokPerS)} | ${withRange(wp.rawPrefillMs, f0)} / ${withRange(wp.steeredPrefillMs, f0)} | ${withRange(wp.ttftMs, f0)} | ${withRange(wp.wallMs, f0)} | ${withRange(wp.cpuMsPerStep)} |`,
    `| ratio two / one | ${x(S.workers.ratio.rawTokPerS)} | ${x(S.workers.ratio.steeredTokPerS)} | ${x(S.workers.ratio.prefillMs)} | | | speed ${x(S.workers.ratio.cpuBoundTokPerS)} |`,
    "",
    `Same tokens in both layouts: raw ${S.sameTokens.raw}, steered ${S.sameTokens.steered}.`,
  ];
  if (problems.length) lines.push("", `Page problems: ${problems.join("; ")}`);
  console.log(lines.join("\n"));
  console.error(`[bench] wrote ${path.relative(process.cwd(), outPath)}`);
}

main().catch((err) => {
  console.error(`bench-browser: ${err.stack || err}`);
  process.exit(1);
});
