// @ts-check
// The vector lab: write contrast pairs for any concept, derive a steering vector from them in the worker — with the
// same Rust code as `destein derive` (Engine.deriveStart/Step/Finish, src/vectors.rs), so the page's file is the
// CLI's, byte for byte — look at it (probe heat map, per-layer norms, cosines between concepts), download it, and
// steer with it. The pairs of every concept are kept in localStorage, so nothing typed is lost on a reload.
//
// Pairs use the project's pair-file format (data/steering_pairs.jsonl): {"toxic": away side, "nontoxic": toward
// side, "category"?}. "toxic" means "the side to steer away from" for every concept.

import { h } from "./dom.js";
import { renderHeatmap } from "./heatmap.js";

const STORAGE_KEY = "destein.lab.v1";
const CATALOGUE_URL = "data/concepts/concepts.json";
const CUSTOM = { id: "custom", title: "Your own concept", away: "", toward: "", away_prefix: "", toward_prefix: "", pairs: null, description: "Start from an empty table: write at least 8 pairs." };

/** Parse pasted or imported pairs: JSON lines ({toxic, nontoxic} or {away, toward}) or tab-separated "away⇥toward"
 * lines. All or nothing: the first bad line throws an error naming it. */
export function parsePairsText(text) {
  const pairs = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let away, toward, category;
    if (line.startsWith("{")) {
      let o;
      try {
        o = JSON.parse(line);
      } catch (err) {
        throw new Error(`line ${i + 1}: not valid JSON (${err.message})`);
      }
      away = o.toxic ?? o.away;
      toward = o.nontoxic ?? o.toward;
      category = typeof o.category === "string" ? o.category : undefined;
      if (typeof away !== "string" || typeof toward !== "string") {
        throw new Error(`line ${i + 1}: a JSON line needs the text fields "toxic" and "nontoxic"`);
      }
    } else {
      const cells = raw.split("\t");
      if (cells.length !== 2) {
        throw new Error(`line ${i + 1}: expected two tab-separated texts (away⇥toward), found ${cells.length} field(s)`);
      }
      [away, toward] = cells;
    }
    if (!away.trim() || !toward.trim()) throw new Error(`line ${i + 1}: one side of the pair is empty`);
    pairs.push(category ? { away, toward, category } : { away, toward });
  });
  if (!pairs.length) throw new Error("no pairs found");
  return pairs;
}

/** The pair-file text of `pairs` (one JSON object per line, keys in the project's order). */
export function pairsToJsonl(pairs) {
  return pairs
    .map((p) => JSON.stringify(p.category ? { toxic: p.away, nontoxic: p.toward, category: p.category } : { toxic: p.away, nontoxic: p.toward }))
    .join("\n")
    .concat("\n");
}

/** @typedef {ReturnType<typeof readVectorFile>} VectorFile */

/** Read a destein vector file (safetensors) far enough to compare and show it: metadata, `direction` and
 * `probe_accuracy`. The engine validates the file again when it steers with it.
 * @param {Uint8Array|ArrayBuffer} bytes */
export function readVectorFile(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (u8.length < 8) throw new Error("not a safetensors file (shorter than its 8-byte header length)");
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const headerLen = Number(dv.getBigUint64(0, true));
  if (headerLen > u8.length - 8 || headerLen > 1 << 20) throw new Error("not a safetensors file (bad header length; truncated?)");
  let header;
  try {
    header = JSON.parse(new TextDecoder().decode(u8.subarray(8, 8 + headerLen)));
  } catch {
    throw new Error("not a safetensors file (its header is not JSON)");
  }
  const meta = header.__metadata__ || {};
  if (meta.format !== "destein-vectors") throw new Error("not a destein vector file (no destein metadata)");
  const tensor = (name) => {
    const t = header[name];
    if (!t || t.dtype !== "F32") throw new Error(`the file has no F32 tensor "${name}"`);
    const [start, end] = t.data_offsets;
    const base = 8 + headerLen;
    if (end > u8.length - base || start > end) throw new Error(`tensor "${name}" runs past the end of the file (truncated?)`);
    const copy = u8.slice(base + start, base + end);
    return { shape: t.shape, values: new Float32Array(copy.buffer) };
  };
  const direction = tensor("direction");
  const accuracy = tensor("probe_accuracy");
  const [layers, heads, headDim] = direction.shape;
  const width = heads * headDim;
  const probeAccuracy = [];
  for (let l = 0; l < layers; l++) probeAccuracy.push(Array.from(accuracy.values.subarray(l * heads, (l + 1) * heads)));
  const layerNorms = [];
  for (let l = 0; l < layers; l++) layerNorms.push(Math.hypot(...direction.values.subarray(l * width, (l + 1) * width)));
  return { meta, layers, heads, headDim, width, direction: direction.values, probeAccuracy, layerNorms };
}

