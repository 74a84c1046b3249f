// @ts-check
// The active fusion formula, and what it does to an activation: the formula card's text, facts and 2-D diagram.
import { byId, h, svg } from "./dom.js";
import { angle, fixed, signed } from "./format.js";

const el = {
  formula: byId("formula"),
  formulaMode: byId("formula-mode"),
  formulaAlpha: byId("formula-alpha"),
  formulaNote: byId("formula-note"),
  angleFacts: byId("angle-facts"),
  diagramLayer: byId("diagram-layer"),
  diagramAngle: /** @type {HTMLInputElement} */ (byId("diagram-angle")),
  diagramAngleValue: byId("diagram-angle-value"),
  diagramReadout: byId("diagram-readout"),
};

/**
 * @typedef {object} FormulaSetting  what the steered pane does now
 * @property {string} mode
 * @property {number} alpha  of the main vector file (0 without one)
 * @property {boolean} steering  whether a vector file is loaded
 * @property {string|null} label  the main vector file's
 * @property {{alpha: number, label: string}[]} extras  the files added to steer together with it
 */

/** @type {() => {mode: string, alpha: number}} */
let currentSetting = () => ({ mode: "rotate", alpha: 0 });

/** Redraw the diagram when its angle slider moves, with the mode and α that `setting()` gives then. */
export function initFormula(/** @type {() => {mode: string, alpha: number}} */ setting) {
  currentSetting = setting;
  el.diagramAngle.addEventListener("input", drawDiagram);
}

/** Angle (degrees) by which a unit activation with cos(a, z) = c turns under n(a) − k·n(z); NaN if undefined. */
export function turnAngle(/** @type {number} */ c, /** @type {number} */ k) {
  const len = Math.sqrt(Math.max(0, 1 - 2 * k * c + k * k));
  if (len < 1e-9) return NaN;
  return (Math.acos(Math.max(-1, Math.min(1, (1 - k * c) / len))) * 180) / Math.PI;
}

/** Show the formula of `setting`, its facts and its diagram. */
export function showFormula(/** @type {FormulaSetting} */ { mode, alpha: a, steering, label, extras }) {
  el.formulaMode.textContent = mode;
  el.formulaAlpha.textContent = fixed(a);
  let { formula, note, facts } = singleVectorFormula(mode, a);
  if (!steering) note += " (No vectors are loaded, so α is 0 and nothing changes.)";
  const added = extras.map((x, k) => ({ ...x, name: `z${k + 2}` })).filter((x) => x.alpha > 0);
  if (added.length) [formula, note] = combinedFormula(mode, [{ alpha: a, name: "z", label }, ...added]);
  el.formula.textContent = formula;
  el.formulaNote.textContent = note;
  el.angleFacts.replaceChildren(...facts.map((f) => h("li", { text: f })));
  drawDiagram();
}

