// @ts-check
// A run: one generation of the raw and the steered pane from the same prompt and seed, started in every worker
// (config.js PARTS), streamed into the panes step by step, stopped, re-steered at a new α, and measured.
import { LAYOUT, PARTS, STEERED_WORKER, mark } from "./config.js";
import { call, callAll, engineThreads, post } from "./engine-client.js";
import { duration, fixed } from "./format.js";
import {
  appendKeepingScroll,
  appendToken,
  clearPanes,
  markResteer,
  newPaneState,
  paneRate,
  renderPrompt,
  renderStats,
  restartPane,
  setSteeredSubtitle,
} from "./panes.js";
import { readPromptSettings } from "./prompt-form.js";
import { REQUEST } from "./protocol.js";
import { addedAlphas, currentAlpha, currentMode, readoutBaseline, steering, steersPrompt } from "./steering.js";
import { clearError, setStatus, showError } from "./status.js";

/**
 * @typedef {object} RunPart  what one worker decodes of a run
 * @property {"both"|"raw"|"steered"} rows
 * @property {number[]} panes
 * @property {number} worker
 * @property {number} runId  the id of the worker's start request
 * @property {number} steps
 * @property {number} stepMsSum  engine time of the steps after the first
 * @property {number|null} prefillMs  engine time of the first step (the prompt)
 * @property {boolean} done
 * @property {string|null} reason
 *
 * @typedef {object} Run
 * @property {number} runId  the first worker's start request id (body[data-run-id])
 * @property {import("./protocol.js").GenerationParams} params
 * @property {number} t0
 * @property {number|null} firstAt
 * @property {number|null} lastAt
 * @property {number} maxAbs  the largest read-out so far (the colour scale)
 * @property {number} [scale]
 * @property {boolean} ended
 * @property {string|null} [reason]
 * @property {boolean} [stopping]  Stop was pressed: steps still on their way are not shown
 * @property {() => void} [onEnded]
 * @property {number} [promptTokens]
 * @property {number} [resteered]
 * @property {RunPart[]} parts
 * @property {import("./panes.js").PaneState[]} panes
 * @property {[number, import("./protocol.js").StepRow, import("./panes.js").TokenContext][]} undrawn  rows received
 *   and not yet in their pane (pane index, row, context)
 */

/**
 * @typedef {object} GenerationHooks
 * @property {() => boolean} canStart  a model is loaded and the page is ready
 * @property {() => void} onRunChange  a run started, ended or was cleared
 * @property {(message: string) => void} onFatal  a run ended in a fatal engine error: the engines must restart
 */

/** @type {GenerationHooks} */
let hooks;
/** @type {Run|null} the latest run */
let run = null;
// While a run streams, the panes are redrawn at most every DRAW_EVERY_MS: each redraw (style, layout, paint, raster
// and compositing, on the cores the engines need) costs about the same however many tokens it adds, and the tokens
// of two engines arriving one by one asked for one at nearly every frame.
const DRAW_EVERY_MS = 50;
let drawQueued = false;
let drawnAt = -Infinity;

export function initGeneration(/** @type {GenerationHooks} */ h) {
  hooks = h;
}

/** The latest run, for the debugging API. */
export const currentRun = () => run;
/** Whether a run is going. */
export const isRunning = () => !!(run && !run.ended);
/** body[data-run]: "running", "done" (a run ended) or "idle". */
export const runPhase = () => (isRunning() ? "running" : run ? "done" : "idle");
/** The judge's latest score of pane `i` in the latest run. */
export const paneScore = (/** @type {number} */ i) => run?.panes[i].judge ?? null;

/** The settings of a run from the controls; throws a message for the user when one is not valid. */
function readParams() {
  return {
    ...readPromptSettings(),
    alpha: currentAlpha(),
    alphas: addedAlphas(),
    mode: currentMode(),
    steerPrompt: steersPrompt(),
  };
}

