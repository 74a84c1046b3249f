#!/usr/bin/env node
// Loads the model into the wasm engine under Node and prints the wasm memory it takes (the engine's
// footprint in one browser worker), plus the load time. Needs pkg/ (scripts/build-wasm.sh) and the model.
//   node scripts/wasm-memory.mjs [model.gguf] [as-is|q8_0|f32]
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { initSync, Engine } = await import(path.join(root, "pkg/destein.js"));
const wasm = initSync({ module: readFileSync(path.join(root, "pkg/destein_bg.wasm")) });
const modelPath = process.argv[2] || path.join(root, "models/SmolLM2-135M-Instruct.Q4_1.gguf");
const loadDtype = process.argv[3] || "as-is";
const bytes = new Uint8Array(readFileSync(modelPath));
const before = wasm.memory.buffer.byteLength;
const engine = new Engine(bytes, { loadDtype });
const info = engine.info();
console.log(`model file: ${(bytes.length / 1e6).toFixed(1)} MB; load dtype ${info.loadDtype}; loaded in ${info.loadMs.toFixed(0)} ms`);
console.log(`wasm memory: ${(before / 1e6).toFixed(0)} MB before, ${(wasm.memory.buffer.byteLength / 1e6).toFixed(0)} MB after loading`);
