// Helpers shared by the end-to-end test files (tests/e2e/*.spec.mjs): the browser, the page's controls, and what a
// run leaves in the panes.
import assert from "node:assert/strict";
// The Chromium binary and the flags this machine needs, shared with the browser benchmarks.
import { CHROMIUM, CHROME_ARGS, startServer } from "../../scripts/bench-common.mjs";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, "../..");
export const ARTIFACTS = path.join(ROOT, "test-artifacts");
export const MODEL_FILE = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
export const MODEL_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
export const VECTOR_FILES = ["www/vectors/smollm2-135m.heads.safetensors", "www/vectors/smollm2-135m.attn_out.safetensors"];

export let chromium = null;
let playwrightMissing = null;
try {
  ({ chromium } = await import("playwright-core"));
} catch (err) {
  playwrightMissing = `playwright-core is not installed (run npm install): ${err.message}`;
}
export const browserMissing = playwrightMissing || (fs.existsSync(CHROMIUM) ? null : `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);

/** Why the real-engine tests cannot run here (a string), or false: they need the built engine, model and vectors. */
export const realMissing = (() => {
  if (process.env.DESTEIN_E2E_REAL === "0") return "DESTEIN_E2E_REAL=0";
  if (browserMissing) return browserMissing;
  const need = ["pkg/destein.js", "pkg/destein_bg.wasm", MODEL_FILE, VECTOR_FILES[0]];
  const missing = need.filter((p) => !fs.existsSync(path.join(ROOT, p)));
  if (!missing.length) return false;
  return (
    `missing ${missing.join(", ")} — build the engine with scripts/build-wasm.sh, fetch the model with ` +
    "scripts/fetch-model.sh and make the vectors to run the real-engine tests"
  );
})();

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** A fresh Chromium profile; `options` go to Playwright's launchPersistentContext (e.g. serviceWorkers: "block"). */
export async function launchBrowser(options = {}) {
  const userDataDir = await fsp.mkdtemp(path.join(os.tmpdir(), "destein-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROME_ARGS,
    viewport: { width: 1280, height: 1000 },
    ...options,
  });
  const problems = [];
  const foreign = [];
  const watch = (page) => {
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  };
  context.on("page", watch);
  for (const p of context.pages()) watch(p);
  context.on("request", (r) => {
    const u = new URL(r.url());
    if (!["data:", "blob:"].includes(u.protocol) && u.hostname !== "127.0.0.1") foreign.push(r.url());
  });
  return {
    context,
    problems,
    foreign,
    page: context.pages()[0] || (await context.newPage()),
    async close() {
      await context.close();
      await fsp.rm(userDataDir, { recursive: true, force: true });
    },
  };
}

export const sha256 = (buf) => crypto.createHash("sha256").update(buf).digest("hex");

export function safetensors(metadata) {
  const header = Buffer.from(JSON.stringify({ __metadata__: metadata }));
  const pad = (8 - (header.length % 8)) % 8;
  const h = Buffer.concat([header, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h]);
}

export function mockVectors(site, modelSha256) {
  return safetensors({
    format: "destein-mock",
    site,
    layers: "30",
    heads: "9",
    headDim: "64",
    pairs: "20",
    modelName: "SmolLM2-135M-Instruct (mock engine)",
    modelSha256,
    recommendedMode: "rotate",
    recommendedAlpha: "0.4",
    maxAlpha: site === "heads" ? "1.5" : "2",
  });
}

export async function waitReady(page, timeout = 60000) {
  await page.waitForSelector('body[data-phase="ready"]', { timeout });
  await page.waitForFunction(() => !document.querySelector("#start").disabled, null, { timeout });
}

export async function setAlpha(page, value) {
  await page.evaluate((v) => {
    const a = document.querySelector("#alpha");
    a.value = String(v);
    a.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}

/** Move the α slider to `value` and let go of it (a "change" event: the page may re-steer the whole text). */
export async function releaseSlider(page, value) {
  await page.evaluate((v) => {
    const a = document.querySelector("#alpha");
    a.value = String(v);
    a.dispatchEvent(new Event("input", { bubbles: true }));
    a.dispatchEvent(new Event("change", { bubbles: true }));
  }, value);
}

/**
 * Fill the run's fields. `direct` sets them from script instead of typing: typing leaves an undo step per field in
 * the browser's editing history, which would hide a leak of the page's own in a long-session test.
 */
export async function fillRun(page, { prompt, maxTokens = 16, seed = 7, temperature = 0.8, alpha, chat = false, direct = false }) {
  if (direct) {
    await page.evaluate((f) => {
      for (const [sel, v] of [["#prompt", f.prompt], ["#max-tokens", f.maxTokens], ["#seed", f.seed], ["#temperature", f.temperature]]) {
        const e = document.querySelector(sel);
        e.value = String(v);
        e.dispatchEvent(new Event("input", { bubbles: true }));
      }
      const format = document.querySelector(`input[name="format"][value="${f.chat ? "chat" : "continuation"}"]`);
      if (!format.checked) format.click();
    }, { prompt, maxTokens, seed, temperature, chat });
    if (alpha != null) await setAlpha(page, alpha);
    return;
  }
  await page.fill("#prompt", prompt);
  await page.fill("#max-tokens", String(maxTokens));
  await page.fill("#seed", String(seed));
  await page.fill("#temperature", String(temperature));
  await page.check(`input[name="format"][value="${chat ? "chat" : "continuation"}"]`);
  if (alpha != null) await setAlpha(page, alpha);
}

/** Per-step token ids of both panes, and the α each steered token was made with. */
export async function collect(page) {
  return page.evaluate(() => {
    const pane = (id) => {
      const steps = [];
      for (const s of document.querySelectorAll(`#${id} .tok`)) {
        const ids = (s.dataset.tokenIds || "").split(" ").filter(Boolean).map(Number);
        const first = Number(s.dataset.firstStep);
        ids.forEach((t, k) => (steps[first + k] = { id: t, alpha: Number(s.dataset.alpha) }));
      }
      return steps;
    };
    const markers = [...document.querySelectorAll("#out-steered .alpha-marker")].map((m) => ({
      alpha: Number(m.dataset.alpha),
      step: Number(m.dataset.step),
      text: m.textContent,
    }));
    return {
      raw: pane("out-raw"),
      steered: pane("out-steered"),
      rawText: document.querySelector("#out-raw").textContent,
      steeredText: document.querySelector("#out-steered").textContent,
      markers,
    };
  });
}