/** Start a run with the controls' settings (a run still going is stopped first). */
export async function startRun() {
  if (!hooks.canStart()) {
    showError("The model is not loaded yet.");
    return;
  }
  let p;
  try {
    p = readParams();
  } catch (err) {
    showError(err.message);
    return;
  }
  await stopRun();
  clearError();
  clearPanes(currentAlpha());
  renderPrompt(p);
  setSteeredSubtitle(steering() ? `α = ${fixed(p.alpha)} · ${p.mode}${p.steerPrompt ? "" : " · new tokens only"}` : "steering off");
  // One start request per worker: the batch layout's worker decodes both rows, the pair layout's one row each.
  const starts = PARTS.map((part, i) => post(REQUEST.start, { params: { ...p, rows: part.rows } }, [], i));
  const id = starts[0].id;
  // Only the current run's marks are kept: a long session must not grow the timeline without bound.
  for (const name of ["run-start", "first-token", "run-end", "resteer"]) performance.clearMarks?.(`destein:${name}`);
  mark("run-start", { runId: id });
  document.body.dataset.runId = String(id);
  const started = (run = newRun(id, p, starts.map((s) => s.id)));
  drawnAt = -Infinity; // the first token is drawn at the next frame
  hooks.onRunChange();
  setStatus("Generating…");
  const settled = await Promise.allSettled(starts.map((x) => x.promise));
  const failed = /** @type {PromiseRejectedResult|undefined} */ (settled.find((r) => r.status === "rejected"));
  if (run !== started) return;
  if (failed) {
    started.ended = true;
    started.reason = "error";
    for (const part of started.parts) call(REQUEST.stop, {}, [], part.worker).catch(() => {});
    hooks.onRunChange();
    showError(`The engine refused to start: ${failed.reason.message}`);
    setStatus("Not started.");
    return;
  }
  started.promptTokens = /** @type {PromiseFulfilledResult<any>} */ (settled[0]).value?.promptTokens;
  if (started.firstAt == null) setStatus(`Reading the prompt (${started.promptTokens ?? "?"} tokens)…`);
}

/** @returns {Run} */
function newRun(/** @type {number} */ runId, /** @type {import("./protocol.js").GenerationParams} */ params, /** @type {number[]} */ partIds) {
  return {
    runId,
    params,
    t0: performance.now(),
    firstAt: null,
    lastAt: null,
    maxAbs: 0,
    ended: false,
    parts: PARTS.map((part, i) => /** @type {RunPart} */ ({
      ...part,
      worker: i,
      runId: partIds[i],
      steps: 0,
      stepMsSum: 0,
      prefillMs: null,
      done: false,
      reason: null,
    })),
    panes: [0, 1].map(() => newPaneState()),
    undrawn: [],
  };
}

/** Stop the run in progress; resolves once it has ended. */
export function stopRun() {
  if (!run || run.ended) return Promise.resolve();
  const stopping = run;
  // Steps already on their way (a worker can be a few tokens ahead of what is painted) are not shown: the panes end
  // where they were when Stop was pressed, with the steps received by then.
  drawReceived(stopping);
  stopping.stopping = true;
  return new Promise((resolve) => {
    stopping.onEnded = () => resolve();
    callAll(REQUEST.stop).catch(() => {});
    // If a worker is gone, end the run here.
    setTimeout(() => {
      if (!stopping.ended) {
        endRun("stopped", stopping);
      }
    }, 5000);
  });
}

/** Forget the latest run and empty the panes (a run still going is stopped first). */
export async function clearRun() {
  await stopRun();
  run = null;
  clearPanes(currentAlpha());
  hooks.onRunChange();
}

