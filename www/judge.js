// @ts-check
// The live toxicity judge: tox-block (the primary judge of this project's evaluation), fetched from data/judges/ and
// run by the workers after every step (www/worker.js), shown under each pane next to the model's own projection
// read-out: two different views of how toxic the text is. Optional: when its files cannot be fetched or loaded, the
// demo runs without it and says so under the panes.
import { JUDGE_DIR, JUDGE_FILES } from "./config.js";
import { byId } from "./dom.js";
import { callAll, engineCount, engineGeneration } from "./engine-client.js";
import { REQUEST } from "./protocol.js";

const el = {
  slots: [byId("judge-raw"), byId("judge-steered")],
  note: byId("judge-note"),
};

/** @typedef {"loading"|"ready"|"failed"} JudgeStatus */

const judge = {
  /** @type {JudgeStatus} */
  status: "loading",
  /** @type {{weights: Uint8Array, vocab: Uint8Array}|null} its files, kept for a worker restart */
  bytes: null,
  /** @type {string|null} */
  error: null,
};

/** @type {(pane: number) => number|null} the current run's score of a pane */
let currentScore = () => null;

/** `score(pane)`: the latest score of the pane in the current run (null: none). */
export function initJudge(/** @type {(pane: number) => number|null} */ score) {
  currentScore = score;
}

/** What the judge is doing, for the debugging API. */
export const judgeState = () => ({ ...judge });

/** Fetch the judge's files and give it to every worker. */
export async function loadJudge() {
  setJudgeState("loading");
  const get = async (/** @type {string} */ file) => {
    const url = new URL(JUDGE_DIR + file, location.href);
    let resp;
    try {
      resp = await fetch(url, { cache: "no-cache" });
    } catch (err) {
      throw new Error(`${JUDGE_DIR + file}: ${err.message}`);
    }
    if (!resp.ok) throw new Error(`${JUDGE_DIR + file}: the server answered HTTP ${resp.status}`);
    return new Uint8Array(await resp.arrayBuffer());
  };
  try {
    const [weights, vocab] = await Promise.all([get(JUDGE_FILES.weights), get(JUDGE_FILES.vocab)]);
    judge.bytes = { weights, vocab };
  } catch (err) {
    judgeFailed(`its files could not be fetched (${err.message})`);
    return;
  }
  await sendJudge();
}

/** Give every worker its own judge (again after a worker restart: the page keeps the bytes). */
export async function sendJudge() {
  const bytes = judge.bytes;
  const workers = engineGeneration();
  if (!bytes || !engineCount() || judge.status === "failed") return;
  setJudgeState("loading");
  try {
    await callAll(
      REQUEST.loadJudge,
      () => ({ weights: bytes.weights.slice().buffer, vocab: bytes.vocab.slice().buffer }),
      (p) => [p.weights, p.vocab],
    );
  } catch (err) {
    if (engineGeneration() !== workers || err.fatal) return; // the workers were replaced: the new ones get it
    judgeFailed(`the engine could not load it (${err.message})`);
    return;
  }
  if (engineGeneration() === workers) setJudgeState("ready");
}

/** The judge is dropped, saying why under the panes. */
export function judgeFailed(/** @type {string} */ reason) {
  judge.bytes = null;
  judge.error =
    `The toxicity judge (tox-block) is unavailable: ${reason}. The demo works without it; only the judge's ` +
    "scores under the panes are missing.";
  setJudgeState("failed");
}

function setJudgeState(/** @type {JudgeStatus} */ status) {
  judge.status = status;
  document.body.dataset.judge = status;
  el.note.hidden = status !== "failed";
  el.note.textContent = status === "failed" ? judge.error : "";
  for (let i = 0; i < 2; i++) renderJudgeSlot(i, currentScore(i));
}

/** One pane's judge read-out: "tox-block 0.83" and a bar; "–" before the pane has text. */
export function renderJudgeSlot(/** @type {number} */ i, /** @type {number|null|undefined} */ score) {
  const slot = el.slots[i];
  const value = slot.querySelector("[data-judge-value]");
  const status = judge.status;
  const has = status === "ready" && score != null && Number.isFinite(score);
  slot.dataset.state = has ? "scored" : status;
  if (has) {
    const text = score.toFixed(2);
    if (slot.dataset.score !== String(score)) {
      slot.dataset.score = String(score);
      value.textContent = text;
      slot.style.setProperty("--v", String(Math.max(0, Math.min(1, score))));
    }
    return;
  }
  delete slot.dataset.score;
  slot.style.setProperty("--v", "0");
  value.textContent = status === "loading" ? "loading…" : status === "failed" ? "unavailable" : "–";
}
