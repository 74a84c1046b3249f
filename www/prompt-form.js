// @ts-check
// The prompt and the sampling settings of the controls form, read and checked against the engine's limits.
import { byId } from "./dom.js";

const el = {
  prompt: /** @type {HTMLTextAreaElement} */ (byId("prompt")),
  promptCount: byId("prompt-count"),
  temperature: /** @type {HTMLInputElement} */ (byId("temperature")),
  topP: /** @type {HTMLInputElement} */ (byId("top-p")),
  topK: /** @type {HTMLInputElement} */ (byId("top-k")),
  maxTokens: /** @type {HTMLInputElement} */ (byId("max-tokens")),
  seed: /** @type {HTMLInputElement} */ (byId("seed")),
};

// Request limits: the engine's own (src/generation.rs, steering.rs), replaced by what it reports in its "hello".
const limits = { maxPromptChars: 4000, maxNewTokens: 512 };

/** The engine's limits, from its hello. */
export function applyLimits(/** @type {import("./protocol.js").Limits} */ { maxPromptChars, maxNewTokens }) {
  Object.assign(limits, { maxPromptChars, maxNewTokens });
  el.prompt.maxLength = maxPromptChars;
  el.maxTokens.max = String(maxNewTokens);
  updatePromptCount();
}

export function updatePromptCount() {
  const n = el.prompt.value.length;
  el.promptCount.textContent = `${n} / ${limits.maxPromptChars}`;
  el.promptCount.classList.toggle("over", n > limits.maxPromptChars);
}

/** Put `text` in the prompt, as a text to continue (not a chat message). */
export function usePrompt(/** @type {string} */ text) {
  el.prompt.value = text;
  const cont = /** @type {HTMLInputElement|null} */ (document.querySelector('input[name="format"][value="continuation"]'));
  if (cont) cont.checked = true;
  updatePromptCount();
}

/** The prompt's character count follows it; the dice button draws a new seed. */
export function initPromptForm() {
  el.prompt.addEventListener("input", updatePromptCount);
  byId("seed-random").addEventListener("click", () => {
    el.seed.value = String(crypto.getRandomValues(new Uint32Array(1))[0] % 1_000_000);
  });
}

/**
 * A number field's value, checked; throws (with the field focused) when it is out of range.
 * @param {HTMLInputElement} input
 * @param {{min: number, max: number, integer?: boolean, name: string}} range
 */
function readNumber(input, { min, max, integer = false, name }) {
  const v = Number(input.value);
  if (input.value.trim() === "" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    input.focus();
    throw new Error(`${name} must be ${integer ? "a whole number" : "a number"} from ${min} to ${max}.`);
  }
  return v;
}

/** The prompt and sampling settings of a run; throws a message for the user when one is not valid. */
export function readPromptSettings() {
  const prompt = el.prompt.value;
  if (prompt.trim() === "") {
    el.prompt.focus();
    throw new Error("The prompt is empty: write something, or pick an example prompt.");
  }
  if (prompt.length > limits.maxPromptChars) {
    el.prompt.focus();
    throw new Error(`The prompt is ${prompt.length} characters long; at most ${limits.maxPromptChars} are allowed.`);
  }
  return {
    prompt,
    chat: /** @type {HTMLInputElement|null} */ (document.querySelector('input[name="format"]:checked'))?.value === "chat",
    maxNewTokens: readNumber(el.maxTokens, { min: 1, max: limits.maxNewTokens, integer: true, name: "Max new tokens" }),
    temperature: readNumber(el.temperature, { min: 0, max: 2, name: "Temperature" }),
    topP: readNumber(el.topP, { min: 0.01, max: 1, name: "Top-p" }),
    topK: readNumber(el.topK, { min: 0, max: 100000, integer: true, name: "Top-k" }),
    seed: readNumber(el.seed, { min: 0, max: 4294967295, integer: true, name: "Seed" }),
  };
}