/** The formula of one vector in `mode` at α = a, what it means, and how far it turns typical activations. */
function singleVectorFormula(/** @type {string} */ mode, /** @type {number} */ a) {
  const A = fixed(a);
  /** @type {string[]} */
  const facts = [];
  const orth = Math.atan(a) * (180 / Math.PI);
  const aligned = a < 1 ? "0° (it only shrinks, then is rescaled)" : a === 1 ? "undefined (it collapses to zero)" : "180° (it flips)";
  switch (mode) {
    case "headwise":
      facts.push(`A head orthogonal to z_h (c_h = 0) turns by atan(α) = ${orth.toFixed(1)}°.`);
      facts.push(`A head with c_h = 0.5 gets λ = 1.5 and turns by ${angle(turnAngle(0.5, 1.5 * a))}.`);
      facts.push(`A head pointing away from z_h (c_h = −0.5) turns by ${angle(turnAngle(-0.5, a))}.`);
      return {
        formula: `for each head h:\n  c_h = cos(a_h, z_h)\n  λ_h = 1 + max(0, c_h)\n  a′_h = ‖a_h‖ · n( n(a_h) − ${A} · λ_h · n(z_h) )`,
        note: "Rotate each head on its own. Heads already pointing toward toxic (c_h > 0) are pushed up to twice as hard; every head keeps its length.",
        facts,
      };
    case "headwise-reference":
      facts.push(`A head orthogonal to z_h turns by atan(α) = ${orth.toFixed(1)}°.`);
      return {
        formula:
          `for each head h:\n  c_h = cos(a_h, z_h)\n  λ_h = 1 + max(0, c_h)\n  u_h = n( n(a_h) − ${A} · λ_h · n(z_h) )\n` +
          `a′ = concat_h(u_h) · ‖a‖ / ‖concat_h(u_h)‖`,
        note: "The per-head branch of the released DeStein code: like head-wise, but every head ends up with the same length ‖a‖/√H.",
        facts,
      };
    case "add":
      facts.push(`Orthogonal to z: turns by atan(α) = ${orth.toFixed(1)}° and grows to ${Math.sqrt(1 + a * a).toFixed(3)} ‖a‖.`);
      facts.push(`Aligned with z: turns by ${aligned}; length |1 − α| ‖a‖ = ${Math.abs(1 - a).toFixed(3)} ‖a‖.`);
      return {
        formula: `a′ = a − ${A} · ‖a‖ · n(z)`,
        note: "Subtract a piece of z as long as α times the activation. Same turn as rotate, but the length changes.",
        facts,
      };
    default:
      facts.push(`Orthogonal to z: turns by atan(α) = ${orth.toFixed(1)}°.`);
      facts.push(`Aligned with z: turns by ${aligned}.`);
      facts.push("Pointing straight away from z: does not turn at all.");
      return {
        formula: `a′ = ‖a‖ · n( n(a) − ${A} · n(z) )`,
        note: "Rotate the whole activation away from z, keeping its length: the model hears the same volume, in a less toxic direction.",
        facts,
      };
  }
}

/**
 * The fusion formula with several vectors, each term α_i·n(z_i) (this project's generalisation).
 * @param {string} mode
 * @param {{alpha: number, name: string, label: string|null}[]} vectors
 * @returns {[string, string]} the formula and its note
 */
function combinedFormula(mode, vectors) {
  const on = vectors.filter((v) => v.alpha > 0);
  const sum = (/** @type {boolean} */ perHead) =>
    on.map((v) => (perHead ? `${fixed(v.alpha)}·λ(${v.name})_h·n(${v.name}_h)` : `${fixed(v.alpha)}·n(${v.name})`)).join(" + ");
  /** @type {Record<string, string>} */
  const formulas = {
    headwise: `for each head h and vector z_i:\n  λ(z_i)_h = 1 + max(0, cos(a_h, z_i,h))\n  a′_h = ‖a_h‖ · n( n(a_h) − [ ${sum(true)} ] )`,
    "headwise-reference": `for each head h and vector z_i:\n  λ(z_i)_h = 1 + max(0, cos(a_h, z_i,h))\n  u_h = n( n(a_h) − [ ${sum(true)} ] )\na′ = concat_h(u_h) · ‖a‖ / ‖concat_h(u_h)‖`,
    add: `a′ = a − ‖a‖ · [ ${sum(false)} ]`,
  };
  const formula = formulas[mode] ?? `a′ = ‖a‖ · n( n(a) − [ ${sum(false)} ] )`;
  const names = vectors.map((v) => `${v.name} = ${v.label}`).join("; ");
  const note = `Several vectors at once (${names}): each pushes the activation away from its own direction with its own α, in one step. This combination is our own generalisation of DeStein's single-vector fusion; with one vector it is exactly the formula above.`;
  return [formula, note];
}