/** Mean over layers of cos(z_l^A, z_l^B); null when the two are not comparable (other site or shape). */
export function meanLayerCosine(a, b) {
  if (a.meta.site !== b.meta.site || a.layers !== b.layers || a.width !== b.width) return null;
  let sum = 0;
  for (let l = 0; l < a.layers; l++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let i = l * a.width; i < (l + 1) * a.width; i++) {
      dot += a.direction[i] * b.direction[i];
      na += a.direction[i] ** 2;
      nb += b.direction[i] ** 2;
    }
    sum += dot / Math.max(Math.sqrt(na * nb), 1e-12);
  }
  return sum / a.layers;
}

function download(bytes, name, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const slug = (s) => (s || "concept").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "concept";

/**
 * What the lab needs from the page.
 * @typedef {object} LabContext
 * @property {(request: import("./protocol.js").DeriveRequest, onProgress: (p: import("./protocol.js").DeriveProgressEvent) => void) => {promise: Promise<{bytes: ArrayBuffer, ms: number}>, cancel: () => void}} derive
 *   derive a vector in the worker
 * @property {(bytes: Uint8Array, label: string) => Promise<boolean>} steerWith  steer with it as the main vector
 * @property {(bytes: Uint8Array, label: string) => Promise<boolean>} addToSteering  together with the main one
 * @property {() => import("./protocol.js").EngineInfo|null} modelInfo  the loaded model
 * @property {() => {bytes: Uint8Array, label: string}|null} currentVectors  what the main card steers with
 * @property {() => boolean} ready  whether the engine can derive now
 * @property {string} vectorDir  where the shipped vector files are
 */

/** @type {LabContext} */
let ctx;
/** @type {ReturnType<typeof findElements>} */
let el;

function findElements() {
  const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const input = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ ($(id));
  return {
    concept: /** @type {HTMLSelectElement} */ ($("lab-concept")),
    conceptDesc: $("lab-concept-desc"),
    away: input("lab-away"),
    toward: input("lab-toward"),
    awayPrefix: input("lab-away-prefix"),
    towardPrefix: input("lab-toward-prefix"),
    site: /** @type {HTMLSelectElement} */ ($("lab-site")),
    count: input("lab-count"),
    seed: input("lab-seed"),
    derive: /** @type {HTMLButtonElement} */ ($("lab-derive")),
    cancel: /** @type {HTMLButtonElement} */ ($("lab-cancel")),
    progress: /** @type {HTMLProgressElement} */ ($("lab-progress")),
    progressText: $("lab-progress-text"),
    error: $("lab-error"),
    rows: $("lab-rows"),
    pairCount: $("lab-pair-count"),
    colAway: $("lab-col-away"),
    colToward: $("lab-col-toward"),
    add: $("lab-add"),
    importInput: input("lab-import"),
    exportButton: $("lab-export"),
    pasteText: /** @type {HTMLTextAreaElement} */ ($("lab-paste-text")),
    pasteAdd: $("lab-paste-add"),
    results: $("lab-results"),
    vectors: $("lab-vectors"),
    heatmap: $("lab-heatmap"),
    heatmapReadout: $("lab-heatmap-readout"),
    cosines: $("lab-cosines"),
    upload: input("lab-upload"),
  };
}

const lab = {
  /** @type {any[]} the starter concepts (data/concepts/concepts.json), then "your own" */
  catalogue: [CUSTOM],
  /** @type {Record<string, any>} */
  drafts: {}, // per concept id: {title, away, toward, awayPrefix, towardPrefix, pairs, sourceText, site, count, seed}
  current: "custom",
  /** @type {{cancel: () => void}|null} */
  running: null,
  /** @type {{label: string, bytes: Uint8Array, file: VectorFile}[]} derived or opened in this session */
  results: [],
  /** @type {{label: string, file: VectorFile}[]} the project's vector files of the starter concepts (www/vectors/), for the cosines */
  shipped: [],
  /** @type {string|null} the model the shipped files were read for */
  shippedFor: null,
  selected: -1,
  storageWarned: false,
};


// --- persistence -------------------------------------------------------------------------------------------
function save() {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ current: lab.current, drafts: lab.drafts }));
  } catch (err) {
    if (!lab.storageWarned) showError(`Your pairs cannot be kept in this browser's storage (${err.message}); export them to keep them.`);
    lab.storageWarned = true;
  }
}
function restore() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    if (saved && typeof saved === "object" && saved.drafts && typeof saved.drafts === "object") {
      // Keep only drafts of the shape this page writes; anything else is dropped rather than breaking the lab.
      const ok = (d) => d && typeof d === "object" && Array.isArray(d.pairs) && d.pairs.every((p) => p && typeof p.away === "string" && typeof p.toward === "string");
      lab.drafts = Object.fromEntries(Object.entries(saved.drafts).filter(([, d]) => ok(d)));
      lab.current = typeof saved.current === "string" ? saved.current : "custom";
    }
  } catch {
    /* nothing kept, or unreadable: start afresh */
  }
}
// Until the first concept is loaded, edits go to an empty draft of the current concept.
const draft = () => (lab.drafts[lab.current] ??= { title: CUSTOM.title, away: "", toward: "", awayPrefix: "", towardPrefix: "", pairs: [], sourceText: null, site: "heads", count: null, seed: 0 });

