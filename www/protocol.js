// @ts-check
// The messages between the page and its engine worker (www/worker.js), imported by both. The page sends requests,
// each with a numeric `id`; the worker answers each with one "result" message of the same id, and sends events
// (hello, step, resteer, done, deriveProgress, judgeError) on its own.

/** Requests, page → worker: `{type, id, ...payload}` (payloads below). */
export const REQUEST = Object.freeze({
  /** LoadModelRequest → EngineInfo. */
  loadModel: "loadModel",
  /** VectorsRequest → VectorsInfo: the main vector file (slot 0). */
  loadVectors: "loadVectors",
  /** VectorsRequest → VectorsInfo (with its slot, 1 or 2): another file to steer together with the main one (same
   * site and model; up to three in all). */
  addVectors: "addVectors",
  /** {slot} → true: remove the added file in slot 1 or 2 (the others move up). */
  removeVectors: "removeVectors",
  /** {} → true. */
  clearVectors: "clearVectors",
  /** {params: GenerationParams} → {promptTokens}: start a run (params go to Engine.start as is); its runId is this
   * request's id. */
  start: "start",
  /** {} → true. */
  stop: "stop",
  /** {alpha, slot?} → whether a run was going: slot is the vector file (0, the main one, by default). */
  setAlpha: "setAlpha",
  /** ResteerRequest → {steps, ms}, or null when nothing has run yet: restart the last run (same prompt, seeds and
   * rows) at the new α, the current mode and the given prompt scope, replay as many steps as the old run had made,
   * then keep streaming if it has not finished. Sends a ResteerEvent first; the replayed steps follow as ordinary
   * step events (flagged resteer: true) from index 0. */
  resteer: "resteer",
  /** {mode} → whether a run was going. */
  setMode: "setMode",
  /** {weights, vocab: ArrayBuffer} → {loadMs}: the tox-block toxicity judge (data/judges/); once loaded, every step
   * event carries its score of each row's continuation so far. */
  loadJudge: "loadJudge",
  /** {} → {wasmBytes}: the size of the engine's wasm memory. */
  memory: "memory",
  /** {seed} → {cases, mismatches, threads, isas}: the matrix kernels of this build checked bit for bit (scalar,
   * simd128, and split over the engine's threads). */
  kernelCheck: "kernelCheck",
  /** {rows} → {ms} or {skipped: true}: a short throwaway generation of this worker's rows ("both", "raw" or
   * "steered", α 0), so that the browser optimizes the engine's hot code before the reader's first run; skipped while a
   * run or a derivation is going. */
  warmUp: "warmUp",
  /** {on} → [[phase, ms], …]: turn the engine's per-phase profile on (cleared) or off, and get what it held (for the
   * benchmarks, src/profile.rs). */
  profile: "profile",
  /** {request: DeriveRequest} → {bytes: ArrayBuffer (the safetensors file), ms}, or the error "cancelled…": the
   * vector lab derives a vector with the same Rust code as `destein derive`; stops a running generation; sends a
   * DeriveProgressEvent after each step (a pair read, then a layer's probes fitted). */
  derive: "derive",
  /** {} → true: cancel the derivation in progress (between two pairs). */
  deriveCancel: "deriveCancel",
  /** {} → true; then the worker throws an uncaught error, as a dying engine would (a testing aid). */
  crash: "crash",
});

/** Messages, worker → page. */
export const MESSAGE = Object.freeze({
  /** HelloMessage: once, when the engine module is loaded (or failed to). */
  hello: "hello",
  /** ResultMessage: the answer to one request. */
  result: "result",
  /** StepEvent: one per decoding step of a run. */
  step: "step",
  /** ResteerEvent: a re-steer restarted the run; its replayed steps follow. */
  resteer: "resteer",
  /** DoneEvent: a run ended. */
  done: "done",
  /** DeriveProgressEvent: a derivation made a step. */
  deriveProgress: "deriveProgress",
  /** JudgeErrorEvent: the judge failed while scoring; it is dropped, the generation goes on. */
  judgeError: "judgeError",
});

