// A pure-JS stand-in for pkg/destein.js (the wasm engine), following docs/wasm-api.md, so that the page's own logic
// can be tested end to end without the wasm build. The e2e tests serve it at /pkg/destein.js through
// scripts/serve.mjs's test overlay; the real engine is tested by the same spec file when pkg/ exists.
//
// Behaviour: "models" are any bytes starting with the GGUF magic; the shape reported is SmolLM2-135M's. Vector files
// are safetensors whose __metadata__ carries the fields of loadVectors() (see tests/e2e/demo.spec.mjs, mockVectors).
// Tokens are a deterministic hash of (seed, step, previous token, α in use), so α = 0 gives the raw row exactly,
// and any change of α changes the tokens from that step on. A prompt containing "[[trap]]" makes step() throw a
// WebAssembly.RuntimeError, as a trapped wasm engine would. `rows: "raw" | "steered"` generates that row alone (the
// page's two-worker layout), with the same tokens as in `rows: "both"`.
// Judge: a stand-in for the tox-block judge: it needs non-empty weights and a JSON vocabulary, and scores a text by
// its share of a few insult words plus a little per word (0.0195 for text without words, like the real one).

const WORDS = [
  "", " the", " a", " people", " always", " learn", " by", " talking", " with", " friends", " and", " reading",
  " books", ".", ",", " It", " is", " not", " easy", " but", " fun", " every", " day", " you", " will", " find",
  " new", " words", " in", " songs", "\n", " really", " good", " practice", " helps", " most", " of", " all", "!",
  " slowly",
];
const INFO = {
  name: "SmolLM2-135M-Instruct (mock engine)",
  architecture: "llama",
  layers: 30,
  heads: 9,
  kvHeads: 3,
  headDim: 64,
  hidden: 576,
  vocab: 49152,
  contextLength: 8192,
};

function hash32(...xs) {
  let h = 0x811c9dc5;
  for (const x of xs) {
    let v = Math.round(x) >>> 0;
    for (let i = 0; i < 4; i++) {
      h ^= v & 0xff;
      h = Math.imul(h, 0x01000193) >>> 0;
      v >>>= 8;
    }
  }
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d) >>> 0;
  h ^= h >>> 12;
  return h >>> 0;
}

function busy(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* emulate compute */
  }
}

export default async function init() {}
// Single-threaded, like pkg/destein.js (www/worker.js falls back to it when asked for threads).
export const threadedBuild = () => false;
export const engineThreads = () => 1;
// Lower than the real engine's, so that a test can see the page take its limits from the engine.
export const limits = () => ({ maxPromptChars: 3000, maxNewTokens: 450, maxAlpha: 2 });

