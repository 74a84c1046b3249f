// @ts-check
// Numbers as the page shows them.

/** x with `d` decimals. */
export function fixed(/** @type {number|string} */ x, d = 2) {
  return Number(x).toFixed(d);
}

/** x with its sign, "+0.120" or "−0.120" (a true minus sign). */
export function signed(/** @type {number|string} */ x, d = 3) {
  const v = Number(x);
  return `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(d)}`;
}

/** "850 ms" or "1.25 s". */
export function duration(/** @type {number} */ ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** "12.5°", or words when the angle is undefined (NaN). */
export function angle(/** @type {number} */ deg) {
  return Number.isFinite(deg) ? `${deg.toFixed(1)}°` : "an undefined angle";
}