/** The diagram: a unit activation a at the slider's angle from z, the push, and where a′ ends up. */
function drawDiagram() {
  const { mode, alpha: a } = currentSetting();
  const phi = (Number(el.diagramAngle.value) * Math.PI) / 180;
  el.diagramAngleValue.textContent = `${el.diagramAngle.value}°`;
  const c = Math.cos(phi);
  const k = mode === "headwise" || mode === "headwise-reference" ? a * (1 + Math.max(0, c)) : a;
  // 2-D picture: z points up; a is a unit vector at angle phi from z.
  const av = [Math.sin(phi), c];
  const v = [av[0], av[1] - k];
  const vlen = Math.hypot(v[0], v[1]);
  const out = mode === "add" ? v : vlen > 1e-9 ? [v[0] / vlen, v[1] / vlen] : [0, 0];
  const extent = Math.max(1.15, Math.abs(v[1]) + 0.1, Math.abs(out[1]) + 0.1, 1 + k * 0.5);
  const plot = diagramPlot(Math.min(85, 95 / extent));
  const items = [
    svg("circle", { cx: plot.cx, cy: plot.cy, r: plot.R, class: "d-axis" }),
    plot.line([0, -1.1], [0, 1.1], "d-axis"),
    plot.line([0, 0], [0, 1.12], "d-z", "arrow-z"),
    plot.label([0, 1.12], "z (toxic)", 6, 10),
    plot.line([0, 0], av, "d-a", "arrow-a"),
    plot.label(av, "a", 6, -2),
  ];
  if (k > 1e-9) {
    items.push(plot.line(av, [av[0], av[1] - k], "d-push", "arrow-p"));
    items.push(plot.label([av[0], av[1] - k / 2], mode.startsWith("headwise") ? "−αλ·n(z)" : "−α·n(z)", 6, 4));
  }
  const turn = turnAngle(c, k);
  if (vlen > 1e-9) {
    items.push(plot.line([0, 0], out, "d-new", "arrow-s"));
    items.push(plot.label(out, "a′", -18, 14));
    if (Number.isFinite(turn) && turn > 0.5) items.push(plot.arc(av, out, turn));
  }
  el.diagramLayer.replaceChildren(...items);
  const newCos = vlen > 1e-9 ? (c - k) / vlen : NaN;
  const lenText = mode === "add" ? `‖a′‖ = ${vlen.toFixed(3)} ‖a‖` : "‖a′‖ = ‖a‖";
  el.diagramReadout.textContent =
    vlen > 1e-9
      ? `a turns by ${angle(turn)} · cos(a, z) ${signed(c, 2)} → ${signed(newCos, 2)} · ${lenText}`
      : "a′ is undefined here: the push cancels a exactly.";
}

/** Drawing on the diagram at scale R (pixels per unit), the origin in its centre. */
function diagramPlot(/** @type {number} */ R) {
  const cx = 130;
  const cy = 110;
  const P = (/** @type {number} */ x, /** @type {number} */ y) => [cx + R * x, cy - R * y];
  /** @param {number[]} from @param {number[]} to @param {string} cls @param {string} [marker] */
  const line = (from, to, cls, marker) => {
    const [x1, y1] = P(from[0], from[1]);
    const [x2, y2] = P(to[0], to[1]);
    /** @type {Record<string, string|number>} */
    const attrs = { x1, y1, x2, y2, class: cls };
    if (marker) attrs["marker-end"] = `url(#${marker})`;
    return svg("line", attrs);
  };
  /** @param {number[]} at @param {string} text */
  const label = (at, text, dx = 6, dy = -4) => {
    const [x, y] = P(at[0], at[1]);
    return svg("text", { x: x + dx, y: y + dy, class: "d-label" }, text);
  };
  /** The arc of the turn from a to a′ (`turn` degrees). @param {number[]} av @param {number[]} out @param {number} turn */
  const arc = (av, out, turn) => {
    const r = 0.3;
    const [x1, y1] = P(av[0] * r, av[1] * r);
    const on = Math.hypot(out[0], out[1]);
    const [x2, y2] = P((out[0] / on) * r, (out[1] / on) * r);
    const large = turn > 180 ? 1 : 0;
    const sweep = out[0] * av[1] - out[1] * av[0] > 0 ? 0 : 1;
    return svg("path", { d: `M${x1},${y1} A${R * r},${R * r} 0 ${large} ${sweep} ${x2},${y2}`, class: "d-arc" });
  };
  return { cx, cy, R, line, label, arc };
}
