// @ts-check
// The heat map of a vector file's per-head probe accuracy (layers × heads) and per-layer ‖z‖, keyboard navigable
// with a roving tabindex.
import { byId, h } from "./dom.js";

/** @typedef {{probeAccuracy?: ArrayLike<ArrayLike<number>>, layerNorms?: ArrayLike<number>}} HeatmapData */

/**
 * The probe-accuracy heat map (and per-layer ‖z‖) of `meta` into `wrap`; the main card's by default, the vector
 * lab's results too. `legend`: also update the main card's colour legend.
 * @param {HeatmapData|null} meta
 */
export function renderHeatmap(meta, wrap = byId("heatmap-wrap"), readout = byId("heatmap-readout"), legend = true) {
  readout.textContent = "";
  const acc = meta?.probeAccuracy;
  if (!acc || !acc.length) {
    wrap.replaceChildren(
      h("p", { class: "placeholder", text: meta ? "This vector file has no probe accuracies." : "Load a vector file to see its probe accuracies." }),
    );
    return;
  }
  const layers = acc.length;
  const heads = Math.max(...Array.from(acc, (r) => r.length));
  const finite = Array.from(acc).flatMap((r) => Array.from(r, Number)).filter(Number.isFinite);
  const lo = finite.length ? Math.min(...finite) : 0.5;
  const hi = finite.length ? Math.max(...finite) : 1;
  const table = h(
    "table",
    { class: "heatmap", role: "grid", "aria-label": `Probe accuracy, ${layers} layers by ${heads} heads`, "aria-describedby": "heatmap-hint" },
    h("thead", {}, headerRow(heads, !!norms(meta, layers))),
  );
  table.style.setProperty("--lo", String(lo));
  table.style.setProperty("--hi", String(hi));
  if (legend) {
    byId("acc-lo").textContent = lo.toFixed(2);
    byId("acc-mid").textContent = ((lo + hi) / 2).toFixed(2);
    byId("acc-hi").textContent = hi.toFixed(2);
  }
  const { tbody, best } = bodyRows(acc, heads, norms(meta, layers));
  table.append(tbody);
  const first = /** @type {HTMLElement|null} */ (tbody.querySelector("td.cell"));
  if (first) first.tabIndex = 0;
  table.addEventListener("keydown", (ev) => moveFocus(table, ev, layers, heads));
  /** @param {Event} ev */
  const show = (ev) => {
    const c = /** @type {HTMLElement|null} */ (/** @type {Element} */ (ev.target).closest?.("td.cell"));
    if (!c) return;
    for (const a of table.querySelectorAll("td.cell.active")) a.classList.remove("active");
    c.classList.add("active");
    readout.textContent = `Layer ${c.dataset.layer}, head ${c.dataset.head}: probe accuracy ${Number(c.dataset.value).toFixed(3)}`;
  };
  table.addEventListener("focusin", show);
  table.addEventListener("mouseover", show);
  wrap.replaceChildren(table);
  const mean = finite.reduce((a, b) => a + b, 0) / Math.max(1, finite.length);
  readout.textContent = Number.isFinite(best.v)
    ? `Mean accuracy ${mean.toFixed(3)}. Best ${best.v.toFixed(3)}: layer ${best.l}, head ${best.h}` +
      (best.n > 1 ? ` and ${best.n - 1} more.` : ".")
    : "";
}

/** The layer norms of `meta`, when it has one per layer. */
function norms(/** @type {HeatmapData} */ meta, /** @type {number} */ layers) {
  return meta.layerNorms && meta.layerNorms.length === layers ? Array.from(meta.layerNorms) : null;
}

function headerRow(/** @type {number} */ heads, /** @type {boolean} */ withNorms) {
  const row = h("tr", {}, h("th", { scope: "col", text: "layer" }));
  for (let j = 0; j < heads; j++) row.append(h("th", { scope: "col", text: `h${j}` }));
  if (withNorms) row.append(h("th", { scope: "col", text: "‖z‖", title: "norm of the layer's detox direction" }));
  return row;
}

/**
 * One row per layer: a cell per head, then the layer's norm as a bar; and the best cell (with how many tie).
 * @param {ArrayLike<ArrayLike<number>>} acc
 * @param {number} heads
 * @param {number[]|null} layerNorms
 */
function bodyRows(acc, heads, layerNorms) {
  const tbody = h("tbody");
  const maxNorm = layerNorms ? Math.max(...layerNorms.map(Math.abs), 1e-12) : 1;
  let best = { v: -Infinity, l: 0, h: 0, n: 0 };
  for (let l = 0; l < acc.length; l++) {
    const tr = h("tr", {}, h("th", { scope: "row", text: String(l) }));
    for (let j = 0; j < heads; j++) {
      const v = Number(acc[l][j]);
      if (v > best.v) best = { v, l, h: j, n: 1 };
      else if (v === best.v) best.n++;
      const td = h("td", {
        class: "cell",
        role: "gridcell",
        tabindex: "-1",
        title: `layer ${l}, head ${j}: accuracy ${Number.isFinite(v) ? v.toFixed(3) : "n/a"}`,
        "aria-label": `layer ${l}, head ${j}: ${Number.isFinite(v) ? v.toFixed(3) : "not available"}`,
        dataset: { layer: String(l), head: String(j), value: String(v) },
      });
      td.style.setProperty("--v", String(Number.isFinite(v) ? v : 0.5));
      tr.append(td);
    }
    if (layerNorms) {
      const bar = h("span", { class: "norm-bar" });
      bar.style.setProperty("--w", String(Math.abs(layerNorms[l]) / maxNorm));
      tr.append(h("td", { class: "norm", title: `layer ${l}: ‖z‖ = ${layerNorms[l].toPrecision(3)}` }, bar));
    }
    tbody.append(tr);
  }
  return { tbody, best };
}

/**
 * Arrow keys, Home/End (first/last head) and PageUp/PageDown (first/last layer) move the focus between cells.
 * @param {HTMLElement} table
 * @param {KeyboardEvent} ev
 * @param {number} layers
 * @param {number} heads
 */
function moveFocus(table, ev, layers, heads) {
  const cur = /** @type {HTMLElement|null} */ (/** @type {Element} */ (ev.target).closest?.("td.cell"));
  if (!cur) return;
  let l = Number(cur.dataset.layer);
  let j = Number(cur.dataset.head);
  /** @type {Record<string, number[]>} */
  const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
  if (ev.key in moves) {
    l = Math.max(0, Math.min(layers - 1, l + moves[ev.key][0]));
    j = Math.max(0, Math.min(heads - 1, j + moves[ev.key][1]));
  } else if (ev.key === "Home") j = 0;
  else if (ev.key === "End") j = heads - 1;
  else if (ev.key === "PageUp") l = 0;
  else if (ev.key === "PageDown") l = layers - 1;
  else return;
  ev.preventDefault();
  const next = /** @type {HTMLElement|null} */ (table.querySelector(`td.cell[data-layer="${l}"][data-head="${j}"]`));
  if (next) {
    cur.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  }
}