export async function run(page, opts, { timeout = 120000, midStream } = {}) {
  await fillRun(page, opts);
  const before = await page.evaluate(() => document.body.dataset.runId || "");
  if (midStream) {
    // Move the slider from inside the page the moment the steered pane has `afterTokens` tokens.
    await page.evaluate(({ afterTokens, alpha }) => {
      const out = document.querySelector("#out-steered");
      const obs = new MutationObserver(() => {
        if (out.querySelectorAll(".tok").length >= afterTokens) {
          obs.disconnect();
          const a = document.querySelector("#alpha");
          a.value = String(alpha);
          a.dispatchEvent(new Event("input", { bubbles: true }));
        }
      });
      obs.observe(out, { childList: true });
    }, midStream);
  }
  await page.click("#start");
  await page.waitForFunction((b) => document.body.dataset.runId !== b, before, { timeout: 10000 });
  await page.waitForSelector('body[data-run="done"]', { timeout });
  return collect(page);
}

export const ids = (steps) => steps.filter(Boolean).map((s) => s.id);

/** The tox-block read-out of both panes: {state, score (number or null), text}. */
export async function judgeReadouts(page) {
  return page.$$eval("[data-judge-slot]", (slots) =>
    slots.map((s) => ({
      state: s.dataset.state,
      score: s.dataset.score === undefined ? null : Number(s.dataset.score),
      text: s.querySelector("[data-judge-value]").textContent,
    })),
  );
}

/** Count, per pane, how often the judge's score changed while a run streamed (call before starting the run). */
export async function watchJudge(page) {
  await page.evaluate(() => {
    const seen = (globalThis.__judgeUpdates = [[], []]);
    document.querySelectorAll("[data-judge-slot]").forEach((slot, i) => {
      new MutationObserver(() => {
        if (slot.dataset.score !== undefined && document.body.dataset.run === "running") seen[i].push(Number(slot.dataset.score));
      }).observe(slot, { attributes: true, attributeFilter: ["data-score"] });
    });
  });
  return () => page.evaluate(() => globalThis.__judgeUpdates);
}

export function assertJudgeScores(readouts) {
  assert.equal(readouts.length, 2);
  for (const [i, r] of readouts.entries()) {
    assert.equal(r.state, "scored", `pane ${i} has a judge score`);
    assert.ok(Number.isFinite(r.score) && r.score >= 0 && r.score <= 1, `pane ${i}: score ${r.score} in [0, 1]`);
    assert.equal(r.text, r.score.toFixed(2));
  }
}

export async function alertText(page) {
  return page.evaluate(() => (document.querySelector("#alert").hidden ? "" : document.querySelector("#alert-text").textContent));
}

export async function cachedUrls(page) {
  return page.evaluate(async () => {
    const c = await caches.open("destein-models-v1");
    return (await c.keys()).map((r) => r.url);
  });
}

export async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}


// A plain static server, as a static host is: `python3 -m http.server` (no custom headers, no HTTP ranges, its own
// MIME types) on a free port, serving `dir`. `variant` changes one thing, to play a differently configured host:
// "wasm-octet-stream" serves .wasm as application/octet-stream, "cors" adds Access-Control-Allow-Origin: *.
const STATIC_VARIANT = `
import functools, http.server, sys
port, directory, variant = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = dict(http.server.SimpleHTTPRequestHandler.extensions_map)
    if variant == "wasm-octet-stream":
        extensions_map[".wasm"] = "application/octet-stream"
    def end_headers(self):
        if variant == "cors":
            self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=directory)).serve_forever()
`;

export async function startStaticServer(dir, variant = null) {
  const port = await freePort();
  const args = variant
    ? ["-c", STATIC_VARIANT, String(port), dir, variant]
    : ["-m", "http.server", "--bind", "127.0.0.1", String(port), "--directory", dir];
  const proc = spawn("python3", args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr.on("data", (d) => (err += d));
  const url = `http://127.0.0.1:${port}/`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`python3 ${args.slice(0, 2).join(" ")} exited with ${proc.exitCode}: ${err}`);
    try {
      await (await fetch(url, { method: "HEAD" })).arrayBuffer();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`python3's static server did not start on ${url}: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    close: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once("exit", resolve);
        proc.kill("SIGTERM");
      }),
  };
}
