// Helpers shared by the browser benchmarks (scripts/bench-browser.mjs, bench-wllama.mjs, bench-steering.mjs): options,
// the local server, Chromium, the fixed prompt, statistics, and what /proc says about CPU time and memory (Linux; elsewhere the CPU
// figures are null).
import { spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import crypto from "node:crypto";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Command-line options `--some-name value` over `defaults` ({someName: default}): numeric defaults take positive
 * whole numbers, the others strings. `-h`/`--help` prints the header comment of the script at `scriptUrl` and exits.
 */
export function parseOptions(argv, defaults, scriptUrl) {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === "-h" || k === "--help") {
      console.log(fs.readFileSync(fileURLToPath(scriptUrl), "utf8").split("\nimport ")[0]);
      process.exit(0);
    }
    const key = k.startsWith("--") ? k.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase()) : "";
    if (!Object.hasOwn(defaults, key)) throw new Error(`unknown argument ${k}`);
    const v = argv[++i];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (typeof defaults[key] === "number") {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${k} needs a positive whole number`);
      o[key] = n;
    } else o[key] = v;
  }
  return o;
}
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const CHROME_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// A fixed, neutral continuation prompt: 44 tokens for SmolLM2's tokenizer (no BOS is added for a plain continuation).
export const PROMPT =
  "The old lighthouse keeper had lived alone on the island for thirty years. Every evening he climbed the " +
  "spiral stairs, lit the great lamp and wrote a few lines in his logbook about the weather and the ships. One night";

export const sha256File = (p) => crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");

export const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
export const spread = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length ? { min: Math.min(...v), max: Math.max(...v), n: v.length } : null;
};
export const summary = (xs) => ({ median: median(xs), ...spread(xs), values: xs });

// Starts scripts/serve.mjs on a free port (`env` may override PORT or turn on the test-only fault routes) and
// resolves once it prints its URL. Used by the benchmarks and the end-to-end tests.
export async function startServer(env = {}) {
  const proc = spawn(process.execPath, [path.join(ROOT, "scripts/serve.mjs")], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", DESTEIN_TEST_FAULTS: "", DESTEIN_TEST_OVERLAY: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  proc.stderr.on("data", (d) => (err += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}${err}`)), 15000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${out}${err}`));
    });
  });
  return {
    url,
    pid: proc.pid,
    output: () => out + err,
    close: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once("exit", resolve);
        proc.kill("SIGTERM");
      }),
  };
}

/** Process ids of this Chromium (those whose command line names its profile directory). */
export function chromiumPids(userDataDir) {
  const pids = [];
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(userDataDir)) pids.push(Number(pid));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** CPU time (clock ticks) of a process, or 0 when it is gone. */
export function procTicks(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch {
    return 0;
  }
}

/** Busy clock ticks of the whole machine. */
export function machineBusyTicks() {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0);
}

/**
 * Measures how many cores processes other than ours (this script, the server, this Chromium) kept busy between
 * its creation and foreignCores(): the noise of a shared machine. Linux only; null elsewhere.
 */
export function cpuMeter(ours) {
  if (!fs.existsSync("/proc/stat")) return { foreignCores: () => null };
  const HZ = 100; // USER_HZ
  const pids = ours();
  const t0 = performance.now();
  const busy0 = machineBusyTicks();
  const own0 = pids.reduce((a, p) => a + procTicks(p), 0);
  return {
    foreignCores() {
      const secs = (performance.now() - t0) / 1000;
      const busy = machineBusyTicks() - busy0;
      const own = pids.reduce((a, p) => a + procTicks(p), 0) - own0;
      return secs > 0 ? Math.max(0, (busy - own) / HZ / secs) : null;
    },
  };
}

/** CPU ticks of every Web Worker thread of this Chromium ("DedicatedWorker" threads), by "pid/tid". */
export function workerThreadTicks(pids) {
  const out = new Map();
  for (const pid of pids) {
    let tids = [];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        if (!name.startsWith("DedicatedWorker")) continue;
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        out.set(`${pid}/${tid}`, Number(f[11]) + Number(f[12]));
      } catch {
        /* gone */
      }
    }
  }
  return out;
}

/**
 * CPU milliseconds that each busy worker thread spent between its creation and done(), sorted, largest first. Unlike
 * wall-clock time it does not grow when other processes take the cores: taken over the decoding steps (after the
 * first token) and divided by their number it gives the CPU cost of a step, and 1000 / that the speed a pane would
 * have with a core of its own. The clock ticks are 10 ms: over ~47 steps that is about ±2 %.
 */
export function workerCpu(pids) {
  const before = workerThreadTicks(pids);
  return {
    done() {
      const after = workerThreadTicks(pids);
      return [...after]
        .map(([k, v]) => ((v - (before.get(k) ?? v)) * 1000) / 100)
        .filter((ms) => ms >= 20)
        .sort((a, b) => b - a);
    },
  };
}

/**
 * CPU ms per decoding step: the worker threads' CPU time since a snapshot taken after every worker had its first
 * token, over the steps they made since (before[i] → after[i] for worker i; the workers' steps cost the same).
 */
export function cpuPerStep(cpuMs, before, after) {
  const steps = after.reduce((a, n, i) => a + n - before[i], 0);
  if (!cpuMs.length || steps <= 0 || cpuMs.length > after.length) return null;
  return cpuMs.reduce((a, b) => a + b, 0) / steps;
}

/** PSS (bytes) of every process of this Chromium (those whose command line names its profile directory). */
export function chromiumPss(userDataDir) {
  let total = 0;
  const procs = [];
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmd.includes(userDataDir)) continue;
      const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
      const kb = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] || 0);
      const type = /--type=([a-z-]+)/.exec(cmd)?.[1] || "browser";
      total += kb * 1024;
      procs.push({ pid: Number(pid), type, pssBytes: kb * 1024 });
    } catch {
      /* gone, or not readable */
    }
  }
  return { totalBytes: total, processes: procs.sort((a, b) => b.pssBytes - a.pssBytes) };
}

export const MB = (b) => (b == null ? "–" : `${(b / 1024 / 1024).toFixed(0)} MB`);
export const f1 = (x) => (x == null ? "–" : x.toFixed(1));
export const f0 = (x) => (x == null ? "–" : x.toFixed(0));
export const range = (s, f = f1) => (s && s.n > 1 ? `${f(s.min)}–${f(s.max)}` : "");
export const withRange = (s, f = f1) => (s?.median == null ? "–" : `${f(s.median)}${s.n > 1 ? ` (${range(s, f)})` : ""}`);

/** Chromium with a fresh profile in userDataDir (playwright-core's persistent context), as both benchmarks run it. */
/**
 * A benchmark's browser session: the local server (`serverEnv`: its environment, see startServer), a fresh Chromium
 * profile and its first page, with page errors collected in `problems`. `ours()` lists the processes that count as
 * the benchmark's own (for cpuMeter); `close()` ends it all and removes the profile.
 */
export async function openSession(label, serverEnv = {}) {
  const srv = await startServer(serverEnv);
  const userDataDir = await fsp.mkdtemp(path.join(os.tmpdir(), `destein-${label}-`));
  const context = await launchChromium(userDataDir);
  const problems = [];
  context.on("page", (p) => p.on("pageerror", (e) => problems.push(e.message)));
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => problems.push(e.message));
  page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  const chromium = context.browser()?.version() || (await page.evaluate(() => navigator.userAgent));
  return {
    srv,
    userDataDir,
    context,
    page,
    problems,
    chromium,
    ours: () => [process.pid, srv.pid, ...chromiumPids(userDataDir)],
    async close() {
      await context.close().catch(() => {});
      await fsp.rm(userDataDir, { recursive: true, force: true });
      await srv.close();
    },
  };
}

/**
 * Opens the workers-alone benchmark page (www/bench/) in `page`, after letting the demo download and cache the model
 * once (the bench page reads it from Cache Storage).
 */
export async function openWorkerBench(page, url) {
  await page.goto(`${url}?workers=1`);
  await page.waitForFunction(() => document.body.dataset.phase === "ready", null, { timeout: 300000 });
  await page.goto(`${url}www/bench/index.html`);
  await page.waitForSelector("body[data-ready]");
}

export async function launchChromium(userDataDir) {
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (err) {
    throw new Error(`playwright-core is not installed (npm install): ${err.message}`);
  }
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROME_ARGS,
    viewport: { width: 1280, height: 1000 },
  });
}
