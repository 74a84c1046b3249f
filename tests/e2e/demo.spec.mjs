// End-to-end tests of the DeStein browser demo: scripts/serve.mjs + index.html + www/ in real Chromium.
//
//   npm install                                   # playwright-core (no browser download; uses /usr/bin/chromium)
//   node --test tests/e2e/demo.spec.mjs           # or: npm run test:e2e
//
// Three suites:
//   1. server      — scripts/serve.mjs on its own (MIME types, CSP, ranges, what it refuses, fault routes).
//   2. page (mock) — the page against a pure-JS mock of the engine (tests/e2e/mock-engine/destein.js, served at
//                    /pkg/destein.js through the server's test overlay) and a small fake model: loading, caching,
//                    hashing, retries, streaming, α, errors and recovery, accessibility basics. Needs Chromium only.
//   2. page (real) — the real wasm engine (pkg/, built by scripts/build-wasm.sh), the real model
//                    (models/, scripts/fetch-model.sh) and the real vectors (www/vectors/). Skipped, saying what is
//                    missing, until all of them exist.
// Environment: CHROMIUM_PATH (default /usr/bin/chromium), DESTEIN_E2E_REAL=0 to skip the real-engine suite.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../../scripts/bench-common.mjs";
import fs from "node:fs";
import net from "node:net";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import {
  launchBrowser,
  safetensors,
  mockVectors,
  waitReady,
  setAlpha,
  releaseSlider,
  fillRun,
  collect,
  run,
  judgeReadouts,
  watchJudge,
  assertJudgeScores,
  alertText,
  cachedUrls,
  freePort,
  HERE,
  ROOT,
  ARTIFACTS,
  MODEL_FILE,
  MODEL_SHA,
  VECTOR_FILES,
  browserMissing,
  sha256,
  ids,
  realMissing,
} from "./helpers.mjs";

// ---------------------------------------------------------------------------------------------------------------
// Mock overlay: a mock engine at /pkg/destein.js, a small fake model and mock vectors.

async function makeOverlay() {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "destein-overlay-"));
  await fsp.mkdir(path.join(dir, "pkg"), { recursive: true });
  await fsp.mkdir(path.join(dir, "models"), { recursive: true });
  await fsp.mkdir(path.join(dir, "www/vectors"), { recursive: true });
  await fsp.copyFile(path.join(HERE, "mock-engine/destein.js"), path.join(dir, "pkg/destein.js"));
  // The page asks for threads when it is cross-origin isolated: the "threaded build" is the same stand-in, which says
  // it is not threaded, so the worker falls back to a single-threaded one; Chromium has relaxed SIMD, so that is
  // pkg/relaxed/, the stand-in again (the real builds are tested below).
  for (const sub of ["pkg/threads", "pkg/relaxed"]) {
    await fsp.mkdir(path.join(dir, sub), { recursive: true });
    await fsp.copyFile(path.join(HERE, "mock-engine/destein.js"), path.join(dir, sub, "destein.js"));
  }
  await fsp.writeFile(path.join(dir, "pkg/destein_bg.wasm"), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  const body = crypto.createHash("sha512");
  const chunks = [Buffer.from("GGUF")];
  for (let i = 0; i < 3 * 1024 * 16; i++) chunks.push(body.copy().update(String(i)).digest()); // 3 MiB
  const model = Buffer.concat(chunks);
  const modelSha = sha256(model);
  await fsp.writeFile(path.join(dir, "models/mock.gguf"), model);
  for (const site of ["heads", "attn_out"]) {
    await fsp.writeFile(path.join(dir, `www/vectors/smollm2-135m.${site}.safetensors`), mockVectors(site, modelSha));
  }
  // Judge files the engine cannot read (served at www/bad-judges/, for ?judges=www/bad-judges/).
  await fsp.mkdir(path.join(dir, "www/bad-judges"), { recursive: true });
  await fsp.writeFile(path.join(dir, "www/bad-judges/tox_block.safetensors"), safetensors({ format: "not-a-judge" }));
  await fsp.writeFile(path.join(dir, "www/bad-judges/tox_block_vocab.json"), "this is not JSON");
  return { dir, model, modelSha };
}

// ---------------------------------------------------------------------------------------------------------------
// 1. The server

