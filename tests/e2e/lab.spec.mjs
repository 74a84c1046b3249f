// End-to-end tests of the vector lab (www/lab.js) with the real engine and model in real Chromium: derive a vector
// from edited pairs in the page, check it equals `destein derive`'s output for the same inputs byte for byte,
// download it, open it again, steer with it, and combine it with the detox vector; bad input keeps what the reader
// typed. Needs what demo.spec.mjs's real-engine suite needs, plus the native `destein` binary (cargo build --release).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startServer } from "../../scripts/bench-common.mjs";
import { ROOT, ARTIFACTS, MODEL_FILE, MODEL_SHA, VECTOR_FILES, browserMissing, launchBrowser, waitReady, run, ids } from "./helpers.mjs";

const CLI = path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, "target"), "release", "destein");

const missing = (() => {
  if (process.env.DESTEIN_E2E_REAL === "0") return "DESTEIN_E2E_REAL=0";
  if (browserMissing) return browserMissing;
  const need = ["pkg/destein.js", "pkg/destein_bg.wasm", MODEL_FILE, VECTOR_FILES[0], "data/concepts/concepts.json"];
  const gone = need.filter((p) => !fs.existsSync(path.join(ROOT, p)));
  if (!fs.existsSync(CLI)) gone.push(`${CLI} (cargo build --release)`);
  return gone.length ? `missing ${gone.join(", ")}` : false;
})();
if (missing) console.log(`# vector-lab e2e tests skipped: ${missing}`);
if (missing && process.env.DESTEIN_E2E_REQUIRE_REAL === "1") {
  test("the vector-lab suite can run", () => assert.fail(`the vector-lab e2e tests cannot run: ${missing}`));
}

/** Read a destein vector file: metadata and tensor shapes. */
function readVectors(buf) {
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString("utf8"));
  return { meta: header.__metadata__, direction: header.direction.shape, accuracy: header.probe_accuracy.shape };
}

async function labError(page) {
  return page.evaluate(() => (document.querySelector("#lab-error").hidden ? "" : document.querySelector("#lab-error").textContent));
}

async function pairCount(page) {
  return page.locator("#lab-rows tr").count();
}

async function saveDownload(page, click, dir) {
  const [download] = await Promise.all([page.waitForEvent("download"), click()]);
  const file = path.join(dir, download.suggestedFilename());
  await download.saveAs(file);
  return file;
}

async function deriveInPage(page, timeout = 300000) {
  await page.click("#lab-derive");
  await page.waitForFunction(
    () => /^Derived /.test(document.querySelector("#lab-progress-text").textContent) || !document.querySelector("#lab-error").hidden,
    null,
    { timeout },
  );
  assert.equal(await labError(page), "", "the derivation reported no error");
}

