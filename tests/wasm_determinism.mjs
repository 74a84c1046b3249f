// Determinism of the browser engine: under Node, the wasm Engine (pkg/, the module the page's worker loads) given the
// same model, prompt, seed and α schedule (changed mid-run, mode too) writes the same tokens on every run, in two
// engine instances and twice in the same one, at temperature 1.
//
//   node --test tests/wasm_determinism.mjs        (after scripts/build-wasm.sh and scripts/fetch-model.sh)
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const MODEL_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

const mod = await import(path.join(ROOT, "pkg/destein.js"));
mod.initSync({ module: fs.readFileSync(path.join(ROOT, "pkg/destein_bg.wasm")) });
const model = new Uint8Array(fs.readFileSync(path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf")));
const vectors = fs.readFileSync(path.join(ROOT, "www/vectors/smollm2-135m.heads.safetensors"));

function newEngine() {
  const e = new mod.Engine(model, { sha256: MODEL_SHA });
  e.loadVectors(vectors);
  return e;
}

/** One run with the schedule: α 0.2 rotate, then 0.5 from step 4, then headwise 0.3 from step 9. */
function run(e) {
  e.start({ prompt: "My neighbour knocked on the door this morning and", chat: false, maxNewTokens: 16, temperature: 1,
    topP: 0.9, topK: 0, seed: 5, alpha: 0.2, mode: "rotate" });
  const rows = [[], []];
  for (let step = 0; ; step++) {
    if (step === 4) e.setAlpha(0.5);
    if (step === 9) {
      e.setAlpha(0.3);
      e.setMode("headwise");
    }
    const out = e.step();
    out.rows.forEach((r, i) => r?.tokenId != null && rows[i].push(r.tokenId));
    if (out.done) return rows;
  }
}

test("same model, prompt, seed and α schedule: the same tokens on every run", () => {
  const a = newEngine();
  const first = run(a);
  assert.equal(first[0].length, 16);
  assert.notDeepEqual(first[1], first[0], "the schedule steers the second row");
  assert.deepEqual(run(a), first, "the same engine, again");
  const b = newEngine();
  assert.deepEqual(run(b), first, "a second engine");
  a.free();
  b.free();
});