/**
 * @typedef {{message: string, name: string, fatal: boolean}} EngineErrorInfo
 *   An error with `fatal: true` (a wasm trap) means the engine is unusable: the page replaces the worker.
 * @typedef {{maxPromptChars: number, maxNewTokens: number, maxAlpha?: number}} Limits  the engine's request limits
 *
 * @typedef {{bytes: ArrayBuffer|Blob, sha256?: string, loadDtype?: string}} LoadModelRequest  bytes: transferred, or a
 *   Blob the worker reads itself (a cached copy)
 * @typedef {{bytes: ArrayBuffer, label?: string}} VectorsRequest
 * @typedef {{alpha: number, slot?: number, steerPrompt?: boolean}} ResteerRequest
 * @typedef {{pairsJsonl: string, site: string, count?: number, seed: number, awayPrefix?: string,
 *   towardPrefix?: string, concept?: string, recommendedMode?: string, recommendedAlpha?: number,
 *   recommendedScope?: string}} DeriveRequest
 *
 * @typedef {object} GenerationParams  Engine.start's options (docs/wasm-api.md)
 * @property {string} prompt
 * @property {boolean} chat
 * @property {number} maxNewTokens
 * @property {number} temperature
 * @property {number} topP
 * @property {number} topK
 * @property {number} seed
 * @property {number} alpha
 * @property {number[]} [alphas]  α of each added vector file
 * @property {string} mode
 * @property {boolean} [steerPrompt]
 * @property {"both"|"raw"|"steered"} [rows]  the rows this worker decodes
 *
 * @typedef {object} EngineInfo  the loaded model (Engine.info)
 * @property {string} name
 * @property {string} architecture
 * @property {number} layers
 * @property {number} heads
 * @property {number} kvHeads
 * @property {number} headDim
 * @property {number} hidden
 * @property {number} vocab
 * @property {number} contextLength
 * @property {string} loadDtype
 * @property {number} [loadMs]
 * @property {string} [sha256]
 *
 * @typedef {object} VectorsInfo  a vector file the engine steers with (Engine.loadVectors)
 * @property {string} site
 * @property {number} layers
 * @property {number} heads
 * @property {number} headDim
 * @property {number} pairs
 * @property {string} modelName
 * @property {number} maxAlpha
 * @property {number} recommendedAlpha
 * @property {string} recommendedMode
 * @property {string} [recommendedScope]  "generated": the new tokens only
 * @property {string} [concept]
 * @property {number[][]} [probeAccuracy]  layers × heads
 * @property {number[]} [layerNorms]
 *
 * @typedef {object} StepRow  one row (raw or steered) of a step
 * @property {number|null} tokenId
 * @property {string} text  may be empty while a character is incomplete
 * @property {number|null} projection  the steered site's read-out, null without vectors
 * @property {number} alpha
 * @property {boolean} finished
 * @property {string|null} stopReason
 *
 * @typedef {object} HelloMessage  ok: the engine module loaded (else `error`)
 * @property {"hello"} type
 * @property {boolean} ok
 * @property {number} [threads]  what the engine's matrix products use (1 + helpers)
 * @property {string|null} [threadsNote]  why not more when ?threads=N asked for more (or null)
 * @property {"relaxed-simd"|"simd128"} [simd]  the SIMD of the engine build that loaded
 * @property {Limits|null} [limits]
 * @property {EngineErrorInfo} [error]
 * @typedef {object} ResultMessage  ok: the request's `value`, else its `error`
 * @property {"result"} type
 * @property {number} id
 * @property {boolean} ok
 * @property {any} [value]
 * @property {EngineErrorInfo} [error]
 * @typedef {object} StepEvent
 * @property {"step"} type
 * @property {number} runId  the id of the run's start request
 * @property {number} index
 * @property {StepRow[]} rows
 * @property {number} stepMs
 * @property {number} wallMs
 * @property {string} mode
 * @property {(number|null)[]|null} judge  per row, the judge's probability that the row's text so far is toxic (null
 *   before the row has any text), or null when no judge is loaded
 * @property {number} judgeMs
 * @property {boolean} [resteer]  a replayed step of a re-steer
 * @typedef {{type: "resteer", runId: number, alpha: number, slot: number, steps: number}} ResteerEvent
 * @typedef {{type: "done", runId: number, reason: "finished"|"stopped"|"error", error?: EngineErrorInfo,
 *   steps: number}} DoneEvent
 * @typedef {{type: "deriveProgress", id: number, done: number, total: number, pairsRead: number,
 *   pairsTotal: number, finished: boolean}} DeriveProgressEvent
 * @typedef {{type: "judgeError", runId: number, error: EngineErrorInfo}} JudgeErrorEvent
 * @typedef {HelloMessage|ResultMessage|StepEvent|ResteerEvent|DoneEvent|DeriveProgressEvent|JudgeErrorEvent}
 *   WorkerMessage
 */