describe("the vector lab with the real engine", { skip: missing || false }, () => {
  let srv;
  let b;
  let dir;
  const T = 600000;

  before(async () => {
    srv = await startServer({});
    b = await launchBrowser();
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "destein-lab-"));
    await b.page.goto(srv.url);
    await waitReady(b.page, 300000);
  });
  after(async () => {
    await b?.close();
    await srv?.close();
    if (dir && !process.env.KEEP_LAB_DIR) await fsp.rm(dir, { recursive: true, force: true });
  });

  test("edit a pair, derive in the page: the file equals the CLI's; download, open, steer, combine", { timeout: T }, async () => {
    const { page } = b;
    await page.selectOption("#lab-concept", "sentiment");
    await page.waitForFunction(() => document.querySelectorAll("#lab-rows tr").length >= 40);
    const first = page.locator('#lab-rows textarea[data-index="0"][data-side="toward"]');
    await first.fill("The trip was a truly wonderful use of a long weekend.");
    await page.selectOption("#lab-site", "heads");
    await page.fill("#lab-count", "60"); // all of them: the edited pair is certainly read
    await page.fill("#lab-seed", "3");
    await deriveInPage(page);

    // The cosines between concepts include the shipped starter vectors ("how close are toxic and negative?").
    await page.waitForFunction(() => /detox \(shipped\)/.test(document.querySelector("#lab-cosines").textContent) && /sentiment \(shipped\)/.test(document.querySelector("#lab-cosines").textContent));
    const cos = await page.$$eval("#lab-cosines tbody td", (tds) => tds.map((t) => t.textContent).filter((t) => t !== "—").map(Number));
    assert.ok(cos.length >= 9 && cos.every((c) => c >= -1 && c <= 1), `cosines in [-1, 1]: ${cos}`);
    const detoxVsSentiment = await page.$eval("#lab-cosines tbody tr:first-child td:nth-of-type(2)", (td) => td.textContent);
    assert.equal(detoxVsSentiment, "0.47", "toxic vs negative, as the README's table says");
    assert.ok(await page.locator("#lab-heatmap td.cell").count() === 270, "the new vector's heat map has 30 × 9 cells");
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.locator("#lab").screenshot({ path: path.join(ARTIFACTS, "lab.png") });

    const pageFile = await saveDownload(page, () => page.locator("#lab-vectors button", { hasText: "Download" }).first().click(), dir);
    const pairsFile = await saveDownload(page, () => page.click("#lab-export"), dir);
    assert.match(fs.readFileSync(pairsFile, "utf8"), /truly wonderful use of a long weekend/);

    const v = readVectors(fs.readFileSync(pageFile));
    assert.equal(v.meta.concept, "sentiment");
    assert.equal(v.meta.site, "heads");
    assert.equal(v.meta.pairs, "60");
    assert.equal(v.meta.recommended_mode, "add", "the starter concept's measured recommendation");
    assert.equal(v.meta.seed, "3");
    assert.equal(v.meta.model_sha256, MODEL_SHA);
    assert.deepEqual(v.direction, [30, 9, 64]);
    assert.deepEqual(v.accuracy, [30, 9]);

    // The same inputs through `destein derive`.
    const concepts = JSON.parse(fs.readFileSync(path.join(ROOT, "data/concepts/concepts.json"), "utf8"));
    const sentiment = concepts.find((c) => c.id === "sentiment");
    const cliFile = path.join(dir, "cli.safetensors");
    execFileSync(CLI, ["derive", "--model", path.join(ROOT, MODEL_FILE), "--pairs", pairsFile, "--site", "heads", "--count", "60", "--seed", "3",
      "--concept", "sentiment", "--away-prefix", sentiment.away_prefix, "--toward-prefix", sentiment.toward_prefix,
      "--recommended-mode", sentiment.recommended.heads.mode, "--recommended-alpha", String(sentiment.recommended.heads.alpha), "--out", cliFile], { stdio: "pipe" });
    assert.ok(fs.readFileSync(cliFile).equals(fs.readFileSync(pageFile)), "the page's vector file is byte-identical to the CLI's");

    // Open the downloaded file again, and steer with it.
    await page.setInputFiles("#lab-upload", pageFile);
    const reopened = path.basename(pageFile, ".safetensors");
    await page.waitForFunction((name) => [...document.querySelectorAll("#lab-vectors .lab-vector-name")].some((n) => n.textContent === name), reopened);
    await page.locator("#lab-vectors li", { hasText: reopened }).locator("button", { hasText: "Steer with it" }).click();
    await page.waitForFunction((name) => document.querySelector("#vectors-info").textContent.includes(name), reopened, { timeout: 60000 });

    const prompt = "My day at the office was";
    const zero = await run(page, { prompt, alpha: 0, maxTokens: 12, seed: 5 }, { timeout: T });
    assert.deepEqual(ids(zero.steered), ids(zero.raw), "α = 0: identical panes");
    const steered = await run(page, { prompt, alpha: 0.6, maxTokens: 12, seed: 5 }, { timeout: T });
    assert.deepEqual(ids(steered.raw), ids(zero.raw));
    assert.notDeepEqual(ids(steered.steered), ids(steered.raw), "α > 0: the steered pane differs");

    // Combine it with the detox vector: the main file goes back to the detox heads file, the lab vector is added.
    await page.selectOption("#site", "attn_out");
    await page.waitForFunction(() => /attn_out/.test(document.querySelector("#vectors-info").textContent), null, { timeout: 60000 });
    await page.selectOption("#site", "heads");
    await page.waitForFunction(() => /smollm2-135m\.heads\.safetensors/.test(document.querySelector("#vectors-info").textContent), null, { timeout: 60000 });
    await page.locator("#lab-vectors li", { hasText: reopened }).locator("button", { hasText: "Add to the steering" }).click();
    await page.waitForSelector("#extra-alpha-1");
    const setExtra = (v) =>
      page.evaluate((x) => {
        const a = document.querySelector("#extra-alpha-1");
        a.value = String(x);
        a.dispatchEvent(new Event("input", { bubbles: true }));
      }, v);
    await setExtra(0);
    const allZero = await run(page, { prompt, alpha: 0, maxTokens: 12, seed: 5 }, { timeout: T });
    assert.deepEqual(ids(allZero.steered), ids(allZero.raw), "α = 0 on both vectors: identical panes");
    const detoxOnly = await run(page, { prompt, alpha: 0.3, maxTokens: 12, seed: 5 }, { timeout: T });
    await setExtra(0.6);
    assert.match(await page.textContent("#formula"), /0\.30·n\(z\) \+ 0\.60·n\(z2\)/, "the method panel shows the combined formula");
    const both = await run(page, { prompt, alpha: 0.3, maxTokens: 12, seed: 5 }, { timeout: T });
    assert.deepEqual(ids(both.raw), ids(allZero.raw));
    assert.notDeepEqual(ids(both.steered), ids(detoxOnly.steered), "the added vector changes the steered pane");
    await page.click('#extra-vectors button[data-remove-slot="1"]');
    await page.waitForFunction(() => !document.querySelector("#extra-alpha-1"));
    const again = await run(page, { prompt, alpha: 0.3, maxTokens: 12, seed: 5 }, { timeout: T });
    assert.deepEqual(ids(again.steered), ids(detoxOnly.steered), "removing it gives the detox-only continuation again");
    assert.deepEqual(b.problems, []);
  });

  test("bad input: too few pairs, duplicates, malformed paste, a vector for another model; pairs survive a reload", { timeout: T }, async () => {
    const { page } = b;
    await page.selectOption("#lab-concept", "custom");
    await page.waitForFunction(() => document.querySelector("#lab-concept").value === "custom");
    const start = await pairCount(page);
    await page.evaluate(() => (document.querySelector(".lab-paste").open = true));
    const lines = ["Rain again today.\tSun again today.", "The food was cold.\tThe food was warm.", "We lost the match.\tWe won the match."];
    await page.fill("#lab-paste-text", lines.join("\n"));
    await page.click("#lab-paste-add");
    assert.equal(await pairCount(page), start + 3);

    // A malformed paste adds nothing and names the line.
    await page.fill("#lab-paste-text", `${lines[0]}\n{"toxic": "half a line`);
    await page.click("#lab-paste-add");
    assert.match(await labError(page), /line 2: not valid JSON/);
    assert.equal(await pairCount(page), start + 3, "nothing was added");

    assert.equal(start, 0, "a fresh profile starts your own concept empty");
    await page.click("#lab-derive");
    await page.waitForFunction(() => !document.querySelector("#lab-error").hidden);
    assert.match(await labError(page), /at least 8 pairs/);
    // A duplicate pair is named.
    await page.fill("#lab-paste-text", Array(6).fill(0).map((_, i) => `Line ${i} is dull.\tLine ${i} is bright.`).concat([lines[0]]).join("\n"));
    await page.click("#lab-paste-add");
    await page.click("#lab-derive");
    await page.waitForFunction(() => /same pair/.test(document.querySelector("#lab-error").textContent));
    assert.match(await labError(page), /pairs 1 and 10 are the same pair/);
    const n = await pairCount(page);

    // A vector file for another model is refused by name; the list keeps what it had.
    const listed = await page.locator("#lab-vectors li").count();
    const other = fs.readFileSync(VECTOR_FILES[0]);
    const patched = Buffer.from(other.toString("latin1").replace(MODEL_SHA, "0".repeat(64)), "latin1");
    const otherFile = path.join(dir, "other-model.safetensors");
    fs.writeFileSync(otherFile, patched);
    await page.setInputFiles("#lab-upload", otherFile);
    await page.waitForFunction(() => /not for the loaded/.test(document.querySelector("#lab-error").textContent));
    assert.equal(await page.locator("#lab-vectors li").count(), listed);

    // Everything typed survives a reload.
    await page.reload();
    await waitReady(page, 300000);
    await page.waitForFunction((count) => document.querySelectorAll("#lab-rows tr").length === count, n);
    assert.equal(await page.inputValue("#lab-concept"), "custom");
    const aways = await page.$$eval('#lab-rows textarea[data-side="away"]', (t) => t.map((x) => x.value));
    assert.ok(aways.includes("Rain again today.") && aways.includes("Line 5 is dull."), "the pasted pairs are still there");
    await page.selectOption("#lab-concept", "sentiment");
    await page.waitForFunction(() => /truly wonderful use of a long weekend/.test(document.querySelector('#lab-rows textarea[data-index="0"][data-side="toward"]')?.value || ""));
  });

  test("cancel stops a derivation between two steps and keeps everything as it was", { timeout: T }, async () => {
    const { page } = b;
    await page.selectOption("#lab-concept", "detox");
    await page.waitForFunction(() => document.querySelectorAll("#lab-rows tr").length >= 200);
    await page.fill("#lab-count", "200");
    const listed = await page.locator("#lab-vectors li").count();
    await page.click("#lab-derive");
    await page.waitForFunction(() => Number(document.querySelector("#lab-progress").value) >= 3);
    await page.click("#lab-cancel");
    await page.waitForFunction(() => /^Cancelled/.test(document.querySelector("#lab-progress-text").textContent));
    assert.equal(await labError(page), "");
    assert.equal(await page.locator("#lab-vectors li").count(), listed, "no vector was added");
    assert.ok(!(await page.isDisabled("#lab-derive")), "Derive is available again");
    assert.ok(await page.isDisabled("#lab-cancel"));
    // The engine is usable right away: a generation runs.
    const again = await run(page, { prompt: "My day at the office was", alpha: 0, maxTokens: 6, seed: 5 }, { timeout: T });
    assert.deepEqual(ids(again.steered), ids(again.raw));
    assert.deepEqual(b.problems, []);
  });
});
