// @ts-check
// The two panes, raw and steered: the tokens streamed into them (coloured by the steered site's read-out), their
// numbers, and the token read-out (hover, or the keyboard in a focused pane).
import { byId, h } from "./dom.js";
import { duration, fixed, signed } from "./format.js";
import { renderJudgeSlot } from "./judge.js";

const el = {
  outs: [byId("out-raw"), byId("out-steered")],
  panes: [byId("pane-raw"), byId("pane-steered")],
  paneSubs: [byId("pane-raw-sub"), byId("pane-steered-sub")],
  legendMin: byId("legend-min"),
  legendMax: byId("legend-max"),
  tokenReadout: byId("token-readout"),
};

const NICE_SCALES = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1];

/**
 * What a pane has shown of a run.
 * @typedef {object} PaneState
 * @property {number} tokens
 * @property {number[]} pendingIds  tokens received whose text is not complete yet
 * @property {boolean} finished
 * @property {string|null} stopReason
 * @property {number|null} lastAlpha
 * @property {string|null} lastMode
 * @property {string} text
 * @property {number|null} firstAt
 * @property {number|null} lastAt
 * @property {number|null} judge  the judge's latest score
 */

/** @typedef {{maxAbs: number, scale?: number}} ColourScale  the largest read-out so far, and the scale shown */

/** @returns {PaneState} */
export function newPaneState() {
  return { tokens: 0, pendingIds: [], finished: false, stopReason: null, lastAlpha: null, lastMode: null, text: "", firstAt: null, lastAt: null, judge: null };
}

/** Empty panes; the steered pane's subtitle shows `alpha`. */
export function clearPanes(/** @type {number} */ alpha) {
  for (let i = 0; i < 2; i++) {
    el.outs[i].replaceChildren();
    el.outs[i].style.setProperty("--scale", "0.1");
    for (const dd of /** @type {NodeListOf<HTMLElement>} */ (el.panes[i].querySelectorAll("[data-stat]"))) dd.textContent = dd.dataset.stat === "tokens" ? "0" : "–";
    renderJudgeSlot(i, null);
  }
  el.tokenReadout.textContent = "";
  el.legendMin.textContent = "−0.10";
  el.legendMax.textContent = "+0.10";
  el.paneSubs[1].textContent = `α = ${fixed(alpha)}`;
}

/** The steered pane's subtitle (its α and mode). */
export function setSteeredSubtitle(/** @type {string} */ text) {
  el.paneSubs[1].textContent = text;
}

/** @typedef {{prompt: string, chat: boolean}} PromptShown */

export function renderPrompt(/** @type {PromptShown} */ params) {
  for (let i = 0; i < 2; i++) renderPromptInto(el.outs[i], params);
}

function renderPromptInto(/** @type {HTMLElement} */ out, /** @type {PromptShown} */ params) {
  if (params.chat) out.append(h("span", { class: "prompt-label", text: "User" }));
  out.append(h("span", { class: "prompt", text: params.prompt }));
  if (params.chat) out.append(h("span", { class: "prompt-label", text: "\nAssistant" }));
}

/** Pane `i` starts over from its prompt (a re-steer replays its text). */
export function restartPane(/** @type {number} */ i, /** @type {PaneState} */ pane, /** @type {PromptShown} */ params) {
  Object.assign(pane, { tokens: 0, pendingIds: [], finished: false, stopReason: null, lastAlpha: null, lastMode: null, text: "", judge: null });
  el.outs[i].replaceChildren();
  renderPromptInto(el.outs[i], params);
  renderJudgeSlot(i, null);
}

/** The steered pane says that the whole text was re-steered at α. */
export function markResteer(/** @type {number} */ alpha) {
  el.outs[1].append(
    h("span", {
      class: "resteer-marker",
      role: "note",
      title: `the whole text was re-steered at α = ${fixed(alpha)}: this is what a run at that α writes with the same seed`,
      dataset: { alpha: String(alpha) },
      text: `↻ re-steered at α = ${fixed(alpha)}`,
    }),
  );
}

/**
 * @typedef {object} TokenContext
 * @property {import("./protocol.js").StepEvent} msg  the step the row comes from
 * @property {number} now
 * @property {number|null|undefined} judgeScore
 * @property {boolean} steering  whether a vector file steers
 * @property {number} baseline  the centre of the colour scale
 */

/**
 * Runs `append` (appendToken calls), then scrolls each pane that was at its end to its new end: the layout is read
 * once for all the tokens, not once per token.
 * @param {() => void} append
 */
