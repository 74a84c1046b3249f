// @ts-check
// A helper thread of the threaded engine build (pkg/threads/), started by www/worker.js when the page is
// cross-origin isolated. It instantiates the engine's module on the engine's shared memory and lends its core to
// the engine's matrix products (src/pool.rs): runHelperThread never returns.
self.onmessage = async ({ data: { module, memory } }) => {
  const m = await import("../pkg/threads/destein.js");
  m.initSync({ module, memory });
  m.runHelperThread();
};