// --- errors ------------------------------------------------------------------------------------------------
function showError(message) {
  el.error.textContent = message;
  el.error.hidden = false;
}
function clearError() {
  el.error.hidden = true;
  el.error.textContent = "";
}

// --- the concept and its pairs -----------------------------------------------------------------------------
async function fetchText(url) {
  const resp = await fetch(url, { cache: "no-cache" });
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  return resp.text();
}

async function loadCatalogue() {
  try {
    const list = JSON.parse(await fetchText(CATALOGUE_URL));
    lab.catalogue = [...list.filter((c) => c && typeof c.id === "string" && c.id !== "custom"), CUSTOM];
  } catch (err) {
    showError(`The starter concepts could not be loaded (${err.message}); you can still write your own pairs.`);
  }
  el.concept.replaceChildren(...lab.catalogue.map((c) => h("option", { value: c.id, text: c.title })));
}

/** A fresh draft of a catalogue concept, its pairs fetched from the project's file (kept verbatim while unedited,
 * so its sha256 — recorded in the vector file — is the file's). */
async function newDraft(concept) {
  const d = {
    title: concept.title,
    away: concept.away,
    toward: concept.toward,
    awayPrefix: concept.away_prefix,
    towardPrefix: concept.toward_prefix,
    pairs: [],
    sourceText: null,
    site: "heads",
    count: null,
    seed: 0,
  };
  if (concept.pairs) {
    const text = await fetchText(concept.pairs);
    d.pairs = parsePairsText(text);
    d.sourceText = text;
  }
  return d;
}

async function selectConcept(id) {
  const concept = lab.catalogue.find((c) => c.id === id) || CUSTOM;
  el.concept.value = concept.id;
  el.conceptDesc.textContent = concept.description || "";
  let d = lab.drafts[concept.id];
  let keep = true;
  if (!d) {
    try {
      d = await newDraft(concept);
    } catch (err) {
      // Not kept: the starter pairs are fetched again next time.
      showError(`The pairs of “${concept.title}” could not be loaded: ${err.message}`);
      d = { ...(await newDraft(CUSTOM)), title: concept.title };
      keep = false;
    }
  }
  if (el.concept.value !== concept.id) return; // another concept was picked meanwhile
  lab.drafts[concept.id] = d;
  lab.current = concept.id;
  if (keep) save();
  renderDraft();
}

function renderDraft() {
  const d = draft();
  el.away.value = d.away;
  el.toward.value = d.toward;
  el.awayPrefix.value = d.awayPrefix;
  el.towardPrefix.value = d.towardPrefix;
  el.site.value = d.site;
  el.seed.value = String(d.seed);
  renderRows();
}

