// @ts-check
// DeStein browser demo: the page's entry. It holds the page's state machine and gives each part (the modules below)
// what it needs. Inference runs in www/worker.js; the page never blocks on it.
import { DEBUG, LAYOUT, STEERED_WORKER, VECTOR_DIR, modelSourceFromParams } from "./config.js";
import { byId } from "./dom.js";
import { call, debugRequests, post, setEngineHooks, startEngines, stopEngines, trustedScriptURL } from "./engine-client.js";
import { initExamples, loadExamples } from "./examples.js";
import { initControls, steerWith } from "./controls.js";
import { turnAngle } from "./formula.js";
import * as generation from "./generation.js";
import { describeIsolation, ensureIsolation } from "./isolation.js";
import { initJudge, judgeFailed, judgeState, loadJudge, sendJudge } from "./judge.js";
import { initLab } from "./lab.js";
import * as models from "./model-loading.js";
import { cacheAvailable, readSiteConfig } from "./model-store.js";
import { initTokenInspection } from "./panes.js";
import { applyLimits, initPromptForm, updatePromptCount } from "./prompt-form.js";
import { REQUEST } from "./protocol.js";
import * as steering from "./steering.js";
import { setStatus, showError, shownError } from "./status.js";

const el = {
  start: /** @type {HTMLButtonElement} */ (byId("start")),
  stop: /** @type {HTMLButtonElement} */ (byId("stop")),
  isolationInfo: byId("isolation-info"),
};
document.body.dataset.layout = LAYOUT;

// ---------------------------------------------------------------------------------------------------------------
// The page's state machine: idle → loading → ready ⇄ running, or failed. Loading may start again from any state (a
// reload, another model, a restart after a crash), and ends in ready (also when a model loaded before stays in use)
// or failed. body[data-phase] shows it as it always has: the loading step ("loading", "downloading", "verifying",
// "loading-model"), "ready" (during a run too: body[data-run] says "running"), "failed"; "starting" (index.html)
// until the first load.

/** @typedef {"idle"|"loading"|"ready"|"running"|"failed"} PagePhase */
/** @typedef {"loading"|"downloading"|"verifying"|"loading-model"} LoadingStep */

/** @type {{refresh(): void}|null} the vector lab (set up below) */
let lab = null;

const page = {
  /** @type {PagePhase} */
  phase: "idle",
  /** @type {LoadingStep} */
  step: "loading",
};

/** Go to `phase` and show it (the lab learns of it, as the engine's readiness may have changed). */
function enter(/** @type {PagePhase} */ phase, /** @type {LoadingStep} */ step = "loading") {
  Object.assign(page, { phase, step });
  document.body.dataset.phase = phase === "loading" ? step : phase === "running" ? "ready" : phase;
  updateButtons();
  lab?.refresh();
}

const phases = {
  loading: (/** @type {LoadingStep} */ step) => enter("loading", step),
  // (A run can be going already: a re-steer may restart one while vectors load.)
  ready: () => enter(generation.isRunning() ? "running" : "ready"),
  failed: () => enter("failed"),
  /** A run started or ended: ready ⇄ running (a run does not change the other phases). */
  runChanged() {
    if (page.phase === "ready" && generation.isRunning()) page.phase = "running";
    else if (page.phase === "running" && !generation.isRunning()) page.phase = "ready";
    updateButtons();
  },
};

/** A model is loaded and nothing else is loading: a run may start (one going is stopped first). */
const modelReady = () => !!models.modelInfo() && (page.phase === "ready" || page.phase === "running");

function updateButtons() {
  el.start.disabled = page.phase !== "ready" || !models.modelInfo();
  el.stop.disabled = !generation.isRunning();
  document.body.dataset.run = generation.runPhase();
}

// ---------------------------------------------------------------------------------------------------------------
// Engine crashes: restart the engines and reload the model (from the cache), unless they crash again and again.

const recovery = {
  active: false,
  /** @type {number[]} when the engines crashed in the last minute */
  crashTimes: [],
};

