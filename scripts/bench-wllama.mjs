#!/usr/bin/env node
// Our engine vs. llama.cpp in the browser (wllama), measured in one headless Chromium session.
//
//   node scripts/bench-wllama.mjs [--rounds 7] [--tokens 64] [--threads 1] [--out reports/wllama-bench.json]
//
// --threads N (N > 1): both engines with N threads: ours its threaded build (pkg/threads/), wllama its pthread pool
// (n_threads N). scripts/serve.mjs makes the page cross-origin isolated (COOP + COEP), which both need.
//
// Needs: npm install (playwright-core and the @wllama/wllama dev dependency), Chromium at /usr/bin/chromium (or
// CHROMIUM_PATH), pkg/ (scripts/build-wasm.sh) and models/SmolLM2-135M-Instruct.Q4_1.gguf. It starts
// scripts/serve.mjs on a free port (which serves node_modules/@wllama/wllama/esm/ for this page), launches one Chromium
// with a fresh profile, opens www/bench/wllama.html and loads the same GGUF bytes into
//   ours    the demo's worker (www/worker.js), one row (`rows: "raw"`), no steering vectors, one thread;
//   wllama  @wllama/wllama (llama.cpp compiled to WebAssembly) with n_threads 1, CPU only. The page is not
//           cross-origin isolated (no COEP header), so wllama runs without its pthread pool, on one thread.
// Then, after an uncounted warm-up generation in each, it alternates --rounds rounds of each engine (the order
// swapping every round), same prompt (scripts/bench-common.mjs PROMPT, a plain continuation), greedy, --tokens new
// tokens:
//   prefill ms     the engine's own time for the prompt and the first token (ours: its first step; wllama:
//                  llama.cpp's prompt_ms, with cache_prompt off so that every round reads the whole prompt)
//   decode tok/s   tokens after the first over the time from the first to the last, as the page receives them
//                  (and the same from each engine's own timings: ours, the mean time of its steps after the first;
//                  wllama, llama.cpp's predicted_ms, which covers the steps after the first). wllama hands a token
//                  to the page about one step after llama.cpp sampled it (its first token arrives one step after
//                  prompt_ms), which flatters its received rate by about 1/(tokens - 2)
//   CPU ms / step  the engine worker thread's CPU time per decoding step after the first token, which unlike
//                  wall-clock speed does not depend on other processes (1000 / that = tok/s with a core of its own)
// Model load times (bytes in page memory → ready to generate) are measured once, separately. The machine may be
// shared: it records how many cores other processes kept busy and samples the load average during the run.
// Prints a Markdown table (medians, min–max, ratios ours / wllama) and whether the two greedy continuations are the
// same text; writes every round as JSON to --out.
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
  f0,
  f1,
  withRange,
} from "./bench-common.mjs";

const MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
const WLLAMA_PKG = "node_modules/@wllama/wllama";
const ENGINES = ["ours", "wllama"];

function parseArgs(argv) {
  const o = parseOptions(argv, { rounds: 7, tokens: 64, warmupTokens: 8, threads: 1, out: "reports/wllama-bench.json" }, import.meta.url);
  if (o.tokens < 2) throw new Error("--tokens must be at least 2 (decode speed needs a token after the first)");
  return o;
}

/** Command lines of running `destein eval` processes (the shared machine's long job), for the record. */
function evalJobs() {
  const jobs = [];
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (/destein$/.test(argv[0] || "") && argv[1] === "eval") jobs.push(argv.join(" ").trim());
    } catch {
      /* gone */
    }
  }
  return jobs;
}

