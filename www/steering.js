// @ts-check
// What the steered pane steers with: the main vector file (a site's shipped file, a dropped one or the lab's), the
// files added to steer together with it (slots 1 and 2 of the engine, each with its own α: the combined formulas
// are this project's generalisation, see src/steering.rs), and the α, mode and scope controls.
import { MODES, STEERED_WORKER, VECTOR_DIR, VECTOR_FILES } from "./config.js";
import { byId, h } from "./dom.js";
import { call, callAll, engineCount } from "./engine-client.js";
import { fixed, signed } from "./format.js";
import { initFormula, showFormula } from "./formula.js";
import { renderHeatmap } from "./heatmap.js";
import { REQUEST } from "./protocol.js";
import { clearError, setStatus, showError } from "./status.js";

const MAX_VECTORS = 3;

const el = {
  alpha: /** @type {HTMLInputElement} */ (byId("alpha")),
  alphaValue: byId("alpha-value"),
  extraVectors: byId("extra-vectors"),
  extraHint: byId("extra-hint"),
  site: /** @type {HTMLSelectElement} */ (byId("site")),
  steerPrompt: /** @type {HTMLInputElement} */ (byId("steer-prompt")),
  vectorsInfo: byId("vectors-info"),
  legendMid: byId("legend-mid"),
};

/** @typedef {{meta: import("./protocol.js").VectorsInfo, bytes: Uint8Array, label: string, alpha: number}} AddedVector */

const vectors = {
  /** @type {import("./protocol.js").VectorsInfo|null} the main file as the engine has it (null: steering off) */
  meta: null,
  /** @type {Uint8Array|null} the main file's bytes (kept for a worker restart, and while the model reloads) */
  bytes: null,
  /** @type {string|null} */
  label: null,
  /** @type {AddedVector[]} the files added to steer together with the main one (slots 1, 2) */
  extras: [],
  /** The main file's neutral read-out: the centre of the panes' colour scale. */
  baseline: 0,
};

/**
 * @typedef {object} SteeringHooks
 * @property {() => Promise<void>} stopRun  stop the run in progress before the engine's vectors change
 * @property {() => string|undefined} modelName  the loaded model's
 * @property {(alpha: number, slot: number) => void} onRelease  an α slider (slot 0: the main file's) or the scope
 *   was let go at this α
 */

/** @type {SteeringHooks} */
let hooks;

/** Wire the steering controls. */
export function initSteering(/** @type {SteeringHooks} */ h) {
  hooks = h;
  initFormula(() => ({ mode: currentMode(), alpha: currentAlpha() }));
  el.alpha.addEventListener("input", () => {
    updateAlphaUI();
    if (!vectors.meta) return;
    // Applies from the next token of a running generation.
    call(REQUEST.setAlpha, { alpha: Number(el.alpha.value) }, [], STEERED_WORKER).catch((err) =>
      showError(`α was not applied: ${err.message}`),
    );
  });
  el.alpha.addEventListener("change", () => {
    if (vectors.meta) hooks.onRelease(Number(el.alpha.value), 0);
  });
  // The prompt is read once, at the start: a change of scope re-steers the whole text (when that is on), or applies
  // to the next run.
  el.steerPrompt.addEventListener("change", () => {
    if (vectors.meta) hooks.onRelease(Number(el.alpha.value), 0);
  });
  for (const r of document.querySelectorAll('input[name="mode"]')) {
    r.addEventListener("change", () => {
      updateFormula();
      call(REQUEST.setMode, { mode: currentMode() }, [], STEERED_WORKER).catch((err) =>
        showError(`The mode was not applied: ${err.message}`),
      );
    });
  }
  initExtraControls();
}

// --- what the controls say -------------------------------------------------------------------------------------

export function currentMode() {
  return /** @type {HTMLInputElement|null} */ (document.querySelector('input[name="mode"]:checked'))?.value || "rotate";
}

function setMode(/** @type {string} */ mode) {
  const r = /** @type {HTMLInputElement|null} */ (document.querySelector(`input[name="mode"][value="${mode}"]`));
  if (r) r.checked = true;
  if (mode === "headwise-reference") /** @type {HTMLDetailsElement} */ (document.querySelector("details.advanced")).open = true;
  updateFormula();
}

/** The main file's α (0: steering off). */
export function currentAlpha() {
  return vectors.meta ? Number(el.alpha.value) : 0;
}

