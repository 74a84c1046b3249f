// @ts-check
// The page's settings: its URL parameters, where its files are, and how its engines are laid out.

const params = new URLSearchParams(location.search);

/** ?debug=1: globalThis.destein gets the debugging API (www/main.js). */
export const DEBUG = params.get("debug") === "1";
/** The shipped vector files (?vectors=DIR/ points elsewhere, e.g. for tests). */
export const VECTOR_DIR = params.get("vectors") || "www/vectors/";
/** @type {Record<string, string>} the vector file of each steering site */
export const VECTOR_FILES = {
  heads: "smollm2-135m.heads.safetensors",
  attn_out: "smollm2-135m.attn_out.safetensors",
};
/** The toxicity judge's files (same origin; ?judges=DIR/ points elsewhere, e.g. for tests). */
export const JUDGE_DIR = params.get("judges") || "data/judges/";
export const JUDGE_FILES = { weights: "tox_block.safetensors", vocab: "tox_block_vocab.json" };
export const MODES = ["rotate", "headwise", "headwise-reference", "add"];

// The panes run in one of two layouts (scripts/bench-browser.mjs and scripts/bench-threads.mjs measure them; see README
// "Browser performance"):
//   pair:  two workers, one Engine each: worker 0 decodes the raw row, worker 1 the steered row, in parallel, with
//          a core each. It costs a second engine (about 120 MB of wasm memory) and a little more loading.
//   batch: one worker decodes both rows as a batch of two: half the memory. When the page is cross-origin isolated
//          (SharedArrayBuffer), its engine is the threaded build and splits each matrix product over THREADS threads
//          (one per core, up to 4): 1.25–1.45× the single-threaded batch speed per pane on two cores.
// Default: pair on two or more cores with 4 GB or more, else batch (threaded when isolated). On two cores the
// threaded batch measured 0.91–1.14× pair with the workers alone (run medians, several days) and at most even with
// it in the page (47.6 vs 46.4 / 50.1 tok/s per pane in the latest run, README "Threads and relaxed SIMD"), so pair
// stays the default there; more cores (pair with threads in each worker) could not be measured on the project's
// machines. ?workers=1 forces batch, ?workers=2 pair;
// ?threads=N sets the batch engine's threads (1: the single-threaded build).
const CORES = navigator.hardwareConcurrency || 1;
export const ISOLATED = globalThis.crossOriginIsolated === true;
/** @type {"pair"|"batch"} */
export const LAYOUT = (() => {
  const w = params.get("workers");
  if (w === "1") return "batch";
  if (w === "2") return "pair";
  const memoryGb = /** @type {{deviceMemory?: number}} */ (navigator).deviceMemory ?? Infinity; // Chromium only, coarse (0.25 … 8)
  return CORES >= 2 && memoryGb >= 4 ? "pair" : "batch";
})();
/** The threads of the batch engine's matrix products. */
export const THREADS = (() => {
  if (LAYOUT !== "batch") return 1;
  const t = Number(params.get("threads"));
  if (Number.isInteger(t) && t >= 1) return Math.min(t, 16);
  return ISOLATED ? Math.min(CORES, 4) : 1;
})();
/**
 * Which engine build's SIMD the workers may use: "relaxed" (default) loads the relaxed-SIMD build (pkg/relaxed/, and
 * the threaded build, which also has it) when the browser validates relaxed SIMD; "baseline" keeps to simd128 (pkg/).
 * @type {"relaxed"|"baseline"}
 */
export const SIMD = params.get("simd") === "baseline" ? "baseline" : "relaxed";
/**
 * What each worker decodes (Engine.start's `rows`), and which panes its step rows fill.
 * @type {{rows: "both"|"raw"|"steered", panes: number[]}[]}
 */
export const PARTS = LAYOUT === "pair" ? [{ rows: "raw", panes: [0] }, { rows: "steered", panes: [1] }] : [{ rows: "both", panes: [0, 1] }];
/** The worker that decodes the steered pane: α and mode changes go there. */
export const STEERED_WORKER = PARTS.findIndex((p) => p.panes.includes(1));

/**
 * @typedef {{kind: "url", url: string, expectedSha256: string|null, label: string, crossOrigin: boolean,
 *   error?: string} | {kind: "file", file: File, label: string}} ModelSource
 */

/**
 * The model to load: ?model=URL (&sha256=HEX), else the site's default (destein-config.json, readSiteConfig).
 * @param {{url: string, sha256: string, label: string}} defaultModel
 * @returns {ModelSource & {kind: "url"}}
 */
export function modelSourceFromParams(defaultModel) {
  const url = params.get("model");
  const sha = (params.get("sha256") || "").trim().toLowerCase();
  const defaultUrl = new URL(defaultModel.url, location.href);
  /** @type {(abs: URL, expectedSha256: string|null, label: string) => ModelSource & {kind: "url"}} */
  const source = (abs, expectedSha256, label) => ({
    kind: "url",
    url: abs.href,
    expectedSha256,
    label,
    crossOrigin: abs.origin !== location.origin,
  });
  if (sha && !/^[0-9a-f]{64}$/.test(sha)) {
    return {
      error: `The sha256 parameter '${sha}' is not 64 hex digits; it was ignored.`,
      ...source(defaultUrl, defaultModel.sha256, defaultModel.label),
    };
  }
  if (!url) return source(defaultUrl, sha || defaultModel.sha256, defaultModel.label);
  const abs = new URL(url, location.href);
  const isDefault = abs.href === defaultUrl.href;
  return source(
    abs,
    sha || (isDefault ? defaultModel.sha256 : null),
    isDefault ? defaultModel.label : decodeURIComponent(abs.pathname.split("/").pop() || abs.href),
  );
}

/**
 * A User Timing mark ("destein:<name>") of the load or of a run, so that tools (scripts/bench-browser.mjs, the
 * browser's performance panel) can read what the page experienced: performance.getEntriesByType("mark").
 * @param {string} name
 * @param {unknown} [detail]
 */
export function mark(name, detail) {
  try {
    performance.mark(`destein:${name}`, detail === undefined ? undefined : { detail });
  } catch {
    /* User Timing unavailable */
  }
}