/** Where two texts first differ (in characters), or null when they are equal. */
function firstDifference(a, b) {
  if (a === b) return null;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const wllamaEsm = `${WLLAMA_PKG}/esm/index.js`;
  for (const need of [CHROMIUM, "pkg/destein_bg.wasm", MODEL, wllamaEsm, `${WLLAMA_PKG}/esm/wasm/wllama.wasm`]) {
    if (!fs.existsSync(path.isAbsolute(need) ? need : path.join(ROOT, need))) {
      throw new Error(`missing ${need}${need.startsWith("node_modules") ? " (npm install)" : ""}`);
    }
  }
  const readJson = (p) => JSON.parse(fs.readFileSync(path.join(ROOT, p), "utf8"));
  const env = {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memBytes: os.totalmem(),
    loadavgBefore: os.loadavg(),
    evalJobsBefore: evalJobs(),
    node: process.version,
    playwrightCore: readJson("node_modules/playwright-core/package.json").version,
    wllama: readJson(`${WLLAMA_PKG}/package.json`).version,
    wasmSha256: sha256File(path.join(ROOT, "pkg/destein_bg.wasm")),
    wasmMtime: fs.statSync(path.join(ROOT, "pkg/destein_bg.wasm")).mtime.toISOString(),
    wllamaWasmSha256: sha256File(path.join(ROOT, `${WLLAMA_PKG}/esm/wasm/wllama.wasm`)),
  };
  const log = (...a) => console.error("[bench-wllama]", ...a);

  // The load average, every 5 s while the browser runs.
  const loadSamples = [];
  const sampler = setInterval(() => loadSamples.push(os.loadavg()[0]), 5000);

  const session = await openSession("wllama-bench");
  const { srv, userDataDir, context, page, problems, ours } = session;
  env.chromium = session.chromium;

  const params = { prompt: PROMPT, maxNewTokens: opts.tokens };
  const results = { env, options: { ...opts, prompt: PROMPT, greedy: true }, setup: null, warmup: {}, rounds: [] };
  try {
    await page.goto(`${srv.url}www/bench/wllama.html`);
    await page.waitForSelector("body[data-ready]", { state: "attached" });
    const setup = await page.evaluate((t) => globalThis.wbench.setup({ threads: t }), opts.threads);
    results.setup = setup;
    if (setup.wllama.multithread !== opts.threads > 1 || setup.wllama.threads !== opts.threads || setup.ours.threads !== opts.threads) {
      throw new Error(
        `asked for ${opts.threads} threads: wllama runs ${setup.wllama.threads} (multithread ${setup.wllama.multithread}), ` +
          `ours ${setup.ours.threads}${setup.ours.threadsNote ? ` (${setup.ours.threadsNote})` : ""}`,
      );
    }
    log(
      `model ${setup.modelSource}; load: ours ${f0(setup.ours.loadMs)} ms, wllama ${f0(setup.wllama.loadMs)} ms ` +
        `(llama.cpp ${setup.wllama.libllamaVersion}, ${setup.wllama.threads} thread(s), cross-origin isolated: ` +
        `${setup.crossOriginIsolated})`,
    );

    // Warm-up (JIT tiering, first-touch memory), not counted.
    for (const engine of ENGINES) {
      const w = await page.evaluate(([e, p]) => globalThis.wbench.run(e, p), [engine, { ...params, maxNewTokens: opts.warmupTokens }]);
      results.warmup[engine] = { prefillMs: w.prefillMs, tokens: w.tokens, promptTokens: w.promptTokens };
    }

    for (let i = 0; i < opts.rounds; i++) {
      for (const engine of i % 2 === 0 ? ENGINES : [...ENGINES].reverse()) {
        const cpu = cpuMeter(ours);
        await page.evaluate(([e, p]) => globalThis.wbench.begin(e, p), [engine, params]);
        const before = await page.evaluate(() => globalThis.wbench.firstToken());
        const wcpu = workerCpu(chromiumPids(userDataDir));
        const r = await page.evaluate(() => globalThis.wbench.finish());
        r.round = i + 1;
        r.foreignCores = cpu.foreignCores();
        r.workerCpuMs = wcpu.done(); // every busy worker thread, largest first: the engine's is the first
        r.cpuMsPerStep = cpuPerStep(r.workerCpuMs.slice(0, 1), [before], [r.tokens]);
        r.loadavg1 = os.loadavg()[0];
        results.rounds.push(r);
        log(
          `${engine.padEnd(6)} ${i + 1}: prefill ${f0(r.prefillMs)} ms (${r.promptTokens} tokens), ` +
            `decode ${f1(r.decodeTokPerS)} tok/s (${r.tokens} tokens), CPU ${f1(r.cpuMsPerStep)} ms/step, ` +
            `other load ${f1(r.foreignCores)} cores`,
        );
      }
    }
  } finally {
    clearInterval(sampler);
    env.loadavgAfter = os.loadavg();
    env.evalJobsAfter = evalJobs();
    await session.close();
  }
  env.loadavg1During = summary(loadSamples);
  if (problems.length) results.problems = problems;

  // ------------------------------------------------------------------------------------------------ summary
  const S = (results.summary = {});
  const metrics = ["prefillMs", "ttftMs", "decodeTokPerS", "engineDecodeTokPerS", "cpuMsPerStep", "wallMs", "foreignCores"];
  for (const engine of ENGINES) {
    const rs = results.rounds.filter((r) => r.engine === engine);
    S[engine] = Object.fromEntries(metrics.map((m) => [m, summary(rs.map((r) => r[m]))]));
    S[engine].promptTokens = [...new Set(rs.map((r) => r.promptTokens))];
    S[engine].tokens = [...new Set(rs.map((r) => r.tokens))];
    S[engine].stopReasons = [...new Set(rs.map((r) => r.stopReason))];
    S[engine].sameTextEveryRound = rs.every((r) => r.text === rs[0].text);
    S[engine].loadMs = results.setup[engine].loadMs;
  }
  const ratio = (a, b) => (a != null && b ? a / b : null);
  S.ratio = Object.fromEntries(metrics.filter((m) => m !== "foreignCores").map((m) => [m, ratio(S.ours[m].median, S.wllama[m].median)]));
  S.ratio.loadMs = ratio(S.ours.loadMs, S.wllama.loadMs);
  const oursText = results.rounds.find((r) => r.engine === "ours")?.text ?? "";
  const wllamaText = results.rounds.find((r) => r.engine === "wllama")?.text ?? "";
  const diffAt = firstDifference(oursText, wllamaText);
  S.continuations = {
    sameText: diffAt === null,
    firstDifferenceAtChar: diffAt,
    ours: oursText,
    wllama: wllamaText,
  };

  const outPath = path.resolve(ROOT, opts.out);
  await fsp.mkdir(path.dirname(outPath), { recursive: true });
  await fsp.writeFile(outPath, JSON.stringify(results, null, 2) + "\n");

  // Markdown
  const o = S.ours;
  const w = S.wllama;
  const x = (r) => (r == null ? "–" : `${r.toFixed(2)}×`);
  const su = results.setup;
  const ld = env.loadavg1During;
  const lines = [
    `Chromium ${String(env.chromium).replace(/^.*Chrome\/(\S+).*$/, "$1")}, headless, ${env.cpus} CPU cores ` +
      `(${env.cpuModel}); SmolLM2-135M-Instruct Q4_1 (the same ${(su.modelBytes / 1e6).toFixed(1)} MB GGUF from the local ` +
      `server), a plain-continuation prompt of ${o.promptTokens.join("/")} tokens (ours) / ${w.promptTokens.join("/")} ` +
      `tokens (wllama), ${opts.tokens} new tokens, greedy. Ours: ${su.ours.threads > 1 ? `pkg/threads/ (wasm32, simd128, relaxed SIMD, atomics), ${su.ours.threads} threads` : su.ours.simd === "relaxed-simd" ? "pkg/relaxed/ (wasm32, simd128, relaxed SIMD)" : "pkg/ (wasm32, simd128)"}, weights as stored ` +
      `(${su.ours.loadDtype}), one Web Worker${su.ours.threads > 1 ? " plus its helper threads" : ""}, one row. wllama ${env.wllama} (llama.cpp ${su.wllama.libllamaVersion}, ` +
      `wasm64 + JSPI), n_threads ${su.wllama.threads}, CPU only, in its own Web Worker; the page is ` +
      `${su.crossOriginIsolated ? "" : "not "}cross-origin isolated, and wllama runs ${su.wllama.multithread ? "multi" : "single"}-threaded. ` +
      `Medians (min–max) over ${opts.rounds} rounds per engine, alternating, after one uncounted warm-up each. ` +
      `Other processes kept ${f1(median([...o.foreignCores.values, ...w.foreignCores.values]))} of the ${env.cpus} cores busy ` +
      `(median); load average (1 min) ${env.loadavgBefore[0].toFixed(2)} before, ${ld.median == null ? "–" : `${ld.median.toFixed(2)} (${ld.min.toFixed(2)}–${ld.max.toFixed(2)})`} during, ` +
      `${env.loadavgAfter[0].toFixed(2)} after${env.evalJobsBefore.length || env.evalJobsAfter.length ? "; a `destein eval` job was running" : "; no `destein eval` job was running"}.`,
    "",
    "| | ours (DeStein engine) | wllama (llama.cpp) | ours / wllama |",
    "|---|---|---|---|",
    `| **prefill** (prompt + first token, engine time) | **${withRange(o.prefillMs, f0)} ms** | **${withRange(w.prefillMs, f0)} ms** | ${x(S.ratio.prefillMs)} time |`,
    `| request → first token received | ${withRange(o.ttftMs, f0)} ms | ${withRange(w.ttftMs, f0)} ms | ${x(S.ratio.ttftMs)} time |`,
    `| **decode** (tokens after the first, as the page receives them) | **${withRange(o.decodeTokPerS)} tok/s** | **${withRange(w.decodeTokPerS)} tok/s** | **${x(S.ratio.decodeTokPerS)} speed** |`,
    `| decode from the engine's own timings | ${withRange(o.engineDecodeTokPerS)} tok/s | ${withRange(w.engineDecodeTokPerS)} tok/s | ${x(S.ratio.engineDecodeTokPerS)} speed |`,
    `| CPU ms per decoding step (worker thread) | ${withRange(o.cpuMsPerStep)} | ${withRange(w.cpuMsPerStep)} | ${x(S.ratio.cpuMsPerStep)} cost |`,
    `| whole generation (${opts.tokens} tokens) | ${withRange(o.wallMs, f0)} ms | ${withRange(w.wallMs, f0)} ms | ${x(S.ratio.wallMs)} time |`,
    `| model load (bytes in memory → ready; once) | ${f0(o.loadMs)} ms | ${f0(w.loadMs)} ms (incl. warm-up decode) | ${x(S.ratio.loadMs)} time |`,
    "",
    `Tokens generated: ours ${o.tokens.join("/")} (${o.stopReasons.join("/")}), wllama ${w.tokens.join("/")} ` +
      `(${w.stopReasons.join("/")}). Same text in every round: ours ${o.sameTextEveryRound}, wllama ${w.sameTextEveryRound}.`,
    S.continuations.sameText
      ? "The two greedy continuations are the same text."
      : `The two greedy continuations differ from character ${diffAt} on (both greedy; the engines' arithmetic differs, ` +
        `e.g. llama.cpp keeps the KV cache in f16, so a near-tie can go either way):\n` +
        `- ours:   ${JSON.stringify(oursText)}\n- wllama: ${JSON.stringify(wllamaText)}`,
  ];
  if (problems.length) lines.push("", `Page problems: ${problems.join("; ")}`);
  console.log(lines.join("\n"));
  console.error(`[bench-wllama] wrote ${path.relative(process.cwd(), outPath)}`);
}

main().catch((err) => {
  console.error(`bench-wllama: ${err.stack || err}`);
  process.exit(1);
});
