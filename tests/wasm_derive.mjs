// The browser engine (pkg/, wasm32 + simd128) and the native CLI derive the same vector file, byte for byte, from the
// same pairs, prefixes, site, count, seed and model: the vector lab and `destein derive` are one implementation.
//
//   node --test tests/wasm_derive.mjs        (after scripts/build-wasm.sh and cargo build --release)
//
// It runs the wasm Engine under Node (the same module the page's worker loads) and the `destein` binary, on a pair
// file written for the test and on the sentiment starter concept, at both sites.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const MODEL = path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf");
const MODEL_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const CLI = path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, "target"), "release", "destein");

async function engine() {
  const mod = await import(path.join(ROOT, "pkg/destein.js"));
  mod.initSync({ module: fs.readFileSync(path.join(ROOT, "pkg/destein_bg.wasm")) });
  return new mod.Engine(new Uint8Array(fs.readFileSync(MODEL)), { sha256: MODEL_SHA });
}

function deriveInWasm(e, request) {
  let p = e.deriveStart(request);
  while (!p.finished) p = e.deriveStep();
  return Buffer.from(e.deriveFinish());
}

function deriveNatively(pairsFile, { site, count, seed, awayPrefix, towardPrefix, concept }) {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "destein-derive-")), "cli.safetensors");
  const args = ["derive", "--model", MODEL, "--pairs", pairsFile, "--site", site, "--count", String(count), "--seed", String(seed), "--out", out];
  if (awayPrefix != null) args.push("--away-prefix", awayPrefix, "--toward-prefix", towardPrefix);
  if (concept) args.push("--concept", concept);
  execFileSync(CLI, args, { stdio: "pipe" });
  return fs.readFileSync(out);
}

test("the wasm engine derives the CLI's vector file, byte for byte", { timeout: 900000 }, async () => {
  const e = await engine();
  const concepts = JSON.parse(fs.readFileSync(path.join(ROOT, "data/concepts/concepts.json"), "utf8"));
  const sentiment = concepts.find((c) => c.id === "sentiment");
  const cases = [
    { file: "data/concepts/sentiment.jsonl", site: "heads", count: 24, seed: 3, awayPrefix: sentiment.away_prefix, towardPrefix: sentiment.toward_prefix, concept: "sentiment" },
    { file: "data/concepts/sentiment.jsonl", site: "attn_out", count: 12, seed: 1, awayPrefix: sentiment.away_prefix, towardPrefix: sentiment.toward_prefix, concept: "sentiment" },
    { file: "data/steering_pairs.jsonl", site: "heads", count: 12, seed: 0 },
  ];
  for (const c of cases) {
    const text = fs.readFileSync(path.join(ROOT, c.file), "utf8");
    const wasm = deriveInWasm(e, { pairsJsonl: text, site: c.site, count: c.count, seed: c.seed, awayPrefix: c.awayPrefix, towardPrefix: c.towardPrefix, concept: c.concept });
    const native = deriveNatively(path.join(ROOT, c.file), c);
    assert.equal(wasm.length, native.length, `${c.file} ${c.site}: same size`);
    assert.ok(wasm.equals(native), `${c.file} ${c.site} × ${c.count}: the wasm file differs from the CLI's`);
  }
  e.free();
});

test("the wasm engine refuses bad pair sets with the CLI's messages", { timeout: 300000 }, async () => {
  const e = await engine();
  const line = (i) => JSON.stringify({ toxic: `Day ${i} was dull.`, nontoxic: `Day ${i} was bright.` });
  const few = Array.from({ length: 5 }, (_, i) => line(i)).join("\n");
  assert.throws(() => e.deriveStart({ pairsJsonl: few, site: "heads" }), /at least 8 pairs/);
  const dup = [...Array.from({ length: 8 }, (_, i) => line(i)), line(2)].join("\n");
  assert.throws(() => e.deriveStart({ pairsJsonl: dup, site: "heads" }), /pairs 3 and 9 are the same pair/);
  assert.throws(() => e.deriveStart({ pairsJsonl: `${line(0)}\n{"toxic": "x"`, site: "heads" }), /line 2/);
  assert.throws(() => e.deriveStart({ pairsJsonl: few, site: "nowhere" }), /unknown site `nowhere`/);
  assert.throws(() => e.deriveStep(), /no derivation is running/);
  const enough = Array.from({ length: 8 }, (_, i) => line(i)).join("\n");
  e.deriveStart({ pairsJsonl: enough, site: "heads" });
  e.deriveStep();
  assert.throws(() => e.deriveFinish(), /not finished \(1 of 38 steps\)/);
  e.deriveCancel();
  assert.throws(() => e.deriveStep(), /no derivation is running/);
  e.free();
});
