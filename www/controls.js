// @ts-check
// The controls that act on several parts at once: Start (also Ctrl+Enter in the prompt), Stop, Clear, Retry, the site
// and load-precision selectors, and a file of the reader's (a model, or a vector file to steer with).
import { byId } from "./dom.js";
import { initFileDrop } from "./file-drop.js";
import * as generation from "./generation.js";
import * as models from "./model-loading.js";
import * as steering from "./steering.js";
import { clearError, setStatus, showError, statusText } from "./status.js";

const el = {
  form: byId("controls"),
  prompt: byId("prompt"),
  stop: byId("stop"),
  reset: byId("reset"),
  retry: byId("retry-model"),
  site: byId("site"),
  loadDtype: byId("load-dtype"),
};

/**
 * The page's state machine, as far as these controls move it (www/main.js).
 * @typedef {object} PhaseChanges
 * @property {(step: "loading") => void} loading
 * @property {() => void} ready
 * @property {() => void} failed
 */

/** @type {PhaseChanges} */
let phases;

export function initControls(/** @type {PhaseChanges} */ p) {
  phases = p;
  initFileDrop(useFile);
  el.site.addEventListener("change", changeSite);
  el.loadDtype.addEventListener("change", () => {
    const source = models.modelSource();
    if (source) models.loadModel(source);
  });
  el.prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      generation.startRun();
    }
  });
  el.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    generation.startRun();
  });
  el.stop.addEventListener("click", () => generation.stopRun());
  el.reset.addEventListener("click", async () => {
    await generation.clearRun();
    clearError();
    setStatus(models.modelInfo() ? "Cleared." : statusText());
  });
  el.retry.addEventListener("click", () => {
    const source = models.retrySource();
    if (source) models.loadModel(source);
  });
}

/** Steer with a vector file (dropped, or the lab's) as the main one; whether it worked. */
export async function steerWith(/** @type {Uint8Array} */ bytes, /** @type {string} */ label) {
  const ok = await steering.loadVectorBytes(bytes, label, { fallback: true });
  if (ok) {
    clearError();
    steering.steeringStatus();
  }
  return ok;
}

/** A file of the reader's: a model to load, or a vector file to steer with. */
async function useFile(/** @type {File|undefined} */ file) {
  if (!file) return;
  const name = file.name.toLowerCase();
  if (name.endsWith(".safetensors")) {
    if (!models.modelInfo()) {
      showError("Load a model before a vector file.");
      return;
    }
    await generation.stopRun();
    phases.loading("loading");
    await steerWith(new Uint8Array(await file.arrayBuffer()), file.name);
    phases.ready();
  } else if (name.endsWith(".gguf")) {
    await models.loadModel({ kind: "file", file, label: file.name });
  } else {
    showError(`'${file.name}' is neither a .gguf model nor a .safetensors vector file.`);
  }
}

/** Another site: its shipped vector file (the added files of another site go). */
async function changeSite() {
  if (!models.modelInfo()) return;
  await generation.stopRun();
  phases.loading("loading");
  const site = steering.selectedSite();
  await steering.dropExtrasOfOtherSites(site);
  await steering.loadVectorsForSite(site);
  if (models.modelInfo()) phases.ready();
  else phases.failed();
  if (steering.steering()) steering.steeringStatus();
}
