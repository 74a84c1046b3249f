// Security tests of the page (README "Threat model"): the Content-Security-Policy is strict and the browser enforces
// it; hostile text — a prompt, model output, a file name, a vector file's metadata, a GGUF's model name, the errors
// that quote them — reaches the page as text only; a page load and a generation request nothing from another origin.
//
//   node --test --test-concurrency=1 tests/e2e/security.spec.mjs
//
// Three suites: the policy as served and the page's scripts (no browser); the page with the stand-in engine
// (tests/e2e/mock-engine/destein.js, wrapped here so that its output contains HTML), needing Chromium only; and the
// real wasm engine with the real model, whose general.name is replaced by HTML of the same length, and the real vector
// file with HTML in its metadata (skipped, saying what is missing, until pkg/, the model and the vectors exist;
// DESTEIN_E2E_REAL=0 skips it).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../../scripts/bench-common.mjs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import {
  launchBrowser,
  safetensors,
  mockVectors,
  waitReady,
  run,
  alertText,
  HERE,
  ROOT,
  MODEL_FILE,
  VECTOR_FILES,
  sha256,
  browserMissing,
  realMissing,
} from "./helpers.mjs";

// Each would run script if it were parsed as HTML. File names cannot hold "/", so they get the first one.
const HOSTILE_NAME = "<img src=x onerror=globalThis.__pwned=1>";
const HOSTILE = `${HOSTILE_NAME}<script>globalThis.__pwned=2</script><b onmouseover="globalThis.__pwned=3">bold?</b>`;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** A launched browser (helpers.mjs) that also records every request URL and every CSP violation in the page. */
async function launchWatched() {
  const b = await launchBrowser();
  b.requests = [];
  b.context.on("request", (r) => b.requests.push(r.url()));
  await b.context.addInitScript(() => {
    globalThis.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      globalThis.__violations.push(`${e.effectiveDirective} ${e.blockedURI}`),
    );
  });
  return b;
}

/** Requests to any origin but `origin` (data: and blob: URLs are the page's own). */
function otherOrigins(requests, origin) {
  return requests.filter((u) => !/^(data|blob):/.test(u) && new URL(u).origin !== origin);
}

/** Nothing hostile was parsed or run: no element, handler or script came from the hostile text; no CSP violation. */
async function assertInert(page) {
  const seen = await page.evaluate(() => ({
    pwned: globalThis.__pwned ?? null,
    violations: globalThis.__violations,
    imgX: document.querySelectorAll('img[src="x"]').length,
    handlers: document.querySelectorAll("[onerror], [onmouseover]").length,
    inlineScripts: document.querySelectorAll("script:not([src])").length,
    bold: [...document.querySelectorAll("b")].filter((e) => e.textContent === "bold?").length,
  }));
  assert.deepEqual(seen, { pwned: null, violations: [], imgX: 0, handlers: 0, inlineScripts: 0, bold: 0 });
}

const directives = (policy) =>
  Object.fromEntries(
    policy
      .split(";")
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map(([name, ...values]) => [name, values]),
  );

/** A safetensors file with its __metadata__ changed (the tensors and their offsets stay as they are). */
function withMetadata(bytes, changes) {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
  Object.assign(header.__metadata__, changes);
  const json = Buffer.from(JSON.stringify(header));
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  return Buffer.concat([len, padded, bytes.subarray(8 + n)]);
}

// ---------------------------------------------------------------------------------------------------------------
// 1. The policy itself (no browser)