/** A worker's step: its rows into their panes. */
export function onStep(/** @type {import("./protocol.js").StepEvent} */ msg) {
  const part = run?.parts.find((p) => p.runId === msg.runId);
  if (!part || run.ended || run.stopping) return;
  const now = performance.now();
  if (run.firstAt == null) {
    run.firstAt = now;
    mark("first-token", { runId: run.runId });
    setStatus("Generating…");
  }
  run.lastAt = now;
  part.steps++;
  if (msg.index === 0) part.prefillMs = Number(msg.stepMs) || 0;
  else part.stepMsSum += Number(msg.stepMs) || 0;
  const context = { msg, now, steering: steering(), baseline: readoutBaseline() };
  // Row j of this worker's step is pane part.panes[j].
  msg.rows.forEach((row, j) => run.undrawn.push([part.panes[j], row, { ...context, judgeScore: msg.judge?.[j] }]));
  scheduleDraw();
}

function scheduleDraw() {
  if (drawQueued) return;
  drawQueued = true;
  const draw = () => {
    drawQueued = false;
    drawnAt = performance.now();
    if (!run) return;
    drawReceived(run);
    renderStats(run.panes, run.t0);
  };
  setTimeout(() => requestAnimationFrame(draw), Math.max(0, drawnAt + DRAW_EVERY_MS - performance.now()));
}

/** The rows `r` received since the last redraw, into their panes. */
function drawReceived(/** @type {Run} */ r) {
  const rows = r.undrawn.splice(0);
  if (rows.length) appendKeepingScroll(() => rows.forEach(([i, row, context]) => appendToken(r, r.panes[i], i, row, context)));
}

/** A worker's run ended; the run ends when every worker's has (or one failed). */
export function onDone(/** @type {import("./protocol.js").DoneEvent} */ msg) {
  const part = run?.parts.find((p) => p.runId === msg.runId);
  if (!part || run.ended) return;
  part.done = true;
  part.reason = msg.reason;
  if (msg.reason === "error") return endRun("error", run, msg.error);
  if (run.parts.every((p) => p.done)) endRun(run.parts.some((p) => p.reason === "stopped") ? "stopped" : "finished", run);
}

/**
 * End `ended` (the latest run by default) for `reason`: its numbers in the status, and the run-finished event.
 * @param {string} reason
 * @param {Run|null} [ended]
 * @param {import("./protocol.js").EngineErrorInfo|null} [error]
 */
export function endRun(reason, ended = run, error = null) {
  if (!ended || ended.ended) return;
  ended.ended = true;
  ended.reason = reason;
  mark("run-end", { runId: ended.runId, reason });
  drawReceived(ended);
  // A worker still decoding (the other one failed): stop it.
  for (const part of ended.parts) if (!part.done) call(REQUEST.stop, {}, [], part.worker).catch(() => {});
  for (const p of ended.panes) if (!p.stopReason) p.stopReason = reason === "finished" ? "end" : reason;
  renderStats(ended.panes, ended.t0);
  hooks.onRunChange();
  if (reason === "error") {
    showError(`Generation failed: ${error?.message || "the engine stopped"}`);
    setStatus("Generation failed.");
    if (error?.fatal) hooks.onFatal(error.message);
  } else {
    setStatus(`${reason === "stopped" ? "Stopped" : "Finished"}: ${describeTimes(ended)}.`, "ok");
  }
  ended.onEnded?.();
  document.dispatchEvent(
    new CustomEvent("destein:run-finished", {
      detail: { prompt: ended.params.prompt, raw: ended.panes[0].text, steered: ended.panes[1].text, params: ended.params, reason },
    }),
  );
}

/** "12 steps in 1.20 s · prompt (9 tokens) read in 80 ms · then 40 ms per step for both rows". */
function describeTimes(/** @type {Run} */ ended) {
  const total = ended.lastAt && ended.t0 ? ended.lastAt - ended.t0 : 0;
  const { steps, prefillMs, stepMsMean: perStep } = runTimes(ended);
  const parts = [`${steps} steps in ${duration(total)}`];
  if (prefillMs != null) parts.push(`prompt (${ended.promptTokens ?? "?"} tokens) read in ${duration(prefillMs)}`);
  if (perStep) {
    parts.push(
      LAYOUT === "pair"
        ? `then ${perStep.toFixed(0)} ms per step for each row (two engines in parallel)`
        : `then ${perStep.toFixed(0)} ms per step for both rows${engineThreads() > 1 ? ` (${engineThreads()} threads)` : ""}`,
    );
  }
  return parts.join(" · ");
}