function renderRows() {
  const d = draft();
  el.colAway.textContent = `steer away from: ${d.away || "…"}`;
  el.colToward.textContent = `steer toward: ${d.toward || "…"}`;
  el.count.max = String(Math.max(8, d.pairs.length));
  el.count.value = String(d.count ?? d.pairs.length);
  el.pairCount.textContent = `(${d.pairs.length})`;
  el.rows.replaceChildren(
    ...d.pairs.map((p, i) => {
      const cell = (side) =>
        h("td", {}, h("textarea", { rows: "2", spellcheck: "false", "aria-label": `pair ${i + 1}, ${side === "away" ? "away" : "toward"} side`, dataset: { index: String(i), side }, text: p[side] }));
      return h(
        "tr",
        {},
        h("th", { scope: "row", text: String(i + 1) }),
        cell("away"),
        cell("toward"),
        h("td", {}, h("button", { type: "button", class: "button small ghost", "aria-label": `delete pair ${i + 1}`, dataset: { remove: String(i) }, text: "✕" })),
      );
    }),
  );
  updateDeriveButton();
}

/** The pairs as the text of a pair file: the loaded file itself while unedited. */
function pairsText() {
  const d = draft();
  return d.sourceText ?? pairsToJsonl(d.pairs);
}

function edited() {
  draft().sourceText = null;
  save();
}

function addPairs(pairs) {
  draft().pairs.push(...pairs);
  draft().count = null;
  edited();
  renderRows();
}

// --- deriving ----------------------------------------------------------------------------------------------
function updateDeriveButton() {
  el.derive.disabled = !!lab.running || !ctx.ready();
  el.cancel.disabled = !lab.running;
}

function readCount() {
  const d = draft();
  const n = Number(el.count.value);
  if (!el.count.value.trim()) return d.pairs.length;
  if (!Number.isInteger(n) || n < 1) throw new Error(`“Pairs to use” must be a whole number, not ${el.count.value}`);
  return n;
}

