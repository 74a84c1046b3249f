// End-to-end tests of the published page: the folder scripts/build-site.sh writes, served the way a static host
// serves it — by Python's plain static server (`python3 -m http.server`: no custom header, no HTTP ranges, its own
// MIME types) — with the real engine and model in real Chromium. There the page has only its <meta>
// Content-Security-Policy, becomes cross-origin isolated through its own service worker (coi-sw.js), and must load,
// verify and cache the model and stream both panes; a host that misses a file or serves the wrong thing must get a
// message naming the problem, never a blank page. (demo.spec.mjs runs the page on scripts/serve.mjs, with headers.)
//
//   node --test tests/e2e/site.spec.mjs
//
// Needs what demo.spec.mjs's real-engine suite needs (pkg/, models/, Chromium), plus python3 and coreutils.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  ROOT,
  MODEL_FILE,
  MODEL_SHA,
  VECTOR_FILES,
  browserMissing,
  launchBrowser,
  startStaticServer,
  waitReady,
  run,
  ids,
  alertText,
  cachedUrls,
  sha256,
} from "./helpers.mjs";

const missing = (() => {
  if (process.env.DESTEIN_E2E_REAL === "0") return "DESTEIN_E2E_REAL=0";
  if (browserMissing) return browserMissing;
  const need = ["pkg/destein.js", "pkg/destein_bg.wasm", MODEL_FILE, VECTOR_FILES[0]];
  const gone = need.filter((p) => !fs.existsSync(path.join(ROOT, p)));
  if (spawnSync("python3", ["--version"]).status !== 0) gone.push("python3");
  return gone.length ? `missing ${gone.join(", ")}` : false;
})();
if (missing) console.log(`# published-site e2e tests skipped: ${missing}`);
if (missing && process.env.DESTEIN_E2E_REQUIRE_REAL === "1") {
  test("the published-site suite can run", () => assert.fail(`the published-site e2e tests cannot run: ${missing}`));
}

const BUILD = path.join(ROOT, "scripts/build-site.sh");
const T = 300000;
let work; // a temporary folder: site/ (the default build) and pub/ (copies to break, served as subfolders)

/** Run build-site.sh; {status, out} (stdout and stderr together). */
function buildSite(...args) {
  const r = spawnSync(BUILD, args, { cwd: ROOT, encoding: "utf8" });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** A copy of the built site under pub/NAME (hard links: cheap, and changing the copy leaves the original). */
function copySite(name) {
  const dest = path.join(work, "pub", name);
  execFileSync("cp", ["-al", path.join(work, "site"), dest]);
  return dest;
}

const metaCsp = (html) => /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)?.[1];

/** The browser's console errors, less those the test caused on purpose; asserts nothing else was logged. */
function assertOnlyExpectedProblems(b, ...expected) {
  const left = b.problems.filter((p) => !expected.some((re) => re.test(p)));
  b.problems.length = 0;
  assert.deepEqual(left, []);
}

/** Wait until the page is ready or has failed; the phase. */
async function settled(page, timeout = 120000) {
  await page.waitForSelector('body[data-phase="ready"], body[data-phase="failed"]', { timeout });
  return page.getAttribute("body", "data-phase");
}

/** The documents the page loads from now on (a service-worker reload shows up as a second one). */
function countDocuments(page) {
  const seen = [];
  page.on("domcontentloaded", () => seen.push(page.url()));
  return seen;
}

