// node tests/wasm_kernels.mjs KERNELS.wasm VECTORS.bin [--expect=simd128|--expect=scalar] [--bench]
//
// Driven by tests/wasm_kernels.sh, which builds KERNELS.wasm (src/kernels.rs + a few extern "C"
// exports) and VECTORS.bin (inputs and native Scalar results). Every case runs through the
// wasm simd128 path (when compiled in) and the wasm scalar path; the results must be
// bit-identical to the native ones (any NaN matches any NaN: wasm does not pin NaN payloads).
// --expect fails the run unless simd128 is (or is not) compiled in; --bench also prints per-call
// times for the model's shapes, and the model's matrices streamed from memory as a decoding step reads them (below).
import fs from 'node:fs';

const [wasmPath, vecPath, ...flags] = process.argv.slice(2);
if (!wasmPath || !vecPath) {
  console.error('usage: node tests/wasm_kernels.mjs KERNELS.wasm VECTORS.bin [--expect=simd128|scalar] [--bench]');
  process.exit(2);
}
const bench = flags.includes('--bench');
const expect = flags.find(f => f.startsWith('--expect='))?.slice('--expect='.length);
const { instance } = await WebAssembly.instantiate(fs.readFileSync(wasmPath), {});
const e = instance.exports;
const buf = fs.readFileSync(vecPath);
const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
const isas = e.simd128_available() === 1 ? [2, 0] : [0];
if (expect && (expect === 'simd128') !== isas.includes(2)) {
  console.error(`expected a ${expect} build, but simd128 is ${isas.includes(2) ? '' : 'not '}compiled in`);
  process.exit(1);
}
const isaName = isa => (isa === 2 ? 'simd128' : 'scalar');
const isNaN32 = u => (u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0;

let at = 0, cases = 0, failures = 0;
const timings = [];
while (at < buf.length) {
  const [fmt, o, i, rows, n] = [0, 1, 2, 3, 4].map(k => dv.getUint32(at + 4 * k, true));
  at += 20;
  const w = buf.subarray(at, (at += n));
  const x = buf.subarray(at, (at += 4 * rows * i));
  const want = new Uint32Array(buf.buffer.slice(buf.byteOffset + at, buf.byteOffset + (at += 4 * rows * o)));
  const name = `${fmt ? 'Q8_0' : 'Q4_1'} ${i}->${o} rows ${rows}`;

  const wp = e.alloc(n), xp = e.alloc(x.length), op = e.alloc(4 * rows * o);
  new Uint8Array(e.memory.buffer, wp, n).set(w);
  new Uint8Array(e.memory.buffer, xp, x.length).set(x);
  const m = e.make_matrix(fmt, wp, n, o, i);
  if (m === 0) throw new Error(`${name}: make_matrix failed`);
  for (const isa of isas) {
    if (e.matmul_matrix(m, xp, rows, op, isa, 1) !== 0) throw new Error(`${name}: matmul failed`);
    const got = new Uint32Array(e.memory.buffer, op, rows * o); // (re-viewed: memory may grow)
    const k = got.findIndex((u, j) => u !== want[j] && !(isNaN32(u) && isNaN32(want[j])));
    if (k >= 0) {
      failures++;
      const f = v => new Float32Array(new Uint32Array([v]).buffer)[0];
      console.log(`MISMATCH ${name} ${isaName(isa)}: [${k}] ${f(got[k])} vs native ${f(want[k])}`);
    }
    if (bench && [1, 2, 42].includes(rows) && o >= 192 && o !== 4104) {
      const reps = Math.max(1, Math.round(2e7 / (o * i * rows)));
      const t = [];
      for (let s = 0; s < 9; s++) {
        const t0 = process.hrtime.bigint();
        e.matmul_matrix(m, xp, rows, op, isa, reps);
        t.push(Number(process.hrtime.bigint() - t0) / 1e3 / reps);
      }
      timings.push(`${name.padEnd(22)} ${isaName(isa).padEnd(8)} ${Math.min(...t).toFixed(1).padStart(8)} µs (min of 9)`);
    }
  }
  e.free_matrix(m);
  e.dealloc(wp, n);
  e.dealloc(xp, x.length);
  e.dealloc(op, 4 * rows * o);
  cases++;
}
for (const t of timings) console.log(t);
if (bench && isas.includes(2)) streamed();
console.log(`${cases} cases, wasm paths [${isas.map(isaName)}]: ${failures ? failures + ' MISMATCHES' : 'all bit-identical to native scalar'}`);
process.exit(failures ? 1 : 0);

// A decoding step's products as the engine meets them, simd128 path, one and two rows: 30 layers of distinct Q4_1
// matrices (q, k, v, o, gate, up, down: 66 MB, more than the CPU's caches), then a Q8_0 lm-head of 49,248 × 576 (12
// copies of the 4104-row case, 30 MB) read right after them. Medians of 21 passes, the rows alternating.
function streamed() {
  const ggml = {};
  for (let at = 0; at < buf.length; ) {
    const [fmt, o, i, rows, n] = [0, 1, 2, 3, 4].map(k => dv.getUint32(at + 4 * k, true));
    ggml[`${fmt}:${o}x${i}`] ??= buf.subarray(at + 20, at + 20 + n);
    at += 20 + n + 4 * rows * i + 4 * rows * o;
  }
  const matrix = (fmt, w, copies, o, i) => {
    const wp = e.alloc(w.length * copies);
    for (let k = 0; k < copies; k++) new Uint8Array(e.memory.buffer, wp + k * w.length, w.length).set(w);
    const m = e.make_matrix(fmt, wp, w.length * copies, o * copies, i);
    e.dealloc(wp, w.length * copies);
    return m;
  };
  const shapes = [[576, 576], [192, 576], [192, 576], [576, 576], [1536, 576], [1536, 576], [576, 1536]];
  const layers = [];
  for (let l = 0; l < 30; l++) for (const [o, i] of shapes) layers.push(matrix(0, ggml[`0:${o}x${i}`], 1, o, i));
  const lmHead = matrix(1, ggml['1:4104x576'], 12, 4104, 576);
  const xp = e.alloc(4 * 2 * 1536), op = e.alloc(4 * 2 * 4104 * 12);
  const x = new Float32Array(e.memory.buffer, xp, 2 * 1536);
  for (let k = 0; k < x.length; k++) x[k] = Math.sin(k);
  const ms = { layers: { 1: [], 2: [] }, lmHead: { 1: [], 2: [] } };
  const time = f => { const t0 = process.hrtime.bigint(); f(); return Number(process.hrtime.bigint() - t0) / 1e6; };
  for (let pass = 0; pass < 26; pass++) {
    for (const rows of pass % 2 ? [2, 1] : [1, 2]) {
      const layersMs = time(() => layers.forEach(m => e.matmul_matrix(m, xp, rows, op, 2, 1)));
      const lmHeadMs = time(() => e.matmul_matrix(lmHead, xp, rows, op, 2, 1));
      if (pass < 5) continue; // the first passes warm up
      ms.layers[rows].push(layersMs);
      ms.lmHead[rows].push(lmHeadMs);
    }
  }
  const med = v => v.sort((a, b) => a - b)[v.length >> 1].toFixed(2);
  console.log(`streamed, layers Q4_1 (30 × 7 matrices): rows 1 ${med(ms.layers[1])} ms, rows 2 ${med(ms.layers[2])} ms per pass`);
  console.log(`streamed, lm-head Q8_0 after the layers: rows 1 ${med(ms.lmHead[1])} ms, rows 2 ${med(ms.lmHead[2])} ms`);
  [...layers, lmHead].forEach(m => e.free_matrix(m));
}