/** Whether a main vector file steers. */
export const steering = () => !!vectors.meta;
/** Whether the prompt is steered too (else only the new tokens). */
export const steersPrompt = () => el.steerPrompt.checked;
/** The α of each added file. */
export const addedAlphas = () => vectors.extras.map((x) => x.alpha);
/** The site picked in the controls. */
export const selectedSite = () => el.site.value;
/** The centre of the panes' colour scale: the main file's neutral read-out (0 when none is known). */
export const readoutBaseline = () => vectors.baseline;
/** The main file's name. */
export const vectorsLabel = () => vectors.label;
/** The main file as the page keeps it (null: none). */
export const mainVectors = () => (vectors.bytes ? { bytes: vectors.bytes, label: vectors.label } : null);
/** The steering state, for the debugging API. */
export const steeringState = () => ({ ...vectors, extras: [...vectors.extras] });

/** "Steering with a.safetensors + b." */
/** Say which files steer (the main one and any added). */
export function steeringStatus() {
  setStatus(`Steering with ${[vectors.label, ...vectors.extras.map((x) => x.label)].join(" + ")}.`, "ok");
}

export function updateAlphaUI() {
  const a = currentAlpha();
  el.alphaValue.textContent = fixed(a);
  el.alpha.setAttribute("aria-valuetext", `α ${fixed(a)}${vectors.meta ? "" : " (steering off)"}`);
  updateFormula();
}

function updateFormula() {
  showFormula({ mode: currentMode(), alpha: currentAlpha(), steering: !!vectors.meta, label: vectors.label, extras: vectors.extras });
}

// --- the main vector file --------------------------------------------------------------------------------------

/** Steer with the shipped vector file of `site`. */
export async function loadVectorsForSite(/** @type {string} */ site) {
  const file = VECTOR_FILES[site];
  const url = new URL(VECTOR_DIR + file, location.href).href;
  let bytes;
  setStatus(`Loading the ${site} vectors…`);
  try {
    const resp = await fetch(url, { cache: "no-cache" });
    if (!resp.ok) throw new Error(`the server answered HTTP ${resp.status}`);
    bytes = new Uint8Array(await resp.arrayBuffer());
  } catch (err) {
    vectorsFailed(`Could not fetch the vector file ${VECTOR_DIR + file}: ${err.message}.`);
    return false;
  }
  return loadVectorBytes(bytes, `${file}`, { fallback: true });
}

/**
 * Steer with this vector file; whether it worked. `fallback`: on failure, go back to the file in use before.
 * `keepControls`: keep the α, mode and scope as they are (else the file's recommendations).
 * @param {Uint8Array} bytes
 * @param {string} label
 */
export async function loadVectorBytes(bytes, label, { fallback = true, keepControls = false } = {}) {
  const previous = vectors.meta ? { bytes: vectors.bytes, label: vectors.label } : null;
  let meta;
  try {
    // Send copies: the page keeps the bytes for a worker restart.
    [meta] = await callAll(REQUEST.loadVectors, () => ({ bytes: bytes.slice().buffer }), (p) => [p.bytes]);
  } catch (err) {
    if (err.fatal || !engineCount()) return false;
    const msg = `The vector file ${label} cannot be used with ${hooks.modelName() || "this model"}: ${err.message}`;
    if (fallback && previous && previous.bytes !== bytes) {
      try {
        const [back] = await callAll(REQUEST.loadVectors, () => ({ bytes: previous.bytes.slice().buffer }), (p) => [p.bytes]);
        applyVectors(back, previous.bytes, previous.label, { keepControls: true });
        showError(`${msg} Still steering with ${previous.label}.`);
        return false;
      } catch {
        /* fall through: steering off */
      }
    }
    vectorsFailed(msg);
    return false;
  }
  applyVectors(meta, bytes, label, { keepControls });
  return true;
}

/** Steering off, saying why. */
function vectorsFailed(/** @type {string} */ message) {
  Object.assign(vectors, { meta: null, bytes: null, label: null, extras: [] });
  renderExtras();
  callAll(REQUEST.clearVectors).catch(() => {});
  showError(`${message} Steering is off: both panes show the unsteered model. Pick another site or drop a vector file made for this model.`);
  el.alpha.disabled = true;
  el.alpha.value = "0";
  el.vectorsInfo.textContent = "none (steering off)";
  renderHeatmap(null);
  updateAlphaUI();
}

/**
 * The engine steers with this file now: its controls, facts and heat map.
 * @param {import("./protocol.js").VectorsInfo} meta
 * @param {Uint8Array} bytes
 * @param {string} label
 */