export function appendKeepingScroll(append) {
  const atBottom = el.outs.map((out) => out.scrollHeight - out.scrollTop - out.clientHeight < 8);
  append();
  el.outs.forEach((out, i) => {
    if (atBottom[i]) out.scrollTop = out.scrollHeight;
  });
}

/**
 * One step's row into pane `i` (inside appendKeepingScroll): its text as a token coloured by its read-out, markers
 * where α or the mode changed, and the stop reason when the row finished.
 * @param {ColourScale} scale
 * @param {PaneState} pane
 * @param {number} i
 * @param {import("./protocol.js").StepRow} row
 * @param {TokenContext} ctx
 */
export function appendToken(scale, pane, i, row, ctx) {
  if (!row || pane.finished) return;
  if (ctx.judgeScore != null && Number.isFinite(ctx.judgeScore)) pane.judge = ctx.judgeScore;
  const out = el.outs[i];
  if (i === 1) markSteeringChanges(pane, out, row, ctx);
  if (row.tokenId != null && !(row.finished && row.text === "" && row.stopReason === "eos")) {
    pane.pendingIds.push(row.tokenId);
  }
  if (row.text) {
    out.append(tokenSpan(scale, pane, i, row, ctx));
    pane.text += row.text;
    pane.tokens += pane.pendingIds.length;
    pane.pendingIds = [];
  }
  if (pane.firstAt == null) pane.firstAt = ctx.now;
  pane.lastAt = ctx.now;
  if (row.finished) finishPane(pane, out, row, ctx.msg.index);
}

/**
 * Markers in the steered pane where α or the mode changed during the run.
 * @param {PaneState} pane @param {HTMLElement} out @param {import("./protocol.js").StepRow} row @param {TokenContext} ctx
 */
function markSteeringChanges(pane, out, row, { msg, steering }) {
  const a = Number(row.alpha);
  if (pane.lastAlpha != null && Math.abs(a - pane.lastAlpha) > 1e-9) {
    out.append(
      h("span", {
        class: "alpha-marker",
        role: "note",
        title: `α changed to ${fixed(a)} from this token on`,
        dataset: { alpha: String(a), step: String(msg.index) },
        text: `α→${fixed(a)}`,
      }),
    );
  }
  if (pane.lastMode != null && msg.mode && msg.mode !== pane.lastMode) {
    out.append(
      h("span", {
        class: "alpha-marker mode-marker",
        role: "note",
        title: `fusion mode changed to ${msg.mode} from this token on`,
        text: `mode→${msg.mode}`,
      }),
    );
  }
  if (steering && (pane.lastAlpha !== a || pane.lastMode !== msg.mode)) {
    el.paneSubs[1].textContent = `α = ${fixed(a)} · ${msg.mode}`;
  }
  pane.lastAlpha = a;
  pane.lastMode = msg.mode;
}

/**
 * The token of a row with text (and of the ids before it that had none), coloured by its read-out.
 * @param {ColourScale} scale @param {PaneState} pane @param {number} i @param {import("./protocol.js").StepRow} row
 * @param {TokenContext} ctx
 */
function tokenSpan(scale, pane, i, row, { msg, baseline }) {
  const proj = row.projection;
  const span = h("span", {
    class: (proj == null ? "tok noproj" : "tok") + (msg.resteer && i === 1 ? " resteered" : ""),
    text: row.text,
    dataset: {
      tokenIds: pane.pendingIds.join(" "),
      firstStep: String(msg.index - pane.pendingIds.length + 1),
      step: String(msg.index),
      alpha: String(row.alpha ?? 0),
      projection: proj == null ? "" : String(proj),
    },
  });
  if (proj != null) {
    const rel = proj - (baseline || 0);
    span.dataset.baseline = String(baseline || 0);
    span.style.setProperty("--p", String(rel));
    span.title = `projection ${signed(proj)} (${signed(rel)} from neutral) · α ${fixed(row.alpha ?? 0)}`;
    scale.maxAbs = Math.max(scale.maxAbs, Math.abs(rel));
    updateScale(scale);
  } else {
    span.title = `no vectors loaded · α ${fixed(row.alpha ?? 0)}`;
  }
  return span;
}

/**
 * The row finished: the ids still without text, and why it stopped.
 * @param {PaneState} pane @param {HTMLElement} out @param {import("./protocol.js").StepRow} row @param {number} index
 */
function finishPane(pane, out, row, index) {
  pane.finished = true;
  pane.stopReason = row.stopReason;
  pane.tokens += pane.pendingIds.length;
  if (pane.pendingIds.length) {
    out.append(
      h("span", {
        class: "tok noproj",
        dataset: { tokenIds: pane.pendingIds.join(" "), firstStep: String(index - pane.pendingIds.length + 1), step: String(index) },
        text: "",
      }),
    );
    pane.pendingIds = [];
  }
  out.append(h("span", { class: "stop-note", text: ` [${row.stopReason || "end"}]` }));
}