describe("the Content-Security-Policy", () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    await srv?.close();
  });

  test("is strict: no inline script, no eval but wasm's, no other origin; the page has no inline script or handler", async () => {
    const r = await fetch(srv.url);
    const html = await r.text();
    const meta = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)[1];
    for (const [where, policy] of [["header", r.headers.get("content-security-policy")], ["meta", meta]]) {
      const d = directives(policy);
      assert.deepEqual(d["default-src"], ["'none'"], where);
      assert.deepEqual(d["script-src"], ["'self'", "'wasm-unsafe-eval'"], where);
      for (const name of ["worker-src", "connect-src", "img-src", "style-src"]) assert.deepEqual(d[name], ["'self'"], `${where} ${name}`);
      for (const name of ["object-src", "base-uri", "form-action"]) assert.deepEqual(d[name], ["'none'"], `${where} ${name}`);
      assert.deepEqual(d["require-trusted-types-for"], ["'script'"], where);
      assert.deepEqual(d["trusted-types"], ["destein-worker"], where);
      assert.doesNotMatch(policy, /'unsafe-inline'|'unsafe-eval'|'unsafe-hashes'|'strict-dynamic'|\*|https?:|data:|blob:/, where);
    }
    assert.deepEqual(directives(r.headers.get("content-security-policy"))["frame-ancestors"], ["'none'"]);
    // The page itself: every script has a src, no inline handler or style attribute.
    const scripts = html.match(/<script\b[^>]*>/g);
    assert.ok(scripts.length >= 2);
    for (const s of scripts) assert.match(s, /\ssrc="[^"]+"/, s);
    assert.doesNotMatch(html, /<[a-z][^>]*\son[a-z]+\s*=/i, "no inline event handler");
    assert.doesNotMatch(html, /<[a-z][^>]*\sstyle\s*=/i, "no style attribute");
  });

  test("the page's scripts use no HTML or code sink", async () => {
    const dir = path.join(ROOT, "www");
    const files = (await fsp.readdir(dir)).filter((f) => f.endsWith(".js")).map((f) => path.join(dir, f));
    files.push(path.join(ROOT, "coi-sw.js"));
    assert.ok(files.length >= 8);
    for (const f of files) {
      const src = (await fsp.readFile(f, "utf8")).replace(/^\s*\/\/.*$/gm, ""); // comments may name the sinks
      assert.doesNotMatch(
        src,
        /\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\b|setHTML|createContextualFragment|srcdoc/,
        path.relative(ROOT, f),
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 2. The page with the stand-in engine, whose output contains HTML

// pkg/destein.js in the overlay: the stand-in engine, but every third token's text is HTML.
const HOSTILE_ENGINE = `
export * from "./mock-destein.js";
export { default } from "./mock-destein.js";
import { Engine as Mock } from "./mock-destein.js";
export class Engine extends Mock {
  step() {
    const r = super.step();
    for (const row of r.rows) if (row.text && row.tokenId % 3 === 0) row.text = ${JSON.stringify(HOSTILE)};
    return r;
  }
}
`;

async function makeMockOverlay() {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "destein-security-"));
  for (const pkg of ["pkg", "pkg/threads", "pkg/relaxed"]) {
    await fsp.mkdir(path.join(dir, pkg), { recursive: true });
    await fsp.copyFile(path.join(HERE, "mock-engine/destein.js"), path.join(dir, pkg, "mock-destein.js"));
    await fsp.writeFile(path.join(dir, pkg, "destein.js"), HOSTILE_ENGINE);
  }
  await fsp.writeFile(path.join(dir, "pkg/destein_bg.wasm"), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  await fsp.mkdir(path.join(dir, "models"), { recursive: true });
  const model = Buffer.concat([Buffer.from("GGUF"), crypto.randomBytes(256 * 1024)]);
  const modelSha = sha256(model);
  await fsp.writeFile(path.join(dir, "models/mock.gguf"), model);
  await fsp.mkdir(path.join(dir, "www/vectors"), { recursive: true });
  for (const site of ["heads", "attn_out"]) {
    await fsp.writeFile(path.join(dir, `www/vectors/smollm2-135m.${site}.safetensors`), mockVectors(site, modelSha));
  }
  return { dir, modelSha };
}

/** mockVectors' fields (helpers.mjs), with some replaced. */
function mockVectorsWith(modelSha256, changes) {
  const base = mockVectors("heads", modelSha256);
  const header = JSON.parse(base.subarray(8).toString("utf8"));
  return safetensors({ ...header.__metadata__, ...changes });
}

describe("page with the stand-in engine: hostile text", { skip: browserMissing || false }, () => {
  let srv;
  let overlay;
  let b;
  before(async () => {
    overlay = await makeMockOverlay();
    srv = await startServer({ DESTEIN_TEST_FAULTS: "1", DESTEIN_TEST_OVERLAY: overlay.dir });
    b = await launchWatched();
  });
  after(async () => {
    await b?.close();
    await srv?.close();
    if (overlay) await fsp.rm(overlay.dir, { recursive: true, force: true });
  });

  test("a hostile prompt and hostile model output are shown as text; nothing is requested from another origin", { timeout: 60000 }, async () => {
    const { page } = b;
    await page.goto(`${srv.url}?model=models/mock.gguf&sha256=${overlay.modelSha}`);
    await waitReady(page);
    await run(page, { prompt: HOSTILE, maxTokens: 24, alpha: 0.4 });
    for (const id of ["#out-raw", "#out-steered"]) {
      const text = await page.textContent(id);
      assert.ok(text.startsWith(HOSTILE), `${id} starts with the prompt, as text`);
      assert.ok(text.slice(HOSTILE.length).includes(HOSTILE), `${id}: the engine's HTML output is shown as text`);
    }
    await assertInert(page);
    assert.ok(b.requests.some((u) => u.endsWith("/models/mock.gguf")), "the requests were recorded");
    assert.deepEqual(otherOrigins(b.requests, new URL(srv.url).origin), [], "no request to another origin");
    assert.deepEqual(b.problems, []);
  });

  test("file names, a vector file's metadata and the errors that quote them are shown as text", { timeout: 60000 }, async () => {
    const { page } = b;
    // Loads: the metadata's model name is shown in the vector file's description.
    await page.setInputFiles("#file-input", {
      name: `${HOSTILE_NAME}.safetensors`,
      mimeType: "application/octet-stream",
      buffer: mockVectorsWith(overlay.modelSha, { modelName: HOSTILE }),
    });
    await page.waitForFunction((n) => document.querySelector("#vectors-info").textContent.startsWith(n), `${HOSTILE_NAME}.safetensors`);
    assert.ok((await page.textContent("#vectors-info")).includes(`made for ${HOSTILE}`));
    await waitReady(page);
    // Refused: the error quotes the file name and the metadata.
    await page.setInputFiles("#file-input", {
      name: `other${HOSTILE_NAME}.safetensors`,
      mimeType: "application/octet-stream",
      buffer: mockVectorsWith(HOSTILE, {}),
    });
    await page.waitForFunction(() => /cannot be used/.test(document.querySelector("#alert-text").textContent));
    let msg = await alertText(page);
    assert.ok(msg.includes(`other${HOSTILE_NAME}.safetensors cannot be used`), msg);
    assert.ok(msg.includes(`made for the model with sha256 ${HOSTILE}`), msg);
    assert.ok(msg.includes(`Still steering with ${HOSTILE_NAME}.safetensors`), msg);
    await waitReady(page);
    // A model file the engine refuses.
    await page.setInputFiles("#file-input", {
      name: `${HOSTILE_NAME}.gguf`,
      mimeType: "application/octet-stream",
      buffer: Buffer.from("this is not a gguf file"),
    });
    await page.waitForFunction(() => /could not load/.test(document.querySelector("#alert-text").textContent));
    msg = await alertText(page);
    assert.ok(msg.includes(`could not load '${HOSTILE_NAME}.gguf'`), msg);
    await waitReady(page);
    await assertInert(page);
    assert.deepEqual(otherOrigins(b.requests, new URL(srv.url).origin), []);
    assert.deepEqual(b.problems, []);
  });

  test("the browser enforces the policy: innerHTML with a string, eval, new Function and an inline handler are refused", async () => {
    const { page } = b;
    // The checks run in a task of the page's own (page.evaluate's own code may eval: DevTools allows it), and the
    // violation events, which are queued, are read a moment later.
    const got = await page.evaluate(
      () =>
        new Promise((resolve) =>
          setTimeout(() => {
            const out = {};
            const div = document.createElement("div");
            const attempt = (key, f) => {
              try {
                f();
                out[key] = "allowed";
              } catch (e) {
                out[key] = e.name;
              }
            };
            attempt("innerHTML", () => (div.innerHTML = "<b>x</b>"));
            attempt("eval", () => eval("1"));
            attempt("newFunction", () => new Function("return 1")());
            // An inline handler needs a TrustedScript here, which no policy of the page makes (and 'unsafe-inline').
            attempt("inlineHandler", () => {
              div.setAttribute("onclick", "globalThis.__pwned = 'inline handler'");
              document.body.append(div);
              div.click();
              div.remove();
            });
            setTimeout(() => {
              out.pwned = globalThis.__pwned ?? null;
              out.violations = [...new Set(globalThis.__violations.map((v) => v.split(" ")[0]))].sort();
              globalThis.__violations.length = 0;
              resolve(out);
            }, 200);
          }, 0),
        ),
    );
    assert.deepEqual(got, {
      innerHTML: "TypeError",
      eval: "EvalError",
      newFunction: "EvalError",
      inlineHandler: "TypeError",
      pwned: null,
      // Chromium reports all four as Trusted Types violations (eval and new Function are also outside script-src).
      violations: ["require-trusted-types-for"],
    });
    b.problems.length = 0; // the refusals above are logged as console errors on purpose
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 3. The real engine: a GGUF whose model name is HTML, a real vector file with HTML in its metadata

describe("page with the real engine: hostile GGUF and vector metadata", { skip: realMissing || false }, () => {
  let srv;
  let dir;
  let modelSha;
  let vectors;
  let b;
  const hostileName = "<img src=x onerror=__pwned=1>"; // 29 bytes: fits in the real name's 31

  before(async () => {
    // The real model with general.name (31 bytes) replaced by HTML of the same length: every offset stays.
    const model = await fsp.readFile(path.join(ROOT, MODEL_FILE));
    const at = model.indexOf("general.name");
    assert.ok(at > 0 && model.readUInt32LE(at + 12) === 8, "general.name is a string");
    const len = Number(model.readBigUInt64LE(at + 16));
    assert.ok(hostileName.length <= len);
    model.write(hostileName.padEnd(len, " "), at + 24, len, "utf8");
    modelSha = sha256(model);
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "destein-security-real-"));
    await fsp.mkdir(path.join(dir, "models"), { recursive: true });
    await fsp.writeFile(path.join(dir, "models/hostile.gguf"), model);
    vectors = await fsp.readFile(path.join(ROOT, VECTOR_FILES[0]));
    srv = await startServer({ DESTEIN_TEST_FAULTS: "1", DESTEIN_TEST_OVERLAY: dir });
    b = await launchWatched();
  });
  after(async () => {
    await b?.close();
    await srv?.close();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  test("the model name, the vector metadata, the prompt and the errors quoting them are shown as text", { timeout: 300000 }, async () => {
    const { page } = b;
    await page.goto(`${srv.url}?model=models/hostile.gguf&sha256=${modelSha}&workers=1`);
    await waitReady(page, 240000);
    assert.ok((await page.textContent("#model-name")).includes(hostileName), "the GGUF's name, as text");
    // The shipped vectors were derived on the real model: refused, and the error names the hostile model.
    assert.ok((await alertText(page)).includes(`cannot be used with ${hostileName}`), await alertText(page));
    // A vector file made to fit this model, with HTML in its metadata: loaded, and its model name shown as text.
    await page.setInputFiles("#file-input", {
      name: `${HOSTILE_NAME}.safetensors`,
      mimeType: "application/octet-stream",
      buffer: withMetadata(vectors, { model_sha256: modelSha, model_name: HOSTILE, concept: HOSTILE }),
    });
    await page.waitForFunction((n) => document.querySelector("#vectors-info").textContent.startsWith(n), `${HOSTILE_NAME}.safetensors`, { timeout: 60000 });
    assert.ok((await page.textContent("#vectors-info")).includes(`made for ${HOSTILE}`));
    await waitReady(page, 60000);
    const r = await run(page, { prompt: HOSTILE, maxTokens: 8, alpha: 0.25 }, { timeout: 120000 });
    assert.ok(r.steered.filter(Boolean).length > 0);
    for (const id of ["#out-raw", "#out-steered"]) assert.ok((await page.textContent(id)).startsWith(HOSTILE), id);
    // A file the engine refuses by a metadata value: the error quotes it, as text.
    await page.setInputFiles("#file-input", {
      name: "bad-format.safetensors",
      mimeType: "application/octet-stream",
      buffer: withMetadata(vectors, { format: HOSTILE }),
    });
    await page.waitForFunction(() => /bad-format\.safetensors cannot be used/.test(document.querySelector("#alert-text").textContent), null, { timeout: 60000 });
    const msg = await alertText(page);
    assert.ok(msg.includes(HOSTILE), msg);
    await waitReady(page, 60000);
    await assertInert(page);
    assert.deepEqual(otherOrigins(b.requests, new URL(srv.url).origin), [], "no request to another origin");
    assert.deepEqual(b.problems, []);
  });
});