function applyVectors(meta, bytes, label, { keepControls = false } = {}) {
  const keptAlpha = keepControls && !el.alpha.disabled ? Number(el.alpha.value) : null;
  vectors.baseline = 0;
  applyBaseline(bytes).catch(() => {});
  Object.assign(vectors, { meta, bytes, label });
  if (meta.site && el.site.value !== meta.site && [...el.site.options].some((o) => o.value === meta.site)) {
    el.site.value = meta.site;
  }
  const max = Number(meta.maxAlpha) || 1;
  el.alpha.max = String(max);
  el.alpha.step = String(max <= 2 ? 0.01 : 0.05);
  const rec = Math.min(max, Math.max(0, Number(meta.recommendedAlpha) || 0));
  el.alpha.value = String(keptAlpha != null ? Math.min(max, keptAlpha) : rec);
  el.alpha.disabled = false;
  if (!keepControls && MODES.includes(meta.recommendedMode)) setMode(meta.recommendedMode);
  if (!keepControls) el.steerPrompt.checked = meta.recommendedScope !== "generated";
  el.vectorsInfo.textContent =
    `${label} · site ${meta.site} · ${meta.layers} layers × ${meta.heads} heads × ${meta.headDim} · ` +
    `${meta.pairs} steering pairs · made for ${meta.modelName} · recommended α ${fixed(rec)} (${meta.recommendedMode}` +
    `${meta.recommendedScope === "generated" ? ", new tokens only" : ""}), ` +
    `max ${fixed(max)}`;
  renderHeatmap(meta);
  updateAlphaUI();
}

/** The neutral read-out baselines of the shipped vector files (www/vectors/readout-baselines.json), fetched once. */
/** @type {Promise<Record<string, {sha256?: string, neutral?: number, texts?: string}>>|null} */
let baselinesPromise = null;
function readoutBaselines() {
  baselinesPromise ??= fetch(new URL(VECTOR_DIR + "readout-baselines.json", location.href).href)
    .then((r) => (r.ok ? r.json() : {}))
    .catch(() => ({}));
  return baselinesPromise;
}

/** Centre the colour scale on the loaded file's neutral read-out, when its bytes are a shipped file's. */
async function applyBaseline(/** @type {Uint8Array} */ bytes) {
  const [baselines, digest] = await Promise.all([readoutBaselines(), crypto.subtle.digest("SHA-256", /** @type {BufferSource} */ (bytes))]);
  if (vectors.bytes !== bytes) return; // another file was loaded meanwhile
  const sha = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const entry = Object.values(baselines).find((e) => e?.sha256 === sha);
  vectors.baseline = Number.isFinite(entry?.neutral) ? entry.neutral : 0;
  el.legendMid.textContent = entry ? `neutral ${signed(vectors.baseline, 3)}` : "0";
  el.legendMid.title = entry
    ? `centre of the scale: this file's neutral read-out ${signed(vectors.baseline, 3)} (${entry.texts})`
    : "centre of the scale: 0 (no neutral baseline is known for this file)";
}

/**
 * After a model was loaded: the vectors in hand again when the model did not change (worker restart, dtype change),
 * else the selected site's shipped file; then the added files, when the model is the same.
 */
export async function reloadVectors(/** @type {boolean} */ modelChanged) {
  vectors.meta = null; // the new engine has none yet
  if (!modelChanged && vectors.bytes) {
    await loadVectorBytes(vectors.bytes, vectors.label, { fallback: false, keepControls: true });
  } else {
    await loadVectorsForSite(el.site.value);
  }
  await restoreExtras(modelChanged);
}

// --- files added to steer together with the main one -----------------------------------------------------------

/** Add a vector file to the steering (with its own α); whether it worked. */
export async function addSteeringVector(/** @type {Uint8Array} */ bytes, /** @type {string} */ label) {
  if (!vectors.meta) {
    showError(`${label} cannot be added: no main vector file is loaded (pick a site, or drop a vector file).`);
    return false;
  }
  if (vectors.extras.length >= MAX_VECTORS - 1) {
    showError(`${MAX_VECTORS} vectors already steer together: remove one before adding ${label}.`);
    return false;
  }
  await hooks.stopRun();
  let meta;
  try {
    [meta] = await callAll(REQUEST.addVectors, () => ({ bytes: bytes.slice().buffer }), (p) => [p.bytes]);
  } catch (err) {
    if (!err.fatal) showError(`${label} cannot steer together with ${vectors.label}: ${err.message}`);
    return false;
  }
  vectors.extras.push({ meta, bytes, label, alpha: Math.min(Number(meta.maxAlpha) || 1, Math.max(0, Number(meta.recommendedAlpha) || 0)) });
  renderExtras();
  clearError();
  steeringStatus();
  return true;
}