/** Steps, prompt time (the slowest worker's first step) and mean later step time (over the workers) of a run. */
function runTimes(/** @type {Run} */ r) {
  const parts = r.parts;
  const steps = Math.max(0, ...parts.map((p) => p.steps));
  const pre = parts.map((p) => p.prefillMs).filter((x) => x != null);
  const per = parts.filter((p) => p.steps > 1).map((p) => p.stepMsSum / (p.steps - 1));
  return {
    steps,
    prefillMs: pre.length ? Math.max(...pre) : null,
    stepMsMean: per.length ? per.reduce((a, b) => a + b, 0) / per.length : null,
  };
}

/** The numbers of a run as the page measured them (for ?debug=1 tools such as scripts/bench-browser.mjs). */
export function runStats(r = run) {
  if (!r) return null;
  const t = runTimes(r);
  return {
    runId: r.runId,
    layout: LAYOUT,
    threads: engineThreads(),
    ended: r.ended,
    reason: r.reason ?? null,
    promptTokens: r.promptTokens ?? null,
    steps: t.steps,
    prefillMs: t.prefillMs,
    stepMsMean: t.stepMsMean,
    ttftMs: r.firstAt != null ? r.firstAt - r.t0 : null,
    parts: r.parts.map((p) => ({ rows: p.rows, steps: p.steps, prefillMs: p.prefillMs })),
    panes: r.panes.map((p) => {
      const { n, tps } = paneRate(p);
      return {
        tokens: n,
        ttftMs: p.firstAt != null ? p.firstAt - r.t0 : null,
        decodeTokPerS: tps,
        stopReason: p.stopReason,
        judge: p.judge,
        text: p.text,
      };
    }),
  };
}

/** "Re-steer the whole text" (the default): on release, the steered pane is rewritten as a run at this α. */
export function resteerOnRelease(/** @type {number} */ alpha, /** @type {number} */ slot) {
  const choice = /** @type {HTMLInputElement|null} */ (document.querySelector('input[name="alpha-applies"]:checked'))?.value;
  const resteered = run;
  if (choice !== "resteer" || !resteered || resteered.reason === "error" || resteered.parts.every((p) => p.steps === 0)) return;
  const t0 = performance.now();
  setStatus(`Re-steering the whole text at α = ${fixed(alpha)}…`);
  call(REQUEST.resteer, { alpha, slot, steerPrompt: steersPrompt() }, [], STEERED_WORKER)
    .then((r) => {
      if (!r) return;
      mark("resteer", { steps: r.steps, ms: r.ms, wallMs: performance.now() - t0 });
      if (run === resteered) setStatus(`Re-steered ${r.steps} steps at α = ${fixed(alpha)} in ${duration(r.ms)}.`, "ok");
    })
    .catch((err) => showError(`The text was not re-steered: ${err.message}`));
}

/** The steered worker restarts its run at a new α: its panes go back to the prompt, then the replay fills them. */
export function onResteer(/** @type {import("./protocol.js").ResteerEvent} */ msg) {
  const part = run?.parts.find((p) => p.runId === msg.runId);
  if (!part) return;
  // (A stopped run may be re-steered: its replayed steps are shown again.)
  Object.assign(run, { ended: false, reason: null, stopping: false });
  // The run's parameters now describe the re-steered text (what the run-finished event reports).
  if (!msg.slot) run.params = { ...run.params, alpha: msg.alpha, steerPrompt: steersPrompt() };
  Object.assign(part, { done: false, reason: null, steps: 0, stepMsSum: 0, prefillMs: null });
  run.undrawn = run.undrawn.filter(([i]) => !part.panes.includes(i)); // (rows of the text being replaced)
  for (const i of part.panes) restartPane(i, run.panes[i], run.params);
  markResteer(msg.alpha);
  run.resteered = (run.resteered || 0) + 1;
  hooks.onRunChange();
}
