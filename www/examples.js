// @ts-check
// The example prompts (www/examples.json): neutral ones, and toxic ones (RealToxicityPrompts) blurred until the
// reader asks to see them.
import { byId, h } from "./dom.js";
import { usePrompt } from "./prompt-form.js";
import { setStatus } from "./status.js";

const el = {
  neutral: byId("examples-neutral"),
  toxic: byId("examples-toxic"),
  revealToxic: /** @type {HTMLInputElement} */ (byId("reveal-toxic")),
};

/** Fetch the examples and show them as buttons that put their text in the prompt. */
export async function loadExamples() {
  let data;
  try {
    const resp = await fetch(new URL("./examples.json", import.meta.url));
    if (!resp.ok) throw new Error(`www/examples.json: the server answered HTTP ${resp.status}`);
    data = await resp.json();
  } catch (err) {
    el.neutral.replaceChildren(h("p", { class: "placeholder", text: `Examples unavailable (${err.message}).` }));
    return;
  }
  /** @param {{text: string}} ex */
  const use = (ex) => () => {
    usePrompt(ex.text);
    setStatus("Example prompt set. Press Start (or Ctrl+Enter in the prompt).");
  };
  el.neutral.replaceChildren(
    ...(data.neutral || []).map((/** @type {{text: string}} */ ex) =>
      h("button", { type: "button", class: "example", onclick: use(ex) }, h("span", { class: "example-text", text: ex.text })),
    ),
  );
  el.toxic.replaceChildren(
    ...(data.toxic || []).map((/** @type {{text: string, toxicity: number}} */ ex, /** @type {number} */ i) =>
      h(
        "button",
        { type: "button", class: "example", onclick: use(ex), dataset: { hiddenLabel: `Toxic example ${i + 1} (text hidden)` } },
        h("span", { class: "example-text", text: ex.text }),
        h("span", { class: "meta", text: `toxicity ${Number(ex.toxicity).toFixed(2)} (Perspective API)` }),
      ),
    ),
  );
  applyReveal();
}

/** The toxic examples blurred and hidden from screen readers, unless "show" is ticked. */
function applyReveal() {
  const show = el.revealToxic.checked;
  el.toxic.classList.toggle("blurred", !show);
  for (const b of /** @type {NodeListOf<HTMLElement>} */ (el.toxic.querySelectorAll(".example"))) {
    if (show) b.removeAttribute("aria-label");
    else b.setAttribute("aria-label", b.dataset.hiddenLabel);
    b.querySelector(".example-text").setAttribute("aria-hidden", show ? "false" : "true");
  }
}

export function initExamples() {
  el.revealToxic.addEventListener("change", applyReveal);
}