/** Remove the added files made for another site than `site`, saying so. */
export async function dropExtrasOfOtherSites(/** @type {string} */ site) {
  const other = vectors.extras.filter((x) => x.meta.site !== site);
  if (!other.length) return;
  const why = `${other.map((x) => x.label).join(" and ")} steer${other.length > 1 ? "" : "s"} site ${other[0].meta.site}, not ${site}: removed from the steering.`;
  // Engine slots from the last.
  for (let slot = vectors.extras.length; slot >= 1; slot--) await callAll(REQUEST.removeVectors, () => ({ slot })).catch(() => {});
  vectors.extras = [];
  renderExtras();
  showError(why);
}

/** After the model was (re)loaded: the added files come back when the model is the same, else they go. */
async function restoreExtras(/** @type {boolean} */ modelChanged) {
  const extras = vectors.extras;
  vectors.extras = [];
  if (extras.length && (modelChanged || !vectors.meta)) {
    showError(`${extras.map((x) => x.label).join(" and ")} no longer steer${extras.length > 1 ? "" : "s"}: made for the previous model or without a main vector file.`);
  } else {
    for (const x of extras) {
      try {
        const [meta] = await callAll(REQUEST.addVectors, () => ({ bytes: x.bytes.slice().buffer }), (p) => [p.bytes]);
        vectors.extras.push({ ...x, meta });
      } catch (err) {
        showError(`${x.label} could not be added again: ${err.message}`);
      }
    }
  }
  renderExtras();
}

/** An α slider and a remove button per added file. */
function renderExtras() {
  el.extraVectors.replaceChildren(
    ...vectors.extras.map((x, i) => {
      const id = `extra-alpha-${i + 1}`;
      const max = Number(x.meta.maxAlpha) || 1;
      const input = h("input", { type: "range", id, min: "0", max: String(max), step: "0.01", value: String(x.alpha), dataset: { slot: String(i + 1) } });
      return h(
        "div",
        { class: "field extra-vector" },
        h("label", { for: id, text: `α of ${x.label}${x.meta.concept ? ` (${x.meta.concept})` : ""}` }),
        h("div", { class: "slider-row" }, input, h("output", { for: id, class: "mono", text: fixed(x.alpha) }), h("button", { type: "button", class: "button small ghost", dataset: { removeSlot: String(i + 1) }, "aria-label": `remove ${x.label} from the steering`, text: "✕" })),
      );
    }),
  );
  el.extraHint.hidden = vectors.extras.length >= MAX_VECTORS - 1;
  updateFormula();
}

function initExtraControls() {
  el.extraVectors.addEventListener("input", (ev) => {
    const target = /** @type {HTMLInputElement} */ (ev.target);
    const slot = Number(target.dataset?.slot);
    const x = vectors.extras[slot - 1];
    if (!x) return;
    x.alpha = Number(target.value);
    target.nextElementSibling.textContent = fixed(x.alpha);
    updateFormula();
    call(REQUEST.setAlpha, { alpha: x.alpha, slot }, [], STEERED_WORKER).catch((err) => showError(`α was not applied: ${err.message}`));
  });
  el.extraVectors.addEventListener("change", (ev) => {
    const slot = Number(/** @type {HTMLElement} */ (ev.target).dataset?.slot);
    if (vectors.extras[slot - 1]) hooks.onRelease(vectors.extras[slot - 1].alpha, slot);
  });
  el.extraVectors.addEventListener("click", async (ev) => {
    const slot = Number(/** @type {Element} */ (ev.target).closest?.("button")?.dataset?.removeSlot);
    if (!slot || !vectors.extras[slot - 1]) return;
    for (const b of el.extraVectors.querySelectorAll("button")) b.disabled = true; // one removal at a time
    await hooks.stopRun();
    const [x] = vectors.extras.splice(slot - 1, 1);
    await callAll(REQUEST.removeVectors, () => ({ slot })).catch((err) => showError(`${x.label} was not removed: ${err.message}`));
    renderExtras();
    steeringStatus();
  });
}
