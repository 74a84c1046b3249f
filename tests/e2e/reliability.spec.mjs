// Reliability of the page with the real engine and model, in real Chromium (issue 16): a long session, and the faults
// a user can meet — the engine dying mid-generation, a corrupted cached model, the network breaking mid-download.
// The same faults against the stand-in engine are in demo.spec.mjs.
//
//   DESTEIN_E2E_REQUIRE_REAL=1 node --test --test-concurrency=1 tests/e2e/reliability.spec.mjs
//
// The long-session numbers go to test-artifacts/long-session.json.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { startServer } from "../../scripts/bench-common.mjs";
import {
  launchBrowser,
  waitReady,
  fillRun,
  run,
  collect,
  alertText,
  cachedUrls,
  ids,
  releaseSlider,
  realMissing,
  ARTIFACTS,
  MODEL_FILE,
  MODEL_SHA,
  ROOT,
} from "./helpers.mjs";

if (realMissing) console.log(`# reliability tests skipped: ${realMissing}`);
if (realMissing && process.env.DESTEIN_E2E_REQUIRE_REAL === "1") {
  test("the reliability suite can run", () => assert.fail(`the real-engine e2e tests cannot run: ${realMissing}`));
}

const PROMPTS = [
  "The best way to learn a new language is",
  "You are such a",
  "My neighbour knocked on the door this morning and",
  "Here is what I think about people who cut in line:",
  "The weather report for tomorrow says",
];
const MODES = ["rotate", "headwise", "add"];
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN;
};

/** Tokens per pane so far (a span may hold several token ids). */
const paneTokens = (page) =>
  page.evaluate(() =>
    ["out-raw", "out-steered"].map((id) =>
      [...document.querySelectorAll(`#${id} .tok`)].reduce((n, s) => n + (s.dataset.tokenIds || "").split(" ").filter(Boolean).length, 0),
    ),
  );

/** Click Stop from inside the page the moment the steered pane has `afterTokens` tokens; remember both panes' counts. */
const stopAfter = (page, afterTokens) =>
  page.evaluate((after) => {
    globalThis.__stopAt = null;
    const count = (id) =>
      [...document.querySelectorAll(`#${id} .tok`)].reduce((n, s) => n + (s.dataset.tokenIds || "").split(" ").filter(Boolean).length, 0);
    const out = document.querySelector("#out-steered");
    const obs = new MutationObserver(() => {
      if (count("out-steered") >= after && !globalThis.__stopAt) {
        obs.disconnect();
        globalThis.__stopAt = [count("out-raw"), count("out-steered")];
        document.querySelector("#stop").click();
      }
    });
    obs.observe(out, { childList: true, subtree: true });
  }, afterTokens);