async function derive() {
  clearError();
  const d = draft();
  let request;
  try {
    const seed = Number(el.seed.value);
    if (!Number.isInteger(seed) || seed < 0 || seed > 4294967295) throw new Error(`the seed must be a whole number from 0 to 4294967295`);
    request = {
      pairsJsonl: pairsText(),
      site: el.site.value,
      count: readCount(),
      seed,
      awayPrefix: el.awayPrefix.value,
      towardPrefix: el.towardPrefix.value,
      concept: lab.current === "custom" ? slug(d.title === CUSTOM.title ? `${d.away}-${d.toward}` : d.title) : lab.current,
    };
    // The starter concept's measured recommendation (for detox and your own concept, the detox one of the site).
    const rec = lab.catalogue.find((c) => c.id === lab.current)?.recommended?.[request.site];
    if (rec) Object.assign(request, { recommendedMode: rec.mode, recommendedAlpha: rec.alpha, recommendedScope: rec.scope });
  } catch (err) {
    showError(`Cannot derive: ${err.message}.`);
    return;
  }
  const t0 = performance.now();
  el.progress.value = 0;
  el.progress.max = request.count;
  el.progressText.textContent = "Preparing the pairs…";
  const job = ctx.derive(request, ({ done, total, pairsRead, pairsTotal }) => {
    el.progress.max = total;
    el.progress.value = done;
    const what = pairsRead < pairsTotal ? `${pairsRead} / ${pairsTotal} pairs read` : `probes: layer ${done - pairsTotal} / ${total - pairsTotal}`;
    el.progressText.textContent = `${what} · ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  });
  lab.running = job;
  updateDeriveButton();
  try {
    const { bytes, ms } = await job.promise;
    const label = `${request.concept}.${request.site}`;
    addResult(new Uint8Array(bytes), label);
    el.progressText.textContent = `Derived ${label} from ${request.count} pairs in ${(ms / 1000).toFixed(1)} s.`;
  } catch (err) {
    if (/^cancelled/.test(err.message)) {
      const why = err.message.replace(/^cancelled:?\s*/, "");
      el.progressText.textContent = `Cancelled${why ? ` (${why})` : ""}. Your pairs and vectors are as they were.`;
    }
    else {
      el.progressText.textContent = "";
      showError(`The derivation failed: ${err.message}`);
    }
  } finally {
    lab.running = null;
    updateDeriveButton();
  }
}

// --- results -----------------------------------------------------------------------------------------------
function addResult(bytes, label) {
  const file = readVectorFile(bytes);
  const model = ctx.modelInfo();
  if (model && file.meta.model_sha256 !== model.sha256) {
    throw new Error(`${label} was made for ${file.meta.model_name} (sha256 ${String(file.meta.model_sha256).slice(0, 12)}…), not for the loaded ${model.name}`);
  }
  lab.results = lab.results.filter((r) => r.label !== label);
  lab.results.push({ label, bytes, file });
  renderResults(lab.results.length - 1);
}

function renderResults(selected = lab.selected) {
  lab.selected = Math.min(selected, lab.results.length - 1);
  if (!lab.results.length) el.vectors.replaceChildren(h("li", { class: "hint", text: "None yet: press Derive, or open a .safetensors file." }));
  else el.vectors.replaceChildren(
    ...lab.results.map((r, i) => {
      const m = r.file.meta;
      const acc = r.file.probeAccuracy.flat();
      const mean = acc.reduce((a, b) => a + b, 0) / Math.max(1, acc.length);
      return h(
        "li",
        { class: i === lab.selected ? "selected" : "" },
        h("span", { class: "lab-vector-name mono", text: r.label }),
        h("span", { class: "hint", text: ` ${m.concept || "detox"} · site ${m.site} · ${m.pairs} pairs · seed ${m.seed} · mean probe accuracy ${mean.toFixed(3)} ` }),
        h("button", { type: "button", class: "button small ghost", dataset: { show: String(i) }, text: "Show" }),
        h("button", { type: "button", class: "button small", dataset: { download: String(i) }, text: "Download .safetensors" }),
        h("button", { type: "button", class: "button small primary", dataset: { steer: String(i) }, text: "Steer with it" }),
        h("button", { type: "button", class: "button small", dataset: { combine: String(i) }, text: "Add to the steering" }),
      );
    }),
  );
  const r = lab.results[lab.selected];
  if (r) renderHeatmap({ probeAccuracy: r.file.probeAccuracy, layerNorms: r.file.layerNorms }, el.heatmap, el.heatmapReadout, false);
  renderCosines();
}

/** The shipped vector files of the catalogue's concepts at the heads site, when they fit the loaded model. */
async function loadShipped() {
  const model = ctx.modelInfo();
  if (!model) return;
  const files = lab.catalogue.filter((c) => c.id !== "custom").map((c) => ({ label: c.id, url: `${ctx.vectorDir}smollm2-135m.${c.id === "detox" ? "" : `${c.id}.`}heads.safetensors` }));
  const shipped = [];
  for (const f of files) {
    try {
      const resp = await fetch(f.url, { cache: "no-cache" });
      if (!resp.ok) continue;
      const file = readVectorFile(new Uint8Array(await resp.arrayBuffer()));
      if (file.meta.model_sha256 === model.sha256) shipped.push({ label: `${f.label} (shipped)`, file });
    } catch {
      /* not available: the table shows what is */
    }
  }
  lab.shipped = shipped;
  lab.shippedFor = model.sha256;
  renderCosines();
}

function renderCosines() {
  const entries = [...lab.shipped, ...lab.results.map((r) => ({ label: r.label, file: r.file }))];
  const main = ctx.currentVectors();
  if (main && !lab.results.some((r) => r.bytes === main.bytes) && !/smollm2-135m\.(\w+\.)?heads\.safetensors$/.test(main.label)) {
    try {
      entries.unshift({ label: main.label, file: readVectorFile(main.bytes) });
    } catch {
      /* not readable here: leave it out */
    }
  }
  el.results.hidden = !lab.results.length && entries.length < 2;
  if (entries.length < 2) {
    el.cosines.replaceChildren(h("p", { class: "placeholder", text: "Derive a vector (or load a model the shipped vectors fit) to compare concepts." }));
    return;
  }
  const head = h("tr", {}, h("th", { scope: "col", text: "" }), ...entries.map((e) => h("th", { scope: "col", class: "mono", text: e.label })));
  const rows = entries.map((a) =>
    h(
      "tr",
      {},
      h("th", { scope: "row", class: "mono", text: a.label }),
      ...entries.map((b) => {
        const c = meanLayerCosine(a.file, b.file);
        const td = h("td", { class: "mono", text: c == null ? "—" : c.toFixed(2), title: c == null ? "different sites or shapes: not comparable" : `${a.label} vs ${b.label}` });
        if (c != null) td.style.setProperty("--c", String(c));
        return td;
      }),
    ),
  );
  el.cosines.replaceChildren(h("table", { class: "lab-cos", "aria-labelledby": "lab-cos-h" }, h("thead", {}, head), h("tbody", {}, ...rows)));
}

/** Hand result `i` to the page: `use(bytes, label)` resolves to whether it worked (the page reports why not). */
async function useResult(i, use, done) {
  const r = lab.results[i];
  if (!r) return;
  clearError();
  if (!(await use(r.bytes, r.label))) showError(`${r.label} was not ${done} (see the message above).`);
}

/** On a file picked in `input` (cleared at once, so the same file can be picked again): `use(file)`; a failure
 * names the file. */
function onFilePicked(input, use, failed) {
  input.addEventListener("change", async () => {
    const f = input.files?.[0];
    input.value = "";
    if (!f) return;
    clearError();
    try {
      await use(f);
    } catch (err) {
      showError(`${f.name} ${failed}: ${err.message}.`);
    }
  });
}

// --- events ------------------------------------------------------------------------------------------------
function wirePairEvents() {
  el.concept.addEventListener("change", () => selectConcept(el.concept.value));
  const field = (input, key, parse = (v) => v) =>
    input.addEventListener("input", () => {
      draft()[key] = parse(input.value);
      save();
      if (key === "away" || key === "toward") renderRows();
    });
  field(el.away, "away");
  field(el.toward, "toward");
  field(el.awayPrefix, "awayPrefix");
  field(el.towardPrefix, "towardPrefix");
  field(el.seed, "seed", (v) => Number(v) || 0);
  el.site.addEventListener("change", () => {
    draft().site = el.site.value;
    save();
  });
  el.count.addEventListener("input", () => {
    const n = Number(el.count.value);
    draft().count = Number.isInteger(n) && n > 0 ? n : null;
    save();
  });
  el.rows.addEventListener("input", (ev) => {
    const t = /** @type {HTMLTextAreaElement} */ (ev.target);
    if (t.dataset?.index == null) return;
    draft().pairs[Number(t.dataset.index)][t.dataset.side] = t.value;
    edited();
  });
  el.rows.addEventListener("click", (ev) => {
    const i = /** @type {Element} */ (ev.target).closest?.("button")?.dataset?.remove;
    if (i == null) return;
    draft().pairs.splice(Number(i), 1);
    draft().count = null;
    edited();
    renderRows();
  });
  el.add.addEventListener("click", () => {
    addPairs([{ away: "", toward: "" }]);
    /** @type {HTMLElement|null} */ (el.rows.querySelector("tr:last-child textarea"))?.focus();
  });
  el.pasteAdd.addEventListener("click", () => {
    clearError();
    try {
      addPairs(parsePairsText(el.pasteText.value));
      el.pasteText.value = "";
    } catch (err) {
      showError(`Nothing was added: ${err.message}.`);
    }
  });
  onFilePicked(el.importInput, async (f) => addPairs(parsePairsText(await f.text())), "was not imported");
  el.exportButton.addEventListener("click", () => download(pairsText(), `${slug(lab.current === "custom" ? draft().title : lab.current)}.jsonl`, "application/jsonl"));
}

function wireResultEvents() {
  el.derive.addEventListener("click", derive);
  el.cancel.addEventListener("click", () => lab.running?.cancel());
  el.vectors.addEventListener("click", (ev) => {
    const b = /** @type {Element} */ (ev.target).closest?.("button");
    if (!b) return;
    if (b.dataset.show != null) renderResults(Number(b.dataset.show));
    else if (b.dataset.download != null) {
      const r = lab.results[Number(b.dataset.download)];
      download(r.bytes, `${slug(ctx.modelInfo()?.name || "model")}.${r.label}.safetensors`, "application/octet-stream");
    } else if (b.dataset.steer != null) useResult(Number(b.dataset.steer), ctx.steerWith, "used for steering");
    else if (b.dataset.combine != null) useResult(Number(b.dataset.combine), ctx.addToSteering, "added to the steering");
  });
  onFilePicked(el.upload, async (f) => addResult(new Uint8Array(await f.arrayBuffer()), f.name.replace(/\.safetensors$/i, "")), "was not opened");
}

/**
 * Set up the lab.
 * @param {LabContext} context
 */
export function initLab(context) {
  ctx = context;
  el = findElements();
  wirePairEvents();
  wireResultEvents();
  restore();
  loadCatalogue().then(() => selectConcept(lab.current));
  return {
    /** Called by the page when the model or the engine's readiness changes. */
    refresh() {
      updateDeriveButton();
      const model = ctx.modelInfo();
      if (model && lab.shippedFor !== model.sha256) loadShipped();
      else renderCosines();
    },
  };
}