async function restartEngines(/** @type {string} */ reason) {
  if (!stopEngines(reason)) return; // already being replaced
  if (generation.isRunning()) generation.endRun("error");
  models.forgetModel();
  const now = Date.now();
  recovery.crashTimes = recovery.crashTimes.filter((t) => now - t < 60_000);
  recovery.crashTimes.push(now);
  if (recovery.crashTimes.length > 3) {
    showError(
      `The engine stopped unexpectedly (${reason}) and has crashed ${recovery.crashTimes.length} times in a minute; ` +
        "it was not restarted. Reload the page to try again.",
    );
    phases.failed();
    setStatus("Engine stopped.");
    return;
  }
  showError(`The engine stopped unexpectedly (${reason}). Restarting it and reloading the model from the cache…`);
  recovery.active = true;
  startEngines();
  sendJudge(); // the judge's bytes are kept: no refetch
  try {
    const source = models.modelSource();
    if (source) {
      await models.loadModel(source, { quiet: true });
      if (models.modelInfo()) {
        showError(`The engine stopped unexpectedly (${reason}). It was restarted and the model reloaded.`);
        setStatus("Recovered: the engine was restarted and the model reloaded.", "ok");
      }
    }
  } finally {
    recovery.active = false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The parts, wired

setEngineHooks({
  onLimits: applyLimits,
  onHello: models.showEngineFacts,
  onEngineMissing: showError,
  onWorkerMissing(message) {
    showError(message);
    setStatus("The inference engine is not available.");
  },
  onDeath: restartEngines,
  onStep: generation.onStep,
  onResteer: generation.onResteer,
  onDone: generation.onDone,
  onJudgeError: (msg) => judgeFailed(`it failed while scoring (${msg.error?.message || "unknown error"})`),
});
models.initModelLoading({ ...phases, recovering: () => recovery.active, restartEngines });
generation.initGeneration({ canStart: modelReady, onRunChange: phases.runChanged, onFatal: restartEngines });
steering.initSteering({
  stopRun: generation.stopRun,
  modelName: () => models.modelInfo()?.name,
  onRelease: generation.resteerOnRelease,
});
initJudge(generation.paneScore);
initTokenInspection();
initPromptForm();
initExamples();
initControls(phases);

// The vector lab (www/lab.js): derivation runs in the steered pane's worker.
lab = initLab({
  derive(request, onProgress) {
    const promise = generation.stopRun().then(() => post(REQUEST.derive, { request }, [], STEERED_WORKER, onProgress).promise);
    const cancel = () => call(REQUEST.deriveCancel, {}, [], STEERED_WORKER).catch(() => {});
    return { promise, cancel };
  },
  async steerWith(bytes, label) {
    if (!models.modelInfo()) return false;
    await generation.stopRun();
    return steerWith(bytes, label);
  },
  addToSteering: steering.addSteeringVector,
  modelInfo: models.modelInfo,
  currentVectors: steering.mainVectors,
  ready: modelReady,
  vectorDir: VECTOR_DIR,
});

document.addEventListener("securitypolicyviolation", (ev) => {
  // A refused model URL: loadModel's own message says so (this event may come after it, and must not replace it).
  if (models.noteCspViolation(ev.blockedURI)) return;
  showError(
    `The page's Content-Security-Policy blocked ${ev.blockedURI || "a resource"} (${ev.effectiveDirective}). ` +
      "This page only talks to its own origin; see index.html for how to allow another.",
  );
});

// ---------------------------------------------------------------------------------------------------------------
// The debugging API (globalThis.destein; all of it with ?debug=1), and the start

/** The page's state as one object, read live (tools such as scripts/bench-browser.mjs read state.modelInfo). */
const debugState = {
  get phase() { return page.phase; },
  get source() { return models.modelSource(); },
  get modelInfo() { return models.modelInfo(); },
  get modelSha() { return models.modelState().sha; },
  get vectors() { return steering.steeringState().meta; },
  get vectorsBytes() { return steering.steeringState().bytes; },
  get vectorsLabel() { return steering.steeringState().label; },
  get extras() { return steering.steeringState().extras; },
  get baseline() { return steering.readoutBaseline(); },
  get run() { return generation.currentRun(); },
  get judge() { return judgeState(); },
  get crashTimes() { return recovery.crashTimes; },
  get recovering() { return recovery.active; },
};

const api = { turnAngle };
if (DEBUG) {
  Object.assign(api, {
    state: debugState,
    ...debugRequests,
    loadModel: models.loadModel,
    runStats: () => generation.runStats(),
  });
}
/** @type {any} */ (globalThis).destein = api;

async function boot() {
  updatePromptCount();
  steering.updateAlphaUI();
  updateButtons();
  // First, cross-origin isolation (SharedArrayBuffer, for wasm threads): on a static host this may register
  // coi-sw.js and reload the page once, so nothing is fetched before it.
  const isolation = await ensureIsolation(trustedScriptURL);
  document.body.dataset.isolation = isolation.isolated ? isolation.how : "no";
  el.isolationInfo.textContent = describeIsolation(isolation);
  loadExamples();
  startEngines();
  const config = await readSiteConfig();
  const source = modelSourceFromParams(config.model);
  if (!cacheAvailable()) {
    setStatus("This page is not in a secure context: the model cannot be cached and is downloaded each time.");
  }
  await models.loadModel(source);
  // Problems with the site's configuration or the URL's parameters, shown once the model load no longer clears the
  // alert (before a failure of the load itself, when there is one).
  const notes = [config.error, source.error].filter(Boolean);
  if (notes.length) showError([...notes, shownError()].join(" ").trim());
  // The judge is optional and small: load it once the model is in, so it does not slow the model's loading down.
  // (A run started meanwhile gets its scores from the judge's arrival on.)
  await loadJudge();
}

boot().catch((err) => {
  showError(`Unexpected error while starting: ${err.message || err}`);
  phases.failed();
});
