// @ts-check
// The status line under the controls and the alert above them (an error, or a note that outlives the status).
import { byId } from "./dom.js";

const el = {
  status: byId("status"),
  alert: byId("alert"),
  alertText: byId("alert-text"),
  alertDismiss: byId("alert-dismiss"),
};

/** The status line; kind "ok" shows it as good news. */
export function setStatus(/** @type {string} */ text, kind = "") {
  el.status.textContent = text;
  el.status.className = `status ${kind}`;
}

export const statusText = () => el.status.textContent;

/** The alert, with this message (also in body[data-last-error], for tools). */
export function showError(/** @type {string} */ message) {
  el.alertText.textContent = message;
  el.alert.hidden = false;
  document.body.dataset.lastError = message;
}

export function clearError() {
  el.alert.hidden = true;
  el.alertText.textContent = "";
}

/** The alert's message, or "" when it is hidden. */
export const shownError = () => (el.alert.hidden ? "" : el.alertText.textContent);

el.alertDismiss.addEventListener("click", clearError);