export class Engine {
  constructor(bytes, opts = {}) {
    if (!(bytes instanceof Uint8Array)) throw new Error("expected the model bytes as a Uint8Array");
    const magic = String.fromCharCode(...bytes.subarray(0, 4));
    if (magic !== "GGUF") throw new Error(`not a GGUF file (magic '${magic.replace(/[^ -~]/g, "?")}', expected 'GGUF')`);
    const loadDtype = opts.loadDtype || "q8_0";
    if (!["q8_0", "as-is", "f32"].includes(loadDtype)) throw new Error(`unknown loadDtype '${loadDtype}'`);
    this._info = { ...INFO, loadDtype, sha256: opts.sha256 || "0".repeat(64), loadMs: 5 };
    this._vectors = null;
    this._gen = null;
  }
  info() {
    return { ...this._info };
  }
  loadVectors(bytes) {
    if (bytes.length < 8) throw new Error("not a safetensors file: too short");
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
    if (n <= 0 || n > bytes.length - 8) throw new Error("not a safetensors file: bad header length");
    let header;
    try {
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    } catch {
      throw new Error("not a safetensors file: header is not JSON");
    }
    const m = header.__metadata__ || {};
    if (m.format !== "destein-mock") throw new Error(`not a DeStein vector file (format '${m.format}')`);
    if (m.modelSha256 !== this._info.sha256) {
      throw new Error(`this vector file was made for the model with sha256 ${m.modelSha256}, not ${this._info.sha256}`);
    }
    const layers = Number(m.layers);
    const heads = Number(m.heads);
    const probeAccuracy = [];
    for (let l = 0; l < layers; l++) {
      const row = [];
      for (let h = 0; h < heads; h++) row.push(0.5 + 0.5 * ((hash32(l, h, m.site.length) % 1000) / 1000) * (l / layers));
      probeAccuracy.push(row);
    }
    const layerNorms = Array.from({ length: layers }, (_, l) => 1 + l / 3);
    this._vectors = {
      site: m.site,
      layers,
      heads,
      headDim: Number(m.headDim),
      pairs: Number(m.pairs),
      modelName: m.modelName,
      modelSha256: m.modelSha256,
      recommendedMode: m.recommendedMode,
      recommendedAlpha: Number(m.recommendedAlpha),
      maxAlpha: Number(m.maxAlpha),
      probeAccuracy,
      layerNorms,
    };
    return structuredClone(this._vectors);
  }
  clearVectors() {
    this._vectors = null;
  }
  _checkAlpha(alpha) {
    if (typeof alpha !== "number" || Number.isNaN(alpha) || alpha < 0) throw new Error(`alpha must be ≥ 0, not ${alpha}`);
    if (alpha > 0 && !this._vectors) throw new Error("alpha > 0 needs a vector file (loadVectors)");
    if (this._vectors && alpha > this._vectors.maxAlpha) {
      throw new Error(`alpha ${alpha} is above maxAlpha ${this._vectors.maxAlpha}`);
    }
  }
  start(p) {
    if (typeof p.prompt !== "string" || p.prompt.trim() === "") throw new Error("the prompt is empty");
    const promptTokens = Math.ceil(p.prompt.length / 4) + (p.chat ? 12 : 0);
    if (promptTokens >= this._info.contextLength) throw new Error("the prompt is longer than the context");
    this._checkAlpha(p.alpha);
    if (!["rotate", "headwise", "headwise-reference", "add"].includes(p.mode)) throw new Error(`unknown mode '${p.mode}'`);
    const rows = p.rows ?? "both";
    if (!["both", "raw", "steered"].includes(rows)) throw new Error(`rows must be "both", "raw" or "steered", not "${rows}"`);
    this._gen = {
      rows: rows === "both" ? [0, 1] : rows === "raw" ? [0] : [1],
      p,
      alpha: p.alpha,
      mode: p.mode,
      step: 0,
      prev: [hash32(p.seed, p.prompt.length), hash32(p.seed, p.prompt.length)],
      finished: [false, false],
      trap: p.prompt.includes("[[trap]]"),
    };
    return { promptTokens };
  }
  step() {
    const g = this._gen;
    if (!g) throw new Error("no generation in progress (call start first)");
    busy(g.step === 0 ? 120 : 25);
    if (g.trap && g.step === 2) throw new WebAssembly.RuntimeError("unreachable executed (mock trap)");
    const rows = g.rows.map((r) => {
      if (g.finished[r]) return { text: "", tokenId: null, finished: true, stopReason: "max_tokens", projection: null, alpha: 0 };
      const alpha = r === 0 ? 0 : g.alpha;
      const modeKey = alpha > 0 ? g.mode.length : 0;
      const tokenId = hash32(g.p.seed, g.step, g.prev[r], Math.round(alpha * 1000), modeKey) % WORDS.length;
      g.prev[r] = tokenId;
      const projection = this._vectors ? ((hash32(tokenId, g.step, 7) % 1000) / 1000 - 0.5) * 0.3 : null;
      const finished = g.step + 1 >= g.p.maxNewTokens;
      if (finished) g.finished[r] = true;
      return { text: WORDS[tokenId], tokenId, finished, stopReason: finished ? "max_tokens" : null, projection, alpha };
    });
    g.step++;
    const done = g.rows.every((r) => g.finished[r]);
    if (done) this._gen = null;
    return { done, rows, stepMs: 25 };
  }
  setAlpha(alpha) {
    this._checkAlpha(alpha);
    if (this._gen) this._gen.alpha = alpha;
  }
  setMode(mode) {
    if (!["rotate", "headwise", "headwise-reference", "add"].includes(mode)) throw new Error(`unknown mode '${mode}'`);
    if (this._gen) this._gen.mode = mode;
  }
  stop() {
    this._gen = null;
  }
  free() {}
}

const INSULTS = new Set(["idiot", "idiots", "stupid", "hate", "moron", "dumb", "ugly", "kill"]);

export class Judge {
  constructor(weights, vocab) {
    if (!(weights instanceof Uint8Array) || weights.length < 8) throw new Error("judge: tox-block weights: not a readable safetensors file");
    try {
      JSON.parse(new TextDecoder().decode(vocab));
    } catch (err) {
      throw new Error(`judge: tox-block vocabulary: bad JSON: ${err.message}`);
    }
  }
  score(text) {
    const words = String(text).toLowerCase().match(/[a-z']+/g) || [];
    if (!words.length) return 0.0195;
    const hits = words.filter((w) => INSULTS.has(w)).length;
    // Insult words dominate; the length term makes the score move as words stream in.
    return Math.min(0.999, 0.02 + (hits / words.length) * 4 + (words.length % 10) * 0.005);
  }
  free() {}
}