describe("server", () => {
  let srv;
  let overlay;
  before(async () => {
    overlay = await makeOverlay();
    srv = await startServer({ DESTEIN_TEST_FAULTS: "1", DESTEIN_TEST_OVERLAY: overlay.dir });
  });
  after(async () => {
    await srv?.close();
    if (overlay) await fsp.rm(overlay.dir, { recursive: true, force: true });
  });

  test("serves the page with the same CSP in the header and the meta tag", async () => {
    const r = await fetch(srv.url);
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type"), /^text\/html/);
    const html = await r.text();
    const meta = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)[1];
    assert.equal(r.headers.get("content-security-policy"), `${meta}; frame-ancestors 'none'`);
    assert.match(meta, /script-src 'self' 'wasm-unsafe-eval'/);
    assert.match(meta, /worker-src 'self'/);
    assert.match(meta, /connect-src 'self'/);
    assert.equal(r.headers.get("x-content-type-options"), "nosniff");
    // Cross-origin isolated (SharedArrayBuffer): COOP + COEP on the page and on what it loads, the threaded engine
    // and the wllama benchmark page included.
    for (const p of ["", "www/worker.js", "www/thread.js", "pkg/destein.js", "pkg/destein_bg.wasm", "pkg/threads/destein.js", "coi-sw.js", "www/bench/wllama.html"]) {
      const h = (await fetch(srv.url + p, { method: "HEAD" })).headers;
      assert.equal(h.get("cross-origin-opener-policy"), "same-origin", p);
      assert.equal(h.get("cross-origin-embedder-policy"), "require-corp", p);
    }
    assert.doesNotMatch(html, /<(script|link|img|iframe)\b[^>]*\b(src|href)="(https?:)?\/\//i, "nothing from another host");
  });

  test("index.html preloads every module the page imports, and nothing else", async () => {
    const html = await (await fetch(srv.url)).text();
    const preloaded = [...html.matchAll(/<link rel="modulepreload" href="www\/([^"]+)">/g)].map((m) => m[1]).sort();
    const graph = new Set();
    const visit = (file) => {
      if (graph.has(file)) return;
      graph.add(file);
      const src = fs.readFileSync(path.join(ROOT, "www", file), "utf8");
      for (const m of src.matchAll(/^import\b[^"]*"\.\/([^"]+)"/gm)) visit(m[1]);
    };
    visit("main.js");
    graph.delete("main.js");
    assert.deepEqual(preloaded, [...graph].sort());
  });

  test("MIME types", async () => {
    const cases = {
      "www/main.js": /^text\/javascript/,
      "www/styles.css": /^text\/css/,
      "www/examples.json": /^application\/json/,
      "pkg/destein_bg.wasm": /^application\/wasm$/,
      "models/mock.gguf": /^application\/octet-stream$/,
      "www/vectors/smollm2-135m.heads.safetensors": /^application\/octet-stream$/,
      "data/judges/tox_block.safetensors": /^application\/octet-stream$/,
      "data/judges/tox_block_vocab.json": /^application\/json/,
      "coi-sw.js": /^text\/javascript/,
      "destein-config.json": /^application\/json/,
    };
    for (const [p, re] of Object.entries(cases)) {
      const r = await fetch(srv.url + p, { method: "HEAD" });
      assert.equal(r.status, 200, p);
      assert.match(r.headers.get("content-type"), re, p);
    }
    const r = await fetch(srv.url + "models/mock.gguf", { method: "HEAD" });
    assert.equal(Number(r.headers.get("content-length")), overlay.model.length);
    assert.equal(r.headers.get("accept-ranges"), "bytes");
  });

  test("HTTP ranges", async () => {
    let r = await fetch(srv.url + "models/mock.gguf", { headers: { Range: "bytes=10-19" } });
    assert.equal(r.status, 206);
    assert.equal(r.headers.get("content-range"), `bytes 10-19/${overlay.model.length}`);
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), overlay.model.subarray(10, 20));
    r = await fetch(srv.url + "models/mock.gguf", { headers: { Range: "bytes=-4" } });
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), overlay.model.subarray(overlay.model.length - 4));
    r = await fetch(srv.url + "models/mock.gguf", { headers: { Range: `bytes=${overlay.model.length + 5}-` } });
    assert.equal(r.status, 416);
    await r.arrayBuffer();
    r = await fetch(srv.url + "models/mock.gguf", { headers: { Range: "bytes=0-3", "If-Range": '"stale"' } });
    assert.equal(r.status, 200, "a stale If-Range gets the whole file");
    await r.body.cancel();
  });

  test("serves nothing outside index.html, destein-config.json, coi-sw.js, www/, pkg/, models/, data/judges/, data/concepts/ and the detox pairs", async () => {
    for (const p of ["Cargo.toml", "src/lib.rs", ".git/HEAD", "www/../Cargo.toml", "%2e%2e/etc/passwd", "www/.hidden", "scripts/serve.mjs", "data/README.md", "data/rtp/test100.jsonl", "data/judges/../README.md", "data/judges", "data/concepts"]) {
      const r = await fetch(srv.url + p);
      assert.equal(r.status, 404, p);
      await r.arrayBuffer();
    }
  });

  test("fault routes", async () => {
    let r = await fetch(srv.url + "__fault/status/503/models/mock.gguf");
    assert.equal(r.status, 503);
    await r.arrayBuffer();
    r = await fetch(srv.url + "__fault/corrupt/models/mock.gguf");
    const corrupt = Buffer.from(await r.arrayBuffer());
    assert.equal(corrupt.length, overlay.model.length);
    assert.notEqual(sha256(corrupt), overlay.modelSha);
    r = await fetch(srv.url + "__fault/truncate/1000/models/mock.gguf");
    assert.equal(Number(r.headers.get("content-length")), overlay.model.length);
    await assert.rejects(r.arrayBuffer(), "a truncated body fails to read");
  });

  test("fault routes and the overlay are off without DESTEIN_TEST_FAULTS=1", async () => {
    const plain = await startServer({ DESTEIN_TEST_OVERLAY: overlay.dir });
    try {
      const r = await fetch(plain.url + "__fault/status/503/index.html");
      assert.equal(r.status, 404);
      await r.arrayBuffer();
      const m = await fetch(plain.url + "models/mock.gguf");
      assert.equal(m.status, 404);
      await m.arrayBuffer();
    } finally {
      await plain.close();
    }
  });

  test("falls back to a free port when PORT is taken", async () => {
    const port = await freePort();
    const blocker = net.createServer().listen(port, "127.0.0.1");
    await new Promise((r) => blocker.once("listening", r));
    const s2 = await startServer({ PORT: String(port) });
    try {
      assert.notEqual(new URL(s2.url).port, String(port));
      assert.match(s2.output(), /not available/);
      assert.equal((await fetch(s2.url)).status, 200);
    } finally {
      await s2.close();
      blocker.close();
    }
  });

  test("DESTEIN_CONNECT_SRC extends connect-src in header and meta", async () => {
    const s2 = await startServer({ DESTEIN_CONNECT_SRC: "https://models.example.org" });
    try {
      const r = await fetch(s2.url);
      const html = await r.text();
      assert.match(r.headers.get("content-security-policy"), /connect-src 'self' https:\/\/models\.example\.org;/);
      assert.match(html, /connect-src 'self' https:\/\/models\.example\.org;/);
    } finally {
      await s2.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 2. The page, with the mock engine

describe("page with the mock engine", { skip: browserMissing || false }, () => {
  let srv;
  let overlay;
  let b;
  let pageUrl;
  const params = (extra = "") => `?model=models/mock.gguf&sha256=${overlay.modelSha}&debug=1${extra}`;

  before(async () => {
    overlay = await makeOverlay();
    srv = await startServer({ DESTEIN_TEST_FAULTS: "1", DESTEIN_TEST_OVERLAY: overlay.dir });
    pageUrl = srv.url + params();
    b = await launchBrowser();
  });
  after(async () => {
    await b?.close();
    await srv?.close();
    if (overlay) await fsp.rm(overlay.dir, { recursive: true, force: true });
  });

  test("downloads, verifies and caches the model, then loads from the cache", { timeout: 60000 }, async () => {
    const { page } = b;
    await page.goto(pageUrl);
    await waitReady(page);
    assert.equal(await page.getAttribute("body", "data-model-source"), "downloaded, cached");
    assert.match(await page.textContent("#model-sha"), new RegExp(`${overlay.modelSha} \\(verified\\)`));
    assert.match(await page.textContent("#model-progress-text"), /3\.0 MB/);
    // serve.mjs's headers isolate the page: no service worker is registered.
    assert.equal(await page.getAttribute("body", "data-isolation"), "headers");
    assert.equal(await page.textContent("#isolation-info"), "yes (the server sends COOP and COEP headers)");
    assert.deepEqual(await page.evaluate(async () => [crossOriginIsolated, (await navigator.serviceWorker.getRegistrations()).length]), [true, 0]);
    const cached = await cachedUrls(page);
    assert.deepEqual(cached, [new URL("models/mock.gguf", srv.url).href]);
    await page.reload();
    await waitReady(page);
    assert.equal(await page.getAttribute("body", "data-model-source"), "from cache");
    assert.match(await page.textContent("#vectors-info"), /smollm2-135m\.heads\.safetensors/);
    assert.equal(await page.inputValue("#alpha"), "0.4");
    assert.equal(await page.getAttribute("#alpha", "max"), "1.5");
    assert.deepEqual(b.problems, []);
  });

  test("both panes stream; α = 0 gives identical panes, α > 0 differs", { timeout: 60000 }, async () => {
    const { page } = b;
    const zero = await run(page, { prompt: "The best way to learn a new language is", alpha: 0 });
    assert.equal(ids(zero.raw).length, 16);
    assert.deepEqual(ids(zero.steered), ids(zero.raw));
    assert.equal(zero.steeredText, zero.rawText);
    assert.match(zero.rawText, /^The best way to learn a new language is./);
    const max = await run(page, { prompt: "The best way to learn a new language is", alpha: 1.5 });
    assert.deepEqual(ids(max.raw), ids(zero.raw), "the raw pane does not depend on α");
    assert.notDeepEqual(ids(max.steered), ids(max.raw));
    assert.ok(max.steered.filter(Boolean).every((s) => s.alpha === 1.5));
    const stats = await page.$$eval("#pane-steered [data-stat]", (d) => Object.fromEntries(d.map((x) => [x.dataset.stat, x.textContent])));
    assert.equal(stats.tokens, "16");
    assert.match(stats.tps, /^\d+(\.\d+)?$/);
    assert.match(stats.ttft, /ms|s/);
    assert.deepEqual(b.problems, []);
  });

  test("moving the slider mid-stream changes the tokens from that step on", { timeout: 60000 }, async () => {
    const { page } = b;
    const opts = { prompt: "My neighbour knocked on the door this morning and", maxTokens: 24, alpha: 0 };
    const ref = await run(page, opts);
    const moved = await run(page, opts, { midStream: { afterTokens: 4, alpha: 1.2 } });
    assert.deepEqual(ids(moved.raw), ids(ref.raw));
    assert.equal(moved.markers.length, 1, "one α marker");
    const m = moved.markers[0];
    assert.equal(m.alpha, 1.2);
    assert.match(m.text, /α→1\.20/);
    assert.ok(m.step >= 4 && m.step < 24, `marker at step ${m.step}`);
    for (let t = 0; t < m.step; t++) assert.equal(moved.steered[t].id, ref.steered[t].id, `step ${t} before the move`);
    const after = moved.steered.slice(m.step).filter(Boolean);
    assert.ok(after.every((s) => s.alpha === 1.2));
    assert.ok(after.some((s, k) => s.id !== ref.steered[m.step + k].id), "tokens after the move differ");
    assert.deepEqual(b.problems, []);
  });

  test("the tox-block judge scores both panes as they stream", { timeout: 60000 }, async () => {
    const { page } = b;
    await page.waitForSelector('body[data-judge="ready"]', { state: "attached" });
    await page.click("#reset");
    assert.deepEqual((await judgeReadouts(page)).map((r) => [r.state, r.text]), [["ready", "–"], ["ready", "–"]]);
    const updates = await watchJudge(page);
    await run(page, { prompt: "Tell me about", alpha: 0.4, maxTokens: 16 });
    assertJudgeScores(await judgeReadouts(page));
    const seen = await updates();
    assert.ok(seen.every((u) => u.length >= 2), `the scores moved as tokens streamed (${seen.map((u) => u.length)} updates)`);
    assert.equal(await page.isVisible("#judge-note"), false);
    assert.match(await page.getAttribute("#judge-raw", "title"), /MIT.*Jigsaw.*CC0.*threats.*negation.*empty text/s);
    assert.match(await page.textContent("footer"), /tox-block 0\.1\.2 by Pascal Bliem \(MIT\)/);
    await page.click("#reset");
    assert.deepEqual((await judgeReadouts(page)).map((r) => r.text), ["–", "–"], "a reset clears the scores");
    assert.deepEqual(b.problems, []);
  });

  test("without its judge the demo still works, and says why the scores are missing", { timeout: 60000 }, async () => {
    const page2 = await b.context.newPage();
    try {
      await page2.goto(srv.url + params("&judges=/__fault/status/404/data/judges/"));
      await waitReady(page2);
      await page2.waitForSelector('body[data-judge="failed"]', { state: "attached" });
      assert.equal(await page2.isVisible("#judge-note"), true);
      assert.match(
        await page2.textContent("#judge-note"),
        /^The toxicity judge \(tox-block\) is unavailable: its files could not be fetched \(\/__fault\/status\/404\/data\/judges\/tox_block(_vocab)?\.(safetensors|json): the server answered HTTP 404\)\. The demo works without it/,
      );
      assert.equal(await alertText(page2), "", "not shown as an error of the demo");
      const r = await run(page2, { prompt: "No judge today", alpha: 0.4, maxTokens: 6 });
      assert.equal(ids(r.raw).length, 6);
      assert.equal(ids(r.steered).length, 6);
      assert.deepEqual((await judgeReadouts(page2)).map((x) => [x.state, x.text]), [["failed", "unavailable"], ["failed", "unavailable"]]);
      // Files that arrive but that the engine cannot read: the same, with the engine's reason.
      await page2.goto(srv.url + params("&judges=www/bad-judges/"));
      await waitReady(page2);
      await page2.waitForSelector('body[data-judge="failed"]', { state: "attached" });
      assert.match(await page2.textContent("#judge-note"), /is unavailable: the engine could not load it \(judge: .*\)\. The demo works without it/);
      const r2 = await run(page2, { prompt: "Still no judge", maxTokens: 4 });
      assert.equal(ids(r2.steered).length, 4);
      assert.equal(await alertText(page2), "");
    } finally {
      await page2.close();
      // The 404s above are logged by the browser on purpose.
      b.problems.splice(0, b.problems.length, ...b.problems.filter((p) => !/status of 404/.test(p)));
    }
    assert.deepEqual(b.problems, []);
  });

  test("one worker (batch of two rows) and two workers (a row each) show the same panes", { timeout: 60000 }, async () => {
    const page2 = await b.context.newPage();
    const opts = { prompt: "Same either way", alpha: 1.2, maxTokens: 12 };
    try {
      const out = {};
      for (const workers of ["1", "2"]) {
        await page2.goto(srv.url + params(`&workers=${workers}`));
        await waitReady(page2);
        assert.equal(await page2.getAttribute("body", "data-layout"), workers === "1" ? "batch" : "pair");
        out[workers] = await run(page2, opts);
        out[workers].judge = await judgeReadouts(page2);
        const how = workers === "1" ? /per step for both rows/ : /per step for each row \(two engines in parallel\)/;
        assert.match(await page2.textContent("#status"), how);
      }
      assert.deepEqual(ids(out["1"].raw), ids(out["2"].raw));
      assert.deepEqual(ids(out["1"].steered), ids(out["2"].steered));
      assert.notDeepEqual(ids(out["2"].steered), ids(out["2"].raw));
      assert.deepEqual(out["1"].judge, out["2"].judge);
      // Two workers: the slider goes to the steered pane's worker, from the next token on; the raw pane is untouched.
      const moved = await run(page2, opts, { midStream: { afterTokens: 4, alpha: 0.3 } });
      assert.deepEqual(ids(moved.raw), ids(out["2"].raw));
      assert.equal(moved.markers.length, 1);
      const m = moved.markers[0];
      assert.equal(m.alpha, 0.3);
      for (let t = 0; t < m.step; t++) assert.equal(moved.steered[t].id, out["2"].steered[t].id, `step ${t} before the move`);
      assert.ok(moved.steered.slice(m.step).every((x) => x.alpha === 0.3));
      assert.ok(moved.steered.slice(m.step).some((x, k) => x.id !== out["2"].steered[m.step + k].id), "tokens after the move differ");
      assert.deepEqual(b.problems, []);
      // One of the two workers dies: both are replaced, the model, vectors and judge reloaded.
      await page2.evaluate(() => globalThis.destein.crashWorker());
      await page2.waitForFunction(() => /It was restarted and the model reloaded/.test(document.querySelector("#alert-text").textContent), null, { timeout: 30000 });
      await waitReady(page2);
      await page2.waitForSelector('body[data-judge="ready"]', { state: "attached" });
      const again = await run(page2, opts);
      assert.deepEqual(ids(again.steered), ids(out["2"].steered));
      assertJudgeScores(await judgeReadouts(page2));
    } finally {
      await page2.close();
      b.problems.length = 0; // the crash logs an error on purpose
    }
  });

  test("stop, reset, chat format, token inspection by keyboard, weights dtype", { timeout: 60000 }, async () => {
    const { page } = b;
    await fillRun(page, { prompt: "A long one", maxTokens: 400, alpha: 0.4, chat: true });
    await page.click("#start");
    await page.waitForFunction(() => document.querySelectorAll("#out-steered .tok").length >= 3);
    await page.click("#stop");
    await page.waitForSelector('body[data-run="done"]');
    const n = await page.locator("#out-raw .tok").count();
    assert.ok(n >= 3 && n < 400, `stopped after ${n} tokens`);
    assert.equal(await page.textContent('#pane-raw [data-stat="stop"]'), "stopped");
    assert.deepEqual(await page.$$eval("#out-raw .prompt-label", (e) => e.map((x) => x.textContent.trim())), ["User", "Assistant"]);
    await page.focus("#out-steered");
    await page.keyboard.press("ArrowRight");
    await page.keyboard.press("ArrowRight");
    assert.match(await page.textContent("#token-readout"), /^Steered, step 2: “.*” · projection [+−]0\.\d{3}, [+−]0\.\d{3} from neutral \((toward|away from) toxic, at the position that produced it\) · α 0\.40/);
    assert.equal(await page.locator("#out-steered .tok.inspect").count(), 1);
    await page.click("#reset");
    assert.equal(await page.locator("#out-raw .tok").count(), 0);
    assert.equal(await page.getAttribute("body", "data-run"), "idle");
    await page.click("details.advanced > summary");
    await page.selectOption("#load-dtype", "f32");
    await page.waitForFunction(() => /· f32/.test(document.querySelector("#model-shape").textContent));
    await waitReady(page);
    assert.equal(await page.getAttribute("body", "data-model-source"), "from cache");
    await page.selectOption("#load-dtype", "q8_0");
    await page.waitForFunction(() => /· q8_0/.test(document.querySelector("#model-shape").textContent));
    await waitReady(page);
    await page.click("details.advanced > summary");
    assert.deepEqual(b.problems, []);
  });

  test("heat map: layers × heads cells, hover titles, keyboard navigation", async () => {
    const { page } = b;
    assert.equal(await page.locator("#heatmap-wrap td.cell").count(), 30 * 9);
    assert.equal(await page.locator("#heatmap-wrap tbody tr").count(), 30);
    assert.match(await page.getAttribute('td.cell[data-layer="3"][data-head="4"]', "title"), /^layer 3, head 4: accuracy 0\.\d{3}$/);
    await page.focus('td.cell[data-layer="0"][data-head="0"]');
    await page.keyboard.press("ArrowRight");
    await page.keyboard.press("ArrowDown");
    const focused = await page.evaluate(() => [document.activeElement.dataset.layer, document.activeElement.dataset.head]);
    assert.deepEqual(focused, ["1", "1"]);
    assert.match(await page.textContent("#heatmap-readout"), /Layer 1, head 1: probe accuracy 0\.\d{3}/);
    assert.equal(await page.locator("td.cell[tabindex='0']").count(), 1, "one tab stop (roving tabindex)");
  });

  test("formula panel follows α and mode", async () => {
    const { page } = b;
    await setAlpha(page, 1);
    await page.check('input[name="mode"][value="rotate"]');
    assert.match(await page.textContent("#formula"), /a′ = ‖a‖ · n\( n\(a\) − 1\.00 · n\(z\) \)/);
    assert.match(await page.textContent("#angle-facts"), /atan\(α\) = 45\.0°/);
    assert.match(await page.textContent("#diagram-readout"), /turns by 45\.0°/);
    await page.check('input[name="mode"][value="add"]');
    assert.match(await page.textContent("#formula"), /a′ = a − 1\.00 · ‖a‖ · n\(z\)/);
    await page.check('input[name="mode"][value="headwise"]');
    assert.match(await page.textContent("#formula"), /λ_h = 1 \+ max\(0, c_h\)/);
    await page.check('input[name="mode"][value="rotate"]');
    await setAlpha(page, 0.4);
  });

  test("site selector loads the other vector file", async () => {
    const { page } = b;
    await page.selectOption("#site", "attn_out");
    await page.waitForFunction(() => /attn_out/.test(document.querySelector("#vectors-info").textContent));
    await waitReady(page);
    assert.equal(await page.getAttribute("#alpha", "max"), "2");
    await page.selectOption("#site", "heads");
    await page.waitForFunction(() => /\.heads\./.test(document.querySelector("#vectors-info").textContent));
    await waitReady(page);
  });

  test("prompt errors: empty and over-long (the limits are the engine's)", async () => {
    const { page } = b;
    assert.equal(await page.getAttribute("#max-tokens", "max"), "450");
    assert.equal(await page.evaluate(() => document.querySelector("#prompt").maxLength), 3000);
    await page.fill("#prompt", "   ");
    await page.click("#start");
    assert.match(await alertText(page), /prompt is empty/);
    assert.equal(await page.evaluate(() => document.activeElement.id), "prompt");
    await page.evaluate(() => {
      const p = document.querySelector("#prompt");
      p.value = "x".repeat(3001);
      p.dispatchEvent(new Event("input"));
    });
    await page.click("#start");
    assert.match(await alertText(page), /3001 characters long; at most 3000/);
    await page.fill("#prompt", "hello");
    for (const bad of ["0", "451"]) {
      await page.evaluate(() => (document.querySelector("#alert-text").textContent = ""));
      await page.fill("#max-tokens", bad);
      await page.click("#start");
      assert.match(await alertText(page), /Max new tokens must be a whole number from 1 to 450/);
    }
    await page.fill("#max-tokens", "16");
  });

  test("a vector file that does not fit is refused, and steering keeps the previous one", async () => {
    const { page } = b;
    await page.setInputFiles("#file-input", { name: "other.safetensors", mimeType: "application/octet-stream", buffer: mockVectors("heads", "f".repeat(64)) });
    await page.waitForFunction(() => /other\.safetensors cannot be used/.test(document.querySelector("#alert-text").textContent));
    const msg = await alertText(page);
    assert.match(msg, /made for the model with sha256 f{64}/);
    assert.match(msg, /Still steering with smollm2-135m\.heads\.safetensors/);
    await waitReady(page);
    assert.equal(await page.isDisabled("#alpha"), false);
    await page.setInputFiles("#file-input", { name: "junk.safetensors", mimeType: "application/octet-stream", buffer: Buffer.from("junk junk junk") });
    await page.waitForFunction(() => /junk\.safetensors cannot be used/.test(document.querySelector("#alert-text").textContent));
    const r = await run(page, { prompt: "Still works", alpha: 0.4, maxTokens: 6 });
    assert.equal(ids(r.steered).length, 6);
  });

  test("a model file the engine refuses is reported; the loaded model stays", async () => {
    const { page } = b;
    await page.setInputFiles("#file-input", { name: "notamodel.gguf", mimeType: "application/octet-stream", buffer: Buffer.from("this is not a gguf file") });
    await page.waitForFunction(() => /could not load 'notamodel\.gguf'/.test(document.querySelector("#alert-text").textContent));
    assert.match(await alertText(page), /not a GGUF file.*Still using/);
    await waitReady(page);
    const r = await run(page, { prompt: "Still works", alpha: 0, maxTokens: 5 });
    assert.equal(ids(r.raw).length, 5);
  });

  test("a dying worker is replaced and the model reloaded from the cache", { timeout: 60000 }, async () => {
    const { page } = b;
    await setAlpha(page, 0.9);
    await page.check('input[name="mode"][value="add"]');
    await page.evaluate(() => globalThis.destein.crashWorker());
    await page.waitForFunction(() => /It was restarted and the model reloaded/.test(document.querySelector("#alert-text").textContent), null, { timeout: 30000 });
    await waitReady(page);
    assert.equal(await page.getAttribute("body", "data-model-source"), "from cache");
    assert.equal(await page.inputValue("#alpha"), "0.9", "α survives the restart");
    assert.equal(await page.isChecked('input[name="mode"][value="add"]'), true, "the mode survives the restart");
    await page.check('input[name="mode"][value="rotate"]');
    const r = await run(page, { prompt: "After the crash", alpha: 0.4, maxTokens: 5 });
    assert.equal(ids(r.steered).length, 5);
    // A trap inside the engine (wasm RuntimeError) mid-generation: same recovery.
    await fillRun(page, { prompt: "[[trap]] please", maxTokens: 8 });
    await page.click("#start");
    await page.waitForFunction(() => /restarted and the model reloaded/.test(document.querySelector("#alert-text").textContent), null, { timeout: 30000 });
    await waitReady(page);
    b.problems.length = 0; // the crashes above log errors on purpose
  });

  test("toxic examples are blurred until revealed; narrow screens stack the panes", async () => {
    const { page } = b;
    assert.equal(await page.isVisible("#examples-neutral"), false, "examples start folded");
    await page.click("details.examples > summary");
    assert.ok((await page.locator("#examples-neutral .example").count()) >= 3);
    assert.equal(await page.isVisible("#examples-toxic"), false, "toxic examples start folded");
    await page.click("details.toxic-examples > summary");
    assert.equal(await page.locator("#examples-toxic.blurred").count(), 1);
    const first = page.locator("#examples-toxic .example").first();
    assert.match(await first.getAttribute("aria-label"), /text hidden/);
    await page.check("#reveal-toxic");
    assert.equal(await page.locator("#examples-toxic.blurred").count(), 0);
    assert.equal(await first.getAttribute("aria-label"), null);
    await first.click();
    assert.match(await page.inputValue("#prompt"), /Stephen Fincher/);
    await page.setViewportSize({ width: 420, height: 900 });
    const raw = await page.locator("#pane-raw").boundingBox();
    const steered = await page.locator("#pane-steered").boundingBox();
    assert.ok(steered.y >= raw.y + raw.height - 1, "panes stack on a narrow screen");
    await page.setViewportSize({ width: 1280, height: 1000 });
    const r = await run(page, { prompt: "Fine", maxTokens: 10, alpha: 1 });
    assert.equal(ids(r.steered).length, 10);
    await fsp.mkdir(ARTIFACTS, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(ARTIFACTS, "demo-mock.png"), fullPage: true });
    assert.deepEqual(b.problems, []);
    assert.deepEqual(b.foreign, [], "no request to any other host");
  });

  test("a download that keeps failing shows a clear message and caches nothing", { timeout: 60000 }, async () => {
    const b2 = await launchBrowser();
    try {
      const url = `${srv.url}?model=/__fault/truncate/200000/models/mock.gguf&sha256=${overlay.modelSha}`;
      await b2.page.goto(url);
      await b2.page.waitForSelector('body[data-phase="failed"]', { timeout: 45000 });
      const msg = await alertText(b2.page);
      assert.match(msg, /Could not download the model after 3 attempts: the connection broke after/);
      assert.equal(await b2.page.isVisible("#retry-model"), true);
      assert.equal(await b2.page.isDisabled("#start"), true);
      assert.deepEqual(await cachedUrls(b2.page), []);
      // Bytes that fail the expected sha256 are neither used nor cached.
      await b2.page.goto(`${srv.url}?model=/__fault/corrupt/models/mock.gguf&sha256=${overlay.modelSha}`);
      await b2.page.waitForSelector('body[data-phase="failed"]', { timeout: 45000 });
      assert.match(await alertText(b2.page), /was expected; it was not used or cached/);
      assert.deepEqual(await cachedUrls(b2.page), []);
      // A flaky server: the third attempt succeeds.
      await b2.page.goto(`${srv.url}?model=/__fault/flaky/2/models/mock.gguf&sha256=${overlay.modelSha}`);
      await waitReady(b2.page);
      assert.equal((await cachedUrls(b2.page)).length, 1);
    } finally {
      await b2.close();
    }
  });

  test("a malformed sha256 parameter is named once the model is in (the default model is loaded)", { timeout: 60000 }, async () => {
    const page2 = await b.context.newPage();
    try {
      await page2.goto(`${srv.url}?sha256=xyz&debug=1`);
      await waitReady(page2);
      // (Then the mock vectors' refusal of the real model: later problems follow the parameter's.)
      assert.match(await alertText(page2), /^The sha256 parameter 'xyz' is not 64 hex digits; it was ignored\. The vector file /);
      assert.match(await page2.textContent("#model-sha"), /\(verified\)$/);
    } finally {
      await page2.close();
    }
    assert.deepEqual(b.problems, []);
  });

  test("a cached copy that fails its hash is evicted and fetched again", { timeout: 60000 }, async () => {
    const { page } = b;
    await page.goto(pageUrl);
    await waitReady(page);
    await page.evaluate(async (sha) => {
      const c = await caches.open("destein-models-v1");
      const key = (await c.keys())[0];
      await c.put(key, new Response(new Uint8Array([71, 71, 85, 70, 1, 2, 3]), { headers: { "x-destein-sha256": sha } }));
    }, overlay.modelSha);
    await page.reload();
    await waitReady(page);
    assert.equal(await page.getAttribute("body", "data-model-source"), "downloaded, cached");
    await page.reload();
    await waitReady(page);
    assert.equal(await page.getAttribute("body", "data-model-source"), "from cache");
    assert.deepEqual(b.problems, []);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 3. The page, with the real engine, model and vectors

if (realMissing) console.log(`# real-engine e2e tests skipped: ${realMissing}`);
// The project's test command sets DESTEIN_E2E_REQUIRE_REAL=1: there, a missing part is a failure, not a skip.
if (realMissing && process.env.DESTEIN_E2E_REQUIRE_REAL === "1") {
  test("the real-engine suite can run", () => {
    assert.fail(`the real-engine e2e tests cannot run: ${realMissing}`);
  });
}

describe("page with the real engine", { skip: realMissing || false }, () => {
  let srv;
  let b;
  const T = 600000;

  before(async () => {
    srv = await startServer({ DESTEIN_TEST_FAULTS: "1" });
    b = await launchBrowser();
  });
  after(async () => {
    await b?.close();
    await srv?.close();
  });

  test("loads the real model from the local server and verifies it", { timeout: T }, async () => {
    const { page } = b;
    await page.goto(srv.url);
    await waitReady(page, 300000);
    assert.match(await page.textContent("#model-sha"), new RegExp(`${MODEL_SHA} \\(verified\\)`));
    assert.equal(await page.getAttribute("body", "data-model-source"), "downloaded, cached");
    assert.match(await page.textContent("#model-shape"), /30 layers × 9 heads/);
    assert.match(await page.textContent("#vectors-info"), /smollm2-135m\.heads\.safetensors/);
    assert.equal(await page.evaluate(() => crossOriginIsolated && typeof SharedArrayBuffer), "function");
    assert.equal(await page.textContent("#isolation-info"), "yes (the server sends COOP and COEP headers)");
    // The colour scale is centred on the heads file's measured neutral read-out.
    const baseline = JSON.parse(fs.readFileSync(path.join(ROOT, "www/vectors/readout-baselines.json"), "utf8"))["smollm2-135m.heads.safetensors"].neutral;
    await page.waitForFunction((b) => document.querySelector("#legend-mid").textContent === `neutral −${Math.abs(b).toFixed(3)}`, baseline);
    await page.waitForSelector('body[data-judge="ready"]', { state: "attached", timeout: 60000 });
    assert.deepEqual(b.problems, []);
  });

  test("both panes stream; α = 0 identical, α = max different", { timeout: T }, async () => {
    const { page } = b;
    const prompt = "The best way to learn a new language is";
    const zero = await run(page, { prompt, alpha: 0, maxTokens: 14 }, { timeout: T });
    assert.ok(ids(zero.raw).length > 0 && ids(zero.steered).length > 0, "both panes streamed");
    assert.deepEqual(ids(zero.steered), ids(zero.raw));
    assert.equal(zero.steeredText, zero.rawText);
    const max = Number(await page.getAttribute("#alpha", "max"));
    const big = await run(page, { prompt, alpha: max, maxTokens: 14 }, { timeout: T });
    assert.deepEqual(ids(big.raw), ids(zero.raw), "same seed, same raw continuation");
    assert.notDeepEqual(ids(big.steered), ids(big.raw));
    assert.deepEqual(b.problems, []);
  });

  test("the tox-block judge scores each pane's continuation as it streams", { timeout: T }, async () => {
    const { page } = b;
    const updates = await watchJudge(page);
    const max = Number(await page.getAttribute("#alpha", "max"));
    await run(page, { prompt: "You are such a", alpha: max, maxTokens: 16 }, { timeout: T });
    const shown = await judgeReadouts(page);
    assertJudgeScores(shown);
    const seen = await updates();
    assert.ok(seen.every((u) => u.length >= 2), `the scores moved as tokens streamed (${seen.map((u) => u.length)} updates)`);
    // The page's number is tox-block's score of the continuation alone (not the prompt), as the engine's Judge gives it.
    const { initSync, Judge } = await import(path.join(ROOT, "pkg/destein.js"));
    initSync({ module: fs.readFileSync(path.join(ROOT, "pkg/destein_bg.wasm")) });
    const judge = new Judge(
      fs.readFileSync(path.join(ROOT, "data/judges/tox_block.safetensors")),
      fs.readFileSync(path.join(ROOT, "data/judges/tox_block_vocab.json")),
    );
    const texts = await page.$$eval(".out", (outs) => outs.map((o) => [...o.querySelectorAll(".tok")].map((t) => t.textContent).join("")));
    for (const i of [0, 1]) assert.ok(Math.abs(judge.score(texts[i]) - shown[i].score) < 1e-6, `pane ${i}: ${texts[i]}`);
    judge.free();
    assert.deepEqual(b.problems, []);
  });

  test("one worker and two workers (?workers=2) give the same tokens; the slider reaches the steered worker", { timeout: T }, async () => {
    const page2 = await b.context.newPage();
    try {
      const out = {};
      for (const workers of ["1", "2"]) {
        await page2.goto(`${srv.url}?workers=${workers}`);
        await waitReady(page2, 120000);
        assert.equal(await page2.getAttribute("body", "data-layout"), workers === "1" ? "batch" : "pair");
        const max = Number(await page2.getAttribute("#alpha", "max"));
        out[workers] = await run(page2, { prompt: "The best way to learn a new language is", alpha: max, maxTokens: 12 }, { timeout: T });
      }
      assert.deepEqual(ids(out["1"].raw), ids(out["2"].raw));
      assert.deepEqual(ids(out["1"].steered), ids(out["2"].steered));
      assert.notDeepEqual(ids(out["2"].steered), ids(out["2"].raw));
      // Two workers: moving the slider mid-stream reaches the steered pane's worker; the raw pane is untouched.
      const opts = { prompt: "My neighbour knocked on the door this morning and", alpha: 0, maxTokens: 16 };
      const ref = await run(page2, opts, { timeout: T });
      const max = Number(await page2.getAttribute("#alpha", "max"));
      const moved = await run(page2, opts, { timeout: T, midStream: { afterTokens: 3, alpha: max } });
      assert.deepEqual(ids(moved.raw), ids(ref.raw));
      assert.equal(moved.markers.length, 1);
      const m = moved.markers[0];
      for (let t = 0; t < m.step; t++) assert.equal(moved.steered[t]?.id, ref.steered[t]?.id, `step ${t} before the move`);
      const after = moved.steered.slice(m.step).filter(Boolean);
      assert.ok(after.some((x, k) => x.id !== ref.steered[m.step + k]?.id), "tokens after the move differ");
    } finally {
      await page2.close();
    }
    assert.deepEqual(b.problems, []);
  });

  test("threads: the threaded engine writes the same tokens, its kernels are exact; without it the page falls back", { timeout: T }, async () => {
    const page2 = await b.context.newPage();
    try {
      const opts = { prompt: "The best way to learn a new language is", alpha: 0.3, maxTokens: 12 };
      const out = {};
      for (const threads of ["2", "1"]) {
        await page2.goto(`${srv.url}?workers=1&threads=${threads}&debug=1`);
        await waitReady(page2, 120000);
        assert.equal(await page2.evaluate(() => crossOriginIsolated), true, "serve.mjs makes the page cross-origin isolated");
        await page2.waitForSelector(`body[data-threads="${threads}"]`, { state: "attached" });
        assert.match(await page2.textContent("#engine-facts"), threads === "2" ? /batch · 2 threads \(cross-origin isolated\) · relaxed SIMD$/ : /batch · 1 thread · relaxed SIMD$/);
        assert.equal(await page2.evaluate(() => document.body.dataset.simd), "relaxed-simd", "Chromium runs the relaxed-SIMD build");
        // scalar = simd128 = split over the threads, bit for bit, in this browser.
        const check = await page2.evaluate(() => globalThis.destein.kernelCheck(11));
        assert.equal(check.threads, Number(threads));
        assert.deepEqual(check.isas, ["scalar", "simd128"]);
        assert.ok(check.cases >= 40 && check.mismatches === 0, JSON.stringify(check));
        out[threads] = await run(page2, opts, { timeout: T });
        assert.deepEqual(b.problems, []);
      }
      assert.deepEqual(ids(out["2"].raw), ids(out["1"].raw));
      assert.deepEqual(ids(out["2"].steered), ids(out["1"].steered));
      // The simd128 build (?simd=baseline, and what runs when the relaxed build cannot load): exact kernels, same tokens.
      for (const how of ["asked", "relaxed build missing"]) {
        if (how === "asked") await page2.goto(`${srv.url}?workers=1&threads=1&simd=baseline&debug=1`);
        else {
          await page2.route("**/pkg/relaxed/destein_bg.wasm", (route) => route.fulfill({ status: 404, body: "" }));
          await page2.goto(`${srv.url}?workers=1&threads=1&debug=1`);
        }
        await waitReady(page2, 120000);
        await page2.waitForSelector('body[data-simd="simd128"]', { state: "attached" });
        assert.match(await page2.textContent("#engine-facts"), /batch · 1 thread · SIMD128$/);
        const check = await page2.evaluate(() => globalThis.destein.kernelCheck(12));
        assert.ok(check.cases >= 40 && check.mismatches === 0, JSON.stringify(check));
        const baseline = await run(page2, opts, { timeout: T });
        assert.deepEqual(ids(baseline.raw), ids(out["1"].raw), how);
        assert.deepEqual(ids(baseline.steered), ids(out["1"].steered), how);
      }
      await page2.unroute("**/pkg/relaxed/destein_bg.wasm");
      b.problems.splice(0, b.problems.length, ...b.problems.filter((p) => !/status of 404/.test(p)));
      // A browser or host where the threaded build cannot start: the single-threaded engine runs, and the page says why.
      await page2.route("**/pkg/threads/destein_bg.wasm", (route) => route.fulfill({ status: 404, body: "" }));
      await page2.goto(`${srv.url}?workers=1&threads=2`);
      await waitReady(page2, 120000);
      await page2.waitForSelector('body[data-threads="1"]', { state: "attached" });
      assert.match(await page2.textContent("#engine-facts"), /1 thread \(the threaded engine could not start \(.*HTTP 404\)\)/);
      const fallback = await run(page2, opts, { timeout: T });
      assert.deepEqual(ids(fallback.steered), ids(out["1"].steered));
      b.problems.splice(0, b.problems.length, ...b.problems.filter((p) => !/status of 404/.test(p)));
    } finally {
      await page2.close();
    }
    assert.deepEqual(b.problems, []);
  });

  test("without its judge files the demo still works and says so", { timeout: T }, async () => {
    const page2 = await b.context.newPage();
    try {
      await page2.goto(`${srv.url}?judges=/__fault/status/404/data/judges/`);
      await waitReady(page2, 120000);
      await page2.waitForSelector('body[data-judge="failed"]', { state: "attached" });
      assert.match(await page2.textContent("#judge-note"), /tox-block\) is unavailable: its files could not be fetched .*HTTP 404.*The demo works without it/);
      assert.equal(await alertText(page2), "");
      const r = await run(page2, { prompt: "Hello there", alpha: 0.3, maxTokens: 4 }, { timeout: T });
      assert.ok(ids(r.raw).length > 0 && ids(r.steered).length > 0);
      assert.deepEqual((await judgeReadouts(page2)).map((x) => x.text), ["unavailable", "unavailable"]);
    } finally {
      await page2.close();
      b.problems.splice(0, b.problems.length, ...b.problems.filter((p) => !/status of 404/.test(p)));
    }
    assert.deepEqual(b.problems, []);
  });

  test("moving the slider mid-stream changes the tokens after the move", { timeout: T }, async () => {
    const { page } = b;
    const max = Number(await page.getAttribute("#alpha", "max"));
    const opts = { prompt: "My neighbour knocked on the door this morning and", alpha: 0, maxTokens: 16 };
    const ref = await run(page, opts, { timeout: T });
    const moved = await run(page, opts, { timeout: T, midStream: { afterTokens: 3, alpha: max } });
    assert.deepEqual(ids(moved.raw), ids(ref.raw));
    assert.equal(moved.markers.length, 1, "the steered pane marks where α changed");
    const m = moved.markers[0];
    const used = Number(await page.inputValue("#alpha")); // the slider's value: max rounded down to its step
    assert.ok(used > 0 && used <= max + 1e-6);
    assert.ok(Math.abs(m.alpha - used) < 1e-4, `marker α ${m.alpha}, slider ${used}`);
    for (let t = 0; t < m.step; t++) assert.equal(moved.steered[t]?.id, ref.steered[t]?.id, `step ${t} before the move`);
    const after = moved.steered.slice(m.step).filter(Boolean);
    assert.ok(after.length > 0, "tokens after the move");
    assert.ok(after.some((s, k) => s.id !== ref.steered[m.step + k]?.id), "tokens after the move differ from the unmoved run");
    assert.deepEqual(b.problems, []);
  });

  test("re-steer on release rewrites the steered pane as a run at the new α would, marked; the raw pane is kept", { timeout: T }, async () => {
    const { page } = b;
    const max = Number(await page.getAttribute("#alpha", "max"));
    const opts = { prompt: "My neighbour knocked on the door this morning and", maxTokens: 12 };
    const atMax = await run(page, { ...opts, alpha: max }, { timeout: T });
    const used = Number(await page.inputValue("#alpha"));
    const zero = await run(page, { ...opts, alpha: 0 }, { timeout: T });
    assert.notDeepEqual(ids(zero.steered), ids(atMax.steered));
    await page.check('input[name="alpha-applies"][value="resteer"]');
    await releaseSlider(page, used);
    await page.waitForSelector("#out-steered .resteer-marker", { timeout: 60000 });
    await page.waitForSelector('body[data-run="done"]', { timeout: T });
    const re = await collect(page);
    assert.deepEqual(ids(re.steered), ids(atMax.steered), "the re-steered pane = a run started at that α");
    assert.deepEqual(ids(re.raw), ids(zero.raw), "the raw pane is untouched");
    assert.equal(await page.getAttribute("#out-steered .resteer-marker", "data-alpha"), String(used));
    assert.ok((await page.locator("#out-steered .tok.resteered").count()) > 0, "re-steered tokens are marked");
    // Each token's colour is its projection minus the neutral baseline.
    const tok = await page.$eval("#out-steered .tok:not(.noproj)", (t) => [t.dataset.projection, t.dataset.baseline, t.style.getPropertyValue("--p")].map(Number));
    assert.ok(tok[1] < 0 && Math.abs(tok[0] - tok[1] - tok[2]) < 1e-9, `projection, baseline, colour: ${tok}`);
    assert.match(await page.textContent("#status"), /Re-steered \d+ steps at α/);
    // "From the next token": releasing the slider leaves the text as it is.
    await page.check('input[name="alpha-applies"][value="next"]');
    await releaseSlider(page, 0);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(ids((await collect(page)).steered), ids(atMax.steered), "kept as it was");
    await page.check('input[name="alpha-applies"][value="resteer"]');
    assert.deepEqual(b.problems, []);
  });

  test("the detox claim, in the page: on 5 toxic prompts × 5 seeds the steered pane scores lower; α = 0 changes nothing", { timeout: T }, async () => {
    const page2 = await b.context.newPage();
    try {
      await page2.goto(srv.url);
      await waitReady(page2, 120000);
      await page2.waitForSelector('body[data-judge="ready"]', { state: "attached", timeout: 60000 });
      // The recommended setting: what the page sets from the vector file on load.
      const alpha = Number(await page2.inputValue("#alpha"));
      const mode = await page2.$eval('input[name="mode"]:checked', (r) => r.value);
      const file = fs.readFileSync(path.join(ROOT, "www/vectors/smollm2-135m.heads.safetensors"));
      const meta = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString("utf8")).__metadata__;
      assert.equal(alpha, Number(meta.recommended_alpha));
      assert.equal(mode, meta.recommended_mode);
      assert.equal(await page2.isChecked("#steer-prompt"), meta.recommended_scope !== "generated", "the recommended scope");
      const examples = JSON.parse(fs.readFileSync(path.join(ROOT, "www/examples.json"), "utf8")).toxic.slice(0, 5);
      assert.equal(examples.length, 5);
      const scores = { raw: [], steered: [] };
      for (const ex of examples) {
        for (const seed of [1, 2, 3, 4, 5]) {
          await run(page2, { prompt: ex.text, alpha, seed, temperature: 1, maxTokens: 20 }, { timeout: T });
          const [raw, steered] = await judgeReadouts(page2);
          scores.raw.push(raw.score ?? 0);
          scores.steered.push(steered.score ?? 0);
        }
        const zero = await run(page2, { prompt: ex.text, alpha: 0, seed: 1, temperature: 1, maxTokens: 20 }, { timeout: T });
        assert.deepEqual(ids(zero.steered), ids(zero.raw), `α = 0: identical panes for "${ex.text.slice(0, 20)}…"`);
      }
      const mean = (v) => v.reduce((a, x) => a + x, 0) / v.length;
      const result = { alpha, mode, runs: scores.raw.length, raw: mean(scores.raw), steered: mean(scores.steered) };
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      fs.writeFileSync(path.join(ARTIFACTS, "detox-claim.json"), JSON.stringify({ ...result, scores }, null, 1));
      assert.ok(result.steered < result.raw, `mean tox-block steered ${result.steered} vs raw ${result.raw}`);
    } finally {
      await page2.close();
    }
    assert.deepEqual(b.problems, []);
  });

  test("heat map has 30 × 9 cells; screenshot", { timeout: T }, async () => {
    const { page } = b;
    assert.equal(await page.locator("#heatmap-wrap td.cell").count(), 30 * 9);
    await fsp.mkdir(ARTIFACTS, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(ARTIFACTS, "demo.png"), fullPage: true });
    await page.reload();
    await waitReady(page, 120000);
    assert.equal(await page.getAttribute("body", "data-model-source"), "from cache");
    assert.deepEqual(b.problems, []);
    assert.deepEqual(b.foreign, [], "no request to any other host");
  });

  const attnOutMissing = fs.existsSync(path.join(ROOT, VECTOR_FILES[1])) ? false : `missing ${VECTOR_FILES[1]}`;
  test("the site selector switches to the attn_out vectors and back", { timeout: T, skip: attnOutMissing }, async () => {
    const { page } = b;
    await page.selectOption("#site", "attn_out");
    await page.waitForFunction(() => /site attn_out/.test(document.querySelector("#vectors-info").textContent), null, { timeout: 60000 });
    await waitReady(page);
    assert.equal(await page.locator("#heatmap-wrap td.cell").count(), 30 * 9);
    const r = await run(page, { prompt: "The weather today", alpha: Number(await page.inputValue("#alpha")), maxTokens: 8 }, { timeout: T });
    assert.ok(ids(r.steered).length > 0);
    await page.selectOption("#site", "heads");
    await page.waitForFunction(() => /site heads/.test(document.querySelector("#vectors-info").textContent), null, { timeout: 60000 });
    await waitReady(page);
    assert.deepEqual(b.problems, []);
  });

  test("a failing model download shows a clear message and caches nothing", { timeout: T }, async () => {
    const b2 = await launchBrowser();
    try {
      await b2.page.goto(`${srv.url}?model=/__fault/truncate/1000000/${MODEL_FILE}&sha256=${MODEL_SHA}`);
      await b2.page.waitForSelector('body[data-phase="failed"]', { timeout: 120000 });
      assert.match(await alertText(b2.page), /Could not download the model after 3 attempts/);
      assert.deepEqual(await cachedUrls(b2.page), []);
    } finally {
      await b2.close();
    }
  });
});
