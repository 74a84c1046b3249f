// @ts-check
// A model (.gguf) or vector file (.safetensors) of the reader's own: picked with the file input, or dropped on the
// drop zone or anywhere on the page.
import { byId } from "./dom.js";

const el = {
  dropzone: byId("dropzone"),
  fileInput: /** @type {HTMLInputElement} */ (byId("file-input")),
};

/** `use(file)` for each file picked or dropped. */
export function initFileDrop(/** @type {(file: File|undefined) => void} */ use) {
  el.fileInput.addEventListener("change", () => {
    const f = el.fileInput.files?.[0];
    el.fileInput.value = "";
    use(f);
  });
  for (const target of [el.dropzone, document.body]) {
    target.addEventListener("dragover", (ev) => {
      if (![...(ev.dataTransfer?.types || [])].includes("Files")) return;
      ev.preventDefault();
      el.dropzone.classList.add("dragging");
    });
    target.addEventListener("dragleave", (ev) => {
      if (ev.target === el.dropzone || target === document.body) el.dropzone.classList.remove("dragging");
    });
    target.addEventListener("drop", (ev) => {
      if (!ev.dataTransfer?.files?.length) return;
      ev.preventDefault();
      ev.stopPropagation();
      el.dropzone.classList.remove("dragging");
      use(ev.dataTransfer.files[0]);
    });
  }
}