describe("published site", { skip: missing || false }, () => {
  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), "destein-site-"));
    await fsp.mkdir(path.join(work, "pub"));
    const r = buildSite("--out", path.join(work, "site"));
    assert.equal(r.status, 0, r.out);
  });
  after(async () => {
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  // -------------------------------------------------------------------------------------------------------------
  describe("scripts/build-site.sh", () => {
    test("builds a self-contained folder: the page, the engine, data, vectors and the verified model", async () => {
      const site = path.join(work, "site");
      for (const f of ["index.html", "coi-sw.js", "destein-config.json", "www/main.js", "www/isolation.js", "www/boot-check.js",
        "www/worker.js", "www/examples.json", ...VECTOR_FILES, "www/vectors/readout-baselines.json", "data/judges/tox_block.safetensors",
        "data/judges/tox_block_vocab.json", "data/concepts/concepts.json", "data/steering_pairs.jsonl", MODEL_FILE]) {
        assert.ok(fs.statSync(path.join(site, f)).isFile(), f);
      }
      assert.equal(fs.existsSync(path.join(site, "www/bench")), false, "no benchmark pages");
      // pkg/ whole, subfolders included.
      const list = (d) => fs.readdirSync(d, { recursive: true }).sort();
      assert.deepEqual(list(path.join(site, "pkg")), list(path.join(ROOT, "pkg")));
      assert.equal(sha256(fs.readFileSync(path.join(site, MODEL_FILE))), MODEL_SHA);
      // The page as in the repository (its CSP tag included); the config names the model the site holds.
      assert.equal(fs.readFileSync(path.join(site, "index.html"), "utf8"), fs.readFileSync(path.join(ROOT, "index.html"), "utf8"));
      const config = JSON.parse(fs.readFileSync(path.join(site, "destein-config.json"), "utf8"));
      assert.deepEqual(config, JSON.parse(fs.readFileSync(path.join(ROOT, "destein-config.json"), "utf8")));
      assert.deepEqual([config.model.url, config.model.sha256], [MODEL_FILE, MODEL_SHA]);
      const { DEFAULT_MODEL } = await import(path.join(ROOT, "www/model-store.js"));
      assert.deepEqual(config.model, { ...DEFAULT_MODEL }, "destein-config.json and the built-in default agree");
      // Every file under 100 MB; no symbolic links.
      for (const f of list(site)) {
        const st = fs.lstatSync(path.join(site, f));
        assert.ok(!st.isSymbolicLink(), `${f} is not a link`);
        assert.ok(st.size < 100e6, `${f}: ${st.size} bytes`);
      }
      assert.equal(buildSite("--check", site).status, 0);
    });

    test("--model-url: the config names it with its sha256, the <meta> CSP allows its origin, no model copied", () => {
      const out = path.join(work, "by-url");
      const url = "https://models.example.org/files/m.gguf";
      const r = buildSite("--out", out, "--model-url", url, "--model-sha256", MODEL_SHA.toUpperCase());
      assert.equal(r.status, 0, r.out);
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, "destein-config.json"), "utf8")), { model: { url, sha256: MODEL_SHA } });
      assert.equal(fs.existsSync(path.join(out, "models")), false);
      const csp = metaCsp(fs.readFileSync(path.join(out, "index.html"), "utf8"));
      const original = metaCsp(fs.readFileSync(path.join(ROOT, "index.html"), "utf8"));
      assert.equal(csp, original.replace("connect-src 'self'", "connect-src 'self' https://models.example.org"));
      // Built again into the same folder: replaced, not refused.
      assert.equal(buildSite("--out", out).status, 0);
      assert.ok(fs.existsSync(path.join(out, MODEL_FILE)));
    });

    test("refuses bad options, a folder it did not build, and an incomplete site, naming the problem", () => {
      const cases = [
        [["--model-url", "https://example.org/m.gguf"], /--model-url and --model-sha256 go together/],
        [["--model-url", "https://example.org/m.gguf", "--model-sha256", "abc"], /--model-sha256 'abc' is not 64 hex digits/],
        [["--model-url", "/models/m.gguf", "--model-sha256", MODEL_SHA], /is root-absolute/],
        [["--out"], /--out needs a value/],
        [["--nonsense"], /unknown argument '--nonsense'/],
        [["--out", path.join(work, "not-a-site")], /is not empty and is not a site built by this script/],
      ];
      fs.mkdirSync(path.join(work, "not-a-site"));
      fs.writeFileSync(path.join(work, "not-a-site", "notes.txt"), "keep me");
      for (const [args, re] of cases) {
        const r = buildSite(...args);
        assert.equal(r.status, 1, args.join(" "));
        assert.match(r.out, re);
      }
      const broken = copySite("check-broken");
      fs.rmSync(path.join(broken, "pkg/destein_bg.wasm"));
      fs.rmSync(path.join(broken, VECTOR_FILES[0]));
      // Scripts in pkg/'s subfolders are read too (a threaded build's helpers); a folder they import is no file.
      fs.mkdirSync(path.join(broken, "pkg/threads/snippets"), { recursive: true });
      fs.writeFileSync(
        path.join(broken, "pkg/threads/snippets/helpers.js"),
        "const pkg = await import('../..');\nnew Worker(new URL('./helpers.worker.js', import.meta.url), { type: 'module' });\n",
      );
      const r = buildSite("--check", broken);
      assert.equal(r.status, 1);
      assert.match(r.out, /is not a complete site/);
      assert.match(r.out, /missing pkg\/destein_bg\.wasm \(needed by (the page|pkg\/destein\.js)\)/);
      assert.match(r.out, /missing www\/vectors\/smollm2-135m\.heads\.safetensors/);
      assert.match(r.out, /missing pkg\/threads\/snippets\/helpers\.worker\.js \(needed by pkg\/threads\/snippets\/helpers\.js\)/);
      assert.equal(r.out.match(/^  /gm).length, 3, r.out);
      assert.equal(fs.readFileSync(path.join(work, "not-a-site", "notes.txt"), "utf8"), "keep me");
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  describe("on python3 -m http.server, with the real engine", () => {
    let srv;
    let b;
    let documents;
    before(async () => {
      srv = await startStaticServer(path.join(work, "site"));
      b = await launchBrowser();
      documents = countDocuments(b.page);
    });
    after(async () => {
      await b?.close();
      await srv?.close();
    });

    test("the server sends no COOP, COEP or CSP header and no ranges; JavaScript and wasm get their MIME types", async () => {
      const head = async (p) => (await fetch(srv.url + p, { method: "HEAD" })).headers;
      const page = await head("");
      for (const h of ["content-security-policy", "cross-origin-opener-policy", "cross-origin-embedder-policy"]) {
        assert.equal(page.get(h), null, h);
      }
      // application/wasm here (Python 3.11 and /etc/mime.types know .wasm); a host without that mapping sends
      // application/octet-stream: the wrong-MIME case below.
      assert.match((await head("pkg/destein_bg.wasm")).get("content-type"), /^application\/(wasm|octet-stream)$/);
      for (const f of ["www/main.js", "pkg/destein.js", "coi-sw.js"]) {
        assert.match((await head(f)).get("content-type"), /^(text|application)\/javascript/, `${f}: module scripts need a JavaScript MIME type`);
      }
      const r = await fetch(srv.url + MODEL_FILE, { headers: { Range: "bytes=0-3" } });
      assert.equal(r.status, 200, "a range request gets the whole file");
      await r.body.cancel();
    });

    test("loads, verifies and caches the model; cross-origin isolated through its service worker after one reload", { timeout: T }, async () => {
      const { page } = b;
      await page.goto(srv.url);
      await waitReady(page, T);
      assert.deepEqual(documents, [srv.url, srv.url], "one reload, by the service worker");
      assert.match(await page.textContent("#model-sha"), new RegExp(`${MODEL_SHA} \\(verified\\)`));
      assert.equal(await page.getAttribute("body", "data-model-source"), "downloaded, cached");
      assert.deepEqual(await cachedUrls(page), [srv.url + MODEL_FILE]);
      assert.equal(await page.getAttribute("body", "data-isolation"), "service-worker");
      assert.equal(await page.textContent("#isolation-info"), "yes (service worker coi-sw.js adds COOP and COEP)");
      const env = await page.evaluate(() => ({
        isolated: globalThis.crossOriginIsolated,
        sab: typeof SharedArrayBuffer,
        controller: navigator.serviceWorker.controller?.scriptURL,
      }));
      assert.deepEqual(env, { isolated: true, sab: "function", controller: srv.url + "coi-sw.js" });
      await page.waitForSelector('body[data-judge="ready"]', { state: "attached", timeout: 60000 });
      assert.deepEqual(b.problems, []);
    });

    test("both panes stream; α = 0 gives identical panes, α = max different ones; a slider move mid-stream applies", { timeout: T }, async () => {
      const { page } = b;
      const prompt = "My neighbour knocked on the door this morning and";
      const zero = await run(page, { prompt, alpha: 0, maxTokens: 14 }, { timeout: T });
      assert.ok(ids(zero.raw).length > 0, "the raw pane streamed");
      assert.deepEqual(ids(zero.steered), ids(zero.raw));
      const max = Number(await page.getAttribute("#alpha", "max"));
      const big = await run(page, { prompt, alpha: max, maxTokens: 14 }, { timeout: T });
      assert.deepEqual(ids(big.raw), ids(zero.raw));
      assert.notDeepEqual(ids(big.steered), ids(big.raw));
      const moved = await run(page, { prompt, alpha: 0, maxTokens: 14 }, { timeout: T, midStream: { afterTokens: 3, alpha: max } });
      assert.equal(moved.markers.length, 1, "the steered pane marks where α changed");
      const m = moved.markers[0];
      for (let t = 0; t < m.step; t++) assert.equal(moved.steered[t]?.id, zero.steered[t]?.id, `step ${t} before the move`);
      assert.ok(moved.steered.slice(m.step).some((s, k) => s && s.id !== zero.steered[m.step + k]?.id), "tokens after the move differ");
      assert.deepEqual(b.problems, []);
    });

    test("isolated by the service worker, the single-engine layout runs the threaded build: same tokens as one thread", { timeout: T }, async () => {
      const page2 = await b.context.newPage();
      try {
        const opts = { prompt: "The best way to learn a new language is", alpha: 0.3, maxTokens: 10 };
        const out = {};
        for (const threads of ["2", "1"]) {
          await page2.goto(`${srv.url}?workers=1&threads=${threads}`);
          await waitReady(page2, T);
          await page2.waitForSelector(`body[data-threads="${threads}"]`, { state: "attached" });
          if (threads === "2") assert.match(await page2.textContent("#engine-facts"), /2 threads \(cross-origin isolated\)/);
          out[threads] = await run(page2, opts, { timeout: T });
        }
        assert.ok(ids(out["2"].steered).length > 0);
        assert.deepEqual(ids(out["2"].raw), ids(out["1"].raw));
        assert.deepEqual(ids(out["2"].steered), ids(out["1"].steered));
      } finally {
        await page2.close();
      }
      assert.deepEqual(b.problems, []);
    });

    test("the Content-Security-Policy applies through the <meta> tag alone", { timeout: T }, async () => {
      const { page } = b;
      const html = await (await fetch(srv.url)).text();
      assert.equal(metaCsp(html), metaCsp(fs.readFileSync(path.join(ROOT, "index.html"), "utf8")));
      // A fetch to another origin is refused (connect-src), and the page says so.
      const other = "http://127.0.0.1:9/blocked";
      const fetched = await page.evaluate(async (url) => {
        const violation = new Promise((resolve) =>
          document.addEventListener("securitypolicyviolation", (ev) => ev.effectiveDirective === "connect-src" && resolve(ev.blockedURI)),
        );
        const result = await fetch(url).then(() => "allowed", (err) => err.name);
        return { fetch: result, violation: await violation };
      }, other);
      assert.deepEqual(fetched, { fetch: "TypeError", violation: other });
      assert.match(await alertText(page), /Content-Security-Policy blocked http:\/\/127\.0\.0\.1:9\/blocked \(connect-src\)/);
      // No inline script runs; Trusted Types guard the HTML and script-URL sinks (service worker registration too).
      const seen = await page.evaluate(async () => {
        const out = {};
        const s = document.createElement("script");
        s.append(document.createTextNode("globalThis.inlineRan = true"));
        try {
          document.head.append(s);
        } catch (err) {
          out.inlineError = err.name;
        }
        out.inlineRan = globalThis.inlineRan === true;
        for (const [name, act] of [
          ["innerHTML", () => (document.createElement("div").innerHTML = "<b>x</b>")],
          ["register", () => navigator.serviceWorker.register("coi-sw.js")],
        ]) {
          try {
            await act();
            out[name] = "allowed";
          } catch (err) {
            out[name] = err.name;
          }
        }
        return out;
      });
      assert.deepEqual(seen, { inlineRan: false, innerHTML: "TypeError", register: "TypeError" });
      await page.click("#alert-dismiss");
      assertOnlyExpectedProblems(b, /Content Security Policy|requires 'Trusted(Script|HTML|ScriptURL)' assignment/);
    });

    test("a reload reads the model from the cache and is isolated from the start: no second reload", { timeout: T }, async () => {
      const { page } = b;
      documents.length = 0;
      await page.reload();
      await waitReady(page, T);
      assert.equal(documents.length, 1);
      assert.equal(await page.getAttribute("body", "data-model-source"), "from cache");
      assert.equal(await page.getAttribute("body", "data-isolation"), "service-worker");
      assert.deepEqual(b.problems, []);
      assert.deepEqual(b.foreign, [], "no request to any other host");
    });

    test("without service workers the page runs single-threaded, not isolated, and says why", { timeout: T }, async () => {
      const b2 = await launchBrowser({ serviceWorkers: "block" });
      try {
        await b2.page.goto(srv.url);
        await waitReady(b2.page, T);
        assert.equal(await b2.page.getAttribute("body", "data-isolation"), "no");
        assert.match(await b2.page.textContent("#isolation-info"), /^no: its service worker coi-sw\.js (did not become active|could not be registered)/);
        assert.equal(await b2.page.evaluate(() => typeof SharedArrayBuffer), "undefined");
        const r = await run(b2.page, { prompt: "Hello there", alpha: 0.3, maxTokens: 4 }, { timeout: T });
        assert.ok(ids(r.raw).length > 0 && ids(r.steered).length > 0);
        // Asked for threads without SharedArrayBuffer: the single-threaded engine runs, and the page says why.
        await b2.page.goto(`${srv.url}?workers=1&threads=2`);
        await waitReady(b2.page, T);
        await b2.page.waitForSelector('body[data-threads="1"]', { state: "attached" });
        assert.match(await b2.page.textContent("#engine-facts"), /1 thread \(the page is not cross-origin isolated\)/);
        const r2 = await run(b2.page, { prompt: "Hello there", alpha: 0.3, maxTokens: 4 }, { timeout: T });
        assert.deepEqual(ids(r2.steered), ids(r.steered));
        assert.deepEqual(b2.problems, []);
      } finally {
        await b2.close();
      }
    });
  });

  // -------------------------------------------------------------------------------------------------------------
  describe("a static host that misses a file or serves the wrong thing", () => {
    let pub; // python3 -m http.server on pub/: each case in its own subfolder (own URLs, own service-worker scope)
    let b;
    before(async () => {
      const ok = copySite("ok");
      // Without the relaxed build's wasm the worker falls back to pkg/ (demo.spec tests that); without that one too,
      // nothing can run.
      const noWasm = copySite("no-wasm");
      for (const f of ["pkg/relaxed/destein_bg.wasm", "pkg/destein_bg.wasm"]) fs.rmSync(path.join(noWasm, f));
      fs.rmSync(path.join(copySite("no-vectors"), VECTOR_FILES[0]));
      fs.rmSync(path.join(copySite("no-lab"), "www/lab.js"));
      fs.rmSync(path.join(copySite("no-worker"), "www/worker.js"));
      fs.rmSync(path.join(copySite("no-config"), "destein-config.json"));
      // A service worker that takes control but adds no header: the page must not reload twice.
      const idle = copySite("idle-sw");
      fs.rmSync(path.join(idle, "coi-sw.js"));
      fs.writeFileSync(
        path.join(idle, "coi-sw.js"),
        'self.addEventListener("install", () => self.skipWaiting());\n' +
          'self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));\n',
      );
      assert.ok(fs.existsSync(path.join(ok, "pkg/destein_bg.wasm")), "the copies leave the original alone");
      pub = await startStaticServer(path.join(work, "pub"));
      b = await launchBrowser();
    });
    after(async () => {
      await b?.close();
      await pub?.close();
    });

    test("a model URL that returns an HTML page, a file that is not GGUF, or nothing, is named as such", { timeout: T }, async () => {
      const { page } = b;
      const cases = [
        ["index.html", /^Could not download the model: the model URL returned an HTML page, not a GGUF file \(http:\/\/.*\/ok\/index\.html\)\.$/],
        ["www/examples.json", /the model URL returned a file that does not start with "GGUF" \(content type application\/json\), not a GGUF model/],
        ["models/nothing.gguf", /Could not download the model: the server answered HTTP 404 .*\(http:\/\/.*\/ok\/models\/nothing\.gguf\)/],
      ];
      for (const [model, re] of cases) {
        await page.goto(`${pub.url}ok/?model=${model}`);
        assert.equal(await settled(page), "failed", model);
        assert.match(await alertText(page), re);
        assert.equal(await page.isVisible("#retry-model"), true);
      }
      assertOnlyExpectedProblems(b, /status of 404/);
    });

    test("a site without its engine's wasm, its worker or one of its scripts names the missing file", { timeout: T }, async () => {
      const { page } = b;
      const cases = [
        ["no-wasm", /^The inference engine cannot start: pkg\/destein_bg\.wasm is missing on the server \(HTTP 404\)\./, "The inference engine is not available."],
        // Not restarted again and again, as a worker that dies later would be.
        ["no-worker", /^The inference engine cannot start: www\/worker\.js is missing on the server \(HTTP 404\)\./, "The inference engine is not available."],
        // Instead of staying at "Starting…".
        ["no-lab", /^The page could not start: www\/lab\.js is missing on the server \(HTTP 404\)\./, "The page could not start."],
      ];
      for (const [folder, message, status] of cases) {
        await page.goto(`${pub.url}${folder}/`);
        assert.equal(await settled(page), "failed", folder);
        assert.match(await alertText(page), message);
        assert.equal(await page.textContent("#status"), status);
      }
      assertOnlyExpectedProblems(b, /status of 404/);
    });

    test("a site without a vector file names it; both panes still run, unsteered", { timeout: T }, async () => {
      const { page } = b;
      await page.goto(`${pub.url}no-vectors/`);
      assert.equal(await settled(page), "ready");
      assert.match(await alertText(page), /Could not fetch the vector file www\/vectors\/smollm2-135m\.heads\.safetensors: the server answered HTTP 404\. Steering is off/);
      const r = await run(page, { prompt: "Hello there", maxTokens: 4 }, { timeout: T });
      assert.deepEqual(ids(r.steered), ids(r.raw));
      assertOnlyExpectedProblems(b, /status of 404/);
    });

    test("a site without destein-config.json says so and loads the built-in default model", { timeout: T }, async () => {
      const { page } = b;
      await page.goto(`${pub.url}no-config/`);
      assert.equal(await settled(page), "ready");
      assert.match(await alertText(page), /^The site's destein-config\.json is missing on the server \(HTTP 404\); using the built-in default model models\/SmolLM2-135M-Instruct\.Q4_1\.gguf\./);
      assert.match(await page.textContent("#model-sha"), new RegExp(`${MODEL_SHA} \\(verified\\)`));
      assertOnlyExpectedProblems(b, /status of 404/);
    });

    test("a service worker that does not isolate: one reload, then the page runs and says why", { timeout: T }, async () => {
      const page = await b.context.newPage();
      try {
        const documents = countDocuments(page);
        await page.goto(`${pub.url}idle-sw/`);
        await waitReady(page, T);
        assert.equal(documents.length, 2, "reloaded once, not more");
        assert.equal(await page.textContent("#isolation-info"), "no: the page was reloaded once under its service worker (coi-sw.js) and is still not isolated");
        assert.equal(await page.evaluate(() => typeof SharedArrayBuffer), "undefined");
      } finally {
        await page.close();
      }
      assert.deepEqual(b.problems, []);
    });

    test("a host that serves .wasm with the wrong MIME type: the engine still starts", { timeout: T }, async () => {
      const odd = await startStaticServer(path.join(work, "pub"), "wasm-octet-stream");
      const b2 = await launchBrowser();
      try {
        const type = (await fetch(`${odd.url}ok/pkg/destein_bg.wasm`, { method: "HEAD" })).headers.get("content-type");
        assert.equal(type, "application/octet-stream");
        await b2.page.goto(`${odd.url}ok/`);
        await waitReady(b2.page, T);
        const r = await run(b2.page, { prompt: "Hello there", alpha: 0.3, maxTokens: 4 }, { timeout: T });
        assert.ok(ids(r.raw).length > 0 && ids(r.steered).length > 0);
        assert.deepEqual(b2.problems, [], "wasm-bindgen falls back with a console warning, not an error");
      } finally {
        await b2.close();
        await odd.close();
      }
    });

    test("a model on another origin: refused without CORS, saying so; loaded and verified with CORS", { timeout: T }, async () => {
      const host = path.join(work, "model-host");
      await fsp.mkdir(host);
      fs.linkSync(path.join(ROOT, MODEL_FILE), path.join(host, "m.gguf"));
      const plain = await startStaticServer(host);
      const cors = await startStaticServer(host, "cors");
      try {
        for (const [name, server] of [["no-cors", plain], ["cors", cors]]) {
          const r = buildSite("--out", path.join(work, "pub", name), "--model-url", `${server.url}m.gguf`, "--model-sha256", MODEL_SHA);
          assert.equal(r.status, 0, r.out);
        }
        const { page } = b;
        await page.goto(`${pub.url}no-cors/`);
        assert.equal(await settled(page), "failed");
        assert.match(
          await alertText(page),
          new RegExp(`^Could not download the model after 3 attempts: network error .*The server at ${plain.url.slice(0, -1)} did not let this page read the file: it must answer with CORS headers`),
        );
        assertOnlyExpectedProblems(b, /blocked by CORS policy|net::ERR_FAILED/);
        await page.goto(`${pub.url}cors/`);
        await waitReady(page, T);
        assert.match(await page.textContent("#model-sha"), new RegExp(`${MODEL_SHA} \\(verified\\)`));
        assert.equal(await page.getAttribute("body", "data-model-source"), "downloaded, cached");
        assert.equal(await page.textContent("#isolation-info"), "yes (service worker coi-sw.js adds COOP and COEP)", "a CORS fetch is allowed under COEP");
        const r = await run(page, { prompt: "Hello there", maxTokens: 4 }, { timeout: T });
        assert.ok(ids(r.steered).length > 0);
        assert.deepEqual(b.problems, []);
      } finally {
        await plain.close();
        await cors.close();
      }
    });
  });
});
