// @ts-check
// A classic script that runs after www/main.js (deferred scripts run in document order), even when main.js or one
// of the modules it imports could not be loaded — which leaves the page at "Starting…" with nothing to say why. Then it
// finds which of the page's own files is missing on the server and says so. A site folder uploaded without one of
// its files is the usual cause (scripts/build-site.sh checks that none is missing).
(() => {
  if (/** @type {any} */ (globalThis).destein) return; // main.js ran
  // main.js and every module it imports.
  const modules = ["www/main.js", "www/config.js", "www/controls.js", "www/dom.js", "www/engine-client.js",
    "www/examples.js", "www/file-drop.js", "www/formula.js", "www/format.js", "www/generation.js", "www/heatmap.js",
    "www/isolation.js", "www/judge.js", "www/lab.js", "www/model-loading.js", "www/model-store.js", "www/panes.js",
    "www/prompt-form.js", "www/protocol.js", "www/status.js", "www/steering.js"];
  const show = (text) => {
    document.body.dataset.phase = "failed";
    const status = document.getElementById("status");
    if (status) status.textContent = "The page could not start.";
    const alert = document.getElementById("alert");
    const alertText = document.getElementById("alert-text");
    if (alert && alertText) {
      alertText.textContent = text;
      alert.hidden = false;
    }
    document.body.dataset.lastError = text;
  };
  const head = (file) =>
    fetch(file, { method: "HEAD", cache: "no-store" }).then(
      (r) => ({ file, status: r.status, type: r.headers.get("content-type") || "" }),
      () => ({ file, status: null, type: "" }),
    );
  Promise.all(modules.map(head)).then((answers) => {
    const missing = answers.filter((a) => a.status === 404).map((a) => a.file);
    const notScript = answers.filter((a) => a.status === 200 && !/javascript|ecmascript/i.test(a.type));
    if (missing.length) {
      show(
        `The page could not start: ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} missing on the server ` +
          "(HTTP 404). Upload the whole site folder again (scripts/build-site.sh builds it).",
      );
    } else if (notScript.length) {
      const a = notScript[0];
      show(
        `The page could not start: the server sends ${a.file} as ${a.type || "no content type"}, and browsers run ` +
          "module scripts only when they come as JavaScript (text/javascript).",
      );
    } else {
      show("The page could not start: its script www/main.js failed to load or to run (the browser's console says why).");
    }
  });
})();