/** The colour scale: the smallest nice scale that holds every read-out so far. */
function updateScale(/** @type {ColourScale} */ scale) {
  const want = Math.max(0.02, scale.maxAbs);
  const next = NICE_SCALES.find((s) => s >= want) || 1;
  if (next === scale.scale) return;
  scale.scale = next;
  for (const out of el.outs) out.style.setProperty("--scale", String(next));
  el.legendMin.textContent = signed(-next, 2);
  el.legendMax.textContent = signed(next, 2);
}

/** Tokens of a pane so far, and its decoding speed: tokens after the first, over the time since the first. */
export function paneRate(/** @type {PaneState} */ p) {
  const n = p.tokens + p.pendingIds.length;
  const tps = n >= 2 && p.lastAt > p.firstAt ? (n - 1) / ((p.lastAt - p.firstAt) / 1000) : null;
  return { n, tps };
}

/** Each pane's numbers: tokens, time to the first token (from `t0`), speed, stop reason, judge score. */
export function renderStats(/** @type {PaneState[]} */ panes, /** @type {number} */ t0) {
  for (let i = 0; i < 2; i++) {
    const p = panes[i];
    const set = (/** @type {string} */ k, /** @type {string} */ v) => (el.panes[i].querySelector(`[data-stat="${k}"]`).textContent = v);
    const { n, tps } = paneRate(p);
    set("tokens", String(n));
    if (p.firstAt != null) set("ttft", duration(p.firstAt - t0));
    if (tps != null) set("tps", tps.toFixed(1));
    if (p.stopReason) set("stop", p.stopReason);
    renderJudgeSlot(i, p.judge);
  }
}

/** The read-out of a token span of pane `i`. */
function describeToken(/** @type {number} */ i, /** @type {HTMLElement} */ span) {
  const ids = span.dataset.tokenIds ? span.dataset.tokenIds.split(" ").length : 0;
  const proj = span.dataset.projection;
  const pane = i === 0 ? "Raw" : "Steered";
  const where =
    proj === "" || proj == null
      ? "no projection (no vectors)"
      : `projection ${signed(proj)}, ${signed(Number(proj) - Number(span.dataset.baseline || 0))} from neutral (${Number(proj) >= Number(span.dataset.baseline || 0) ? "toward" : "away from"} toxic, at the position that produced it)`;
  return `${pane}, step ${Number(span.dataset.step) + 1}: “${span.textContent}” · ${where} · α ${fixed(span.dataset.alpha || 0)}${ids > 1 ? ` · ${ids} tokens` : ""}`;
}

/** Token inspection: hover a token, or move through them with the arrow keys (Home, End) in a focused pane. */
export function initTokenInspection() {
  for (let i = 0; i < 2; i++) {
    const out = el.outs[i];
    out.addEventListener("mouseover", (ev) => {
      const t = /** @type {HTMLElement|null} */ (/** @type {Element} */ (ev.target).closest?.(".tok"));
      if (t && out.contains(t)) el.tokenReadout.textContent = describeToken(i, t);
    });
    out.addEventListener("keydown", (ev) => inspectWithKeys(i, out, ev));
    out.addEventListener("blur", () => {
      for (const t of out.querySelectorAll(".tok.inspect")) t.classList.remove("inspect");
    });
  }
}

function inspectWithKeys(/** @type {number} */ i, /** @type {HTMLElement} */ out, /** @type {KeyboardEvent} */ ev) {
  const toks = /** @type {HTMLElement[]} */ ([...out.querySelectorAll(".tok")]);
  if (!toks.length) return;
  let idx = toks.findIndex((t) => t.classList.contains("inspect"));
  /** @type {Record<string, number>} */
  const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
  if (ev.key in keys) idx = idx < 0 ? (keys[ev.key] > 0 ? 0 : toks.length - 1) : Math.max(0, Math.min(toks.length - 1, idx + keys[ev.key]));
  else if (ev.key === "Home") idx = 0;
  else if (ev.key === "End") idx = toks.length - 1;
  else return;
  ev.preventDefault();
  for (const t of out.querySelectorAll(".tok.inspect")) t.classList.remove("inspect");
  toks[idx].classList.add("inspect");
  toks[idx].scrollIntoView({ block: "nearest" });
  el.tokenReadout.textContent = describeToken(i, toks[idx]);
}