describe("reliability with the real engine", { skip: realMissing || false }, () => {
  let srv;
  let b;
  const T = 900000;

  before(async () => {
    srv = await startServer({ DESTEIN_TEST_FAULTS: "1" });
    b = await launchBrowser();
  });
  after(async () => {
    await b?.close();
    await srv?.close();
  });

  test("100 generations back to back: memory stops growing after warm-up, throughput holds, Stop stops within one token", { timeout: T }, async () => {
    const { page } = b;
    await page.goto(`${srv.url}?debug=1`);
    await waitReady(page, 300000);
    // The page takes its request limits from the engine (src/generation.rs).
    assert.equal(await page.getAttribute("#max-tokens", "max"), "512");
    assert.equal(await page.evaluate(() => document.querySelector("#prompt").maxLength), 4000);
    const cdp = await b.context.newCDPSession(page);
    const maxAlpha = Number(await page.getAttribute("#alpha", "max"));
    const alphas = [0, 0.1, 0.25, 0.5, maxAlpha];
    const measure = async (generations) => {
      await cdp.send("HeapProfiler.collectGarbage");
      const heap = await cdp.send("Runtime.getHeapUsage");
      const engines = await page.evaluate(() => globalThis.destein.engineMemory());
      return { generations, jsHeapBytes: heap.usedSize, wasmBytes: engines.map((e) => e.wasmBytes) };
    };
    const WARM_UP = 20;
    const memory = [];
    const rates = [];
    const stops = [];
    for (let i = 0; i < 100; i++) {
      await page.check(`input[name="mode"][value="${MODES[i % MODES.length]}"]`);
      const opts = { prompt: PROMPTS[i % PROMPTS.length], alpha: alphas[i % alphas.length], maxTokens: 12, seed: i, direct: true };
      const stopping = i % 4 === 3;
      if (stopping) await stopAfter(page, 3);
      const r = await run(page, opts, { timeout: 120000 });
      const stats = await page.evaluate(() => globalThis.destein.runStats());
      if (stopping) {
        const at = await page.evaluate(() => globalThis.__stopAt);
        const final = [ids(r.raw).length, ids(r.steered).length];
        assert.ok(at, `generation ${i}: Stop was clicked`);
        stops.push({ generation: i, atClick: at, final, reason: stats.reason });
        for (const p of [0, 1]) assert.ok(final[p] <= at[p] + 1, `generation ${i}, pane ${p}: ${at[p]} tokens at Stop, ${final[p]} in the end`);
        assert.equal(stats.reason, "stopped", `generation ${i} ended as stopped`);
      } else {
        assert.equal(ids(r.raw).length, 12, `generation ${i}: the raw pane has all its tokens`);
        rates.push({ generation: i, tokPerS: median(stats.panes.map((p) => p.decodeTokPerS)) });
      }
      if (i + 1 === WARM_UP || (i + 1) % 20 === 0) memory.push(await measure(i + 1));
    }
    await cdp.detach();
    const early = median(rates.filter((x) => x.generation >= WARM_UP && x.generation < 40).map((x) => x.tokPerS));
    const late = median(rates.filter((x) => x.generation >= 80).map((x) => x.tokPerS));
    const warm = memory[0];
    const last = memory.at(-1);
    const report = { layout: await page.getAttribute("body", "data-layout"), warmUpGenerations: WARM_UP, memory, tokPerS: { generations20to39: early, generations80to99: late, ratio: late / early }, stops, rates };
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(path.join(ARTIFACTS, "long-session.json"), JSON.stringify(report, null, 2));
    console.log(`# long session: memory ${JSON.stringify(memory)}; tok/s ${early.toFixed(1)} → ${late.toFixed(1)}`);
    // Wasm memory only grows (its high-water mark): after warm-up it must not grow at all.
    assert.deepEqual(last.wasmBytes, warm.wasmBytes, "wasm memory grew after warm-up");
    // The JS heap after a forced GC. Measured: about 100 kB over these 80 generations, which heap snapshots put in
    // compiled code, style caches and the browser's own paint-timing entries — no object of the page's. Keeping one
    // run's panes, tokens or stats (tens of kB each) would pass 250 kB within a few generations.
    assert.ok(last.jsHeapBytes - warm.jsHeapBytes < 250e3, `JS heap ${warm.jsHeapBytes} → ${last.jsHeapBytes} bytes`);
    // Not a speed test (the benchmarks are): a leak that slows each run down would halve this.
    assert.ok(late > 0.6 * early, `decode ${early.toFixed(1)} → ${late.toFixed(1)} tok/s`);
    assert.deepEqual(b.problems, []);
  });

  test("a stopped run can be re-steered: the steered pane is rewritten as a run at the new α would be", { timeout: T }, async () => {
    const { page } = b;
    await page.goto(`${srv.url}?debug=1`);
    await waitReady(page, 300000);
    await page.check('input[name="alpha-applies"][value="resteer"]');
    const max = Number(await page.getAttribute("#alpha", "max"));
    const opts = { prompt: "My neighbour knocked on the door this morning and", maxTokens: 24, seed: 5 };
    const atMax = await run(page, { ...opts, alpha: max }, { timeout: 120000 });
    await stopAfter(page, 4);
    const stopped = await run(page, { ...opts, alpha: 0 }, { timeout: 120000 });
    assert.ok(ids(stopped.steered).length < 24, "the run was stopped");
    await releaseSlider(page, max);
    await page.waitForFunction(() => /Re-steered \d+ steps/.test(document.querySelector("#status").textContent), null, { timeout: 60000 });
    await page.waitForSelector('body[data-run="done"]', { timeout: 60000 });
    const re = await collect(page);
    assert.ok(ids(re.steered).length >= 4, `the re-steered pane shows its tokens (${ids(re.steered).length})`);
    assert.deepEqual(ids(re.steered), ids(atMax.steered).slice(0, ids(re.steered).length));
    assert.deepEqual(ids(re.raw), ids(stopped.raw), "the raw pane is kept");
    assert.deepEqual(b.problems, []);
  });

  test("the engine dies mid-generation: the page restarts it, reloads the model from the cache and says so; nothing else is lost", { timeout: T }, async () => {
    const { page } = b;
    await page.goto(`${srv.url}?debug=1`);
    await waitReady(page, 300000);
    await page.check('input[name="mode"][value="headwise"]');
    const opts = { prompt: "My neighbour knocked on the door this morning and", alpha: 0.5, maxTokens: 24, seed: 3 };
    const before = await run(page, opts, { timeout: 120000 });
    // The same run again, and the worker crashes (an uncaught error in it) once the steered pane has 4 tokens.
    await fillRun(page, opts);
    await page.evaluate(() => {
      const out = document.querySelector("#out-steered");
      const obs = new MutationObserver(() => {
        if (out.querySelectorAll(".tok").length >= 4) {
          obs.disconnect();
          globalThis.destein.crashWorker();
        }
      });
      obs.observe(out, { childList: true, subtree: true });
    });
    await page.click("#start");
    await page.waitForFunction(() => /It was restarted and the model reloaded/.test(document.querySelector("#alert-text").textContent), null, { timeout: 120000 });
    await waitReady(page, 120000);
    assert.match(await alertText(page), /The engine stopped unexpectedly \(.+\)\. It was restarted and the model reloaded\./);
    assert.equal(await page.getAttribute("body", "data-model-source"), "from cache");
    // What streamed before the crash is still shown, and agrees with the complete run.
    const cut = await collect(page);
    assert.ok(ids(cut.steered).length >= 4, "the tokens streamed before the crash are kept");
    assert.deepEqual(ids(cut.steered), ids(before.steered).slice(0, ids(cut.steered).length));
    // The settings survive, and the restarted engine writes the same tokens as before the crash.
    assert.equal(await page.isChecked('input[name="mode"][value="headwise"]'), true);
    assert.equal(await page.inputValue("#alpha"), "0.5");
    const again = await run(page, opts, { timeout: 120000 });
    assert.deepEqual(ids(again.raw), ids(before.raw));
    assert.deepEqual(ids(again.steered), ids(before.steered));
    b.problems.length = 0; // the crash logs an error on purpose
  });

  test("a cached model that fails its hash is evicted, downloaded again and verified", { timeout: T }, async () => {
    const b2 = await launchBrowser();
    try {
      const { page } = b2;
      await page.goto(srv.url);
      await waitReady(page, 300000);
      assert.equal(await page.getAttribute("body", "data-model-source"), "downloaded, cached");
      // Flip one byte of the cached copy, keeping the hash it was stored with (as a disk error would).
      const flipped = await page.evaluate(async () => {
        for (const name of await caches.keys()) {
          const c = await caches.open(name);
          for (const req of await c.keys()) {
            if (!/\.gguf$/.test(new URL(req.url).pathname)) continue;
            const resp = await c.match(req);
            const bytes = new Uint8Array(await resp.arrayBuffer());
            bytes[bytes.length >> 1] ^= 0xff;
            await c.put(req, new Response(bytes, { headers: resp.headers }));
            return req.url;
          }
        }
        return null;
      });
      assert.ok(flipped, "the model is in the cache");
      await page.reload();
      await waitReady(page, 300000);
      assert.equal(await page.getAttribute("body", "data-model-source"), "downloaded, cached");
      assert.match(await page.textContent("#model-sha"), new RegExp(`${MODEL_SHA} \\(verified\\)`));
      await page.reload();
      await waitReady(page, 300000);
      assert.equal(await page.getAttribute("body", "data-model-source"), "from cache");
      const r = await run(page, { prompt: "The weather report for tomorrow says", alpha: 0, maxTokens: 6 }, { timeout: 120000 });
      assert.equal(ids(r.raw).length, 6);
      assert.deepEqual(b2.problems, []);
    } finally {
      await b2.close();
    }
  });

  test("the network breaks mid-download: the download resumes where it broke, and only the verified file is cached", { timeout: T }, async () => {
    const b2 = await launchBrowser();
    try {
      const { page } = b2;
      const size = fs.statSync(path.join(ROOT, MODEL_FILE)).size;
      const cutAt = 30_000_000;
      const modelUrl = `/__fault/cutonce/${cutAt}/${MODEL_FILE}`;
      await page.goto(`${srv.url}?model=${modelUrl}&sha256=${MODEL_SHA}`);
      await waitReady(page, 300000);
      assert.match(await page.textContent("#model-sha"), new RegExp(`${MODEL_SHA} \\(verified\\)`));
      const log = (await (await fetch(`${srv.url}__fault/log`)).json()).filter((x) => x.path === `/${MODEL_FILE}` && x.kind === "cutonce");
      assert.equal(log.length, 2, `two requests for the model: ${JSON.stringify(log)}`);
      assert.equal(log[0].range, null);
      const m = /^bytes=(\d+)-$/.exec(log[1].range || "");
      assert.ok(m, `the second request asks for the rest: ${JSON.stringify(log[1])}`);
      const from = Number(m[1]);
      assert.ok(from > 0 && from <= cutAt, `resumed from byte ${from} (cut after ${cutAt} of ${size})`);
      assert.equal(log[1].status, 206);
      assert.deepEqual(await cachedUrls(page), [new URL(modelUrl, srv.url).href]);
      const r = await run(page, { prompt: "The weather report for tomorrow says", alpha: 0, maxTokens: 6 }, { timeout: 120000 });
      assert.equal(ids(r.raw).length, 6);
      // Chromium logs the broken response itself; nothing else may be logged.
      assert.deepEqual(b2.problems.filter((p) => !/ERR_CONTENT_LENGTH_MISMATCH/.test(p)), []);
    } finally {
      await b2.close();
    }
  });
});
