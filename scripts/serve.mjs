#!/usr/bin/env node
// A tiny static server for the DeStein browser demo. No dependencies.
//
//   node scripts/serve.mjs            # http://127.0.0.1:8080/ (or a free port if 8080 is taken)
//   PORT=9000 node scripts/serve.mjs  # PORT=0 picks a free port
//
// It binds 127.0.0.1 only, serves index.html, destein-config.json (the page's default model), coi-sw.js (the
// cross-origin-isolation service worker, for hosts that cannot send headers; unused here) and the folders www/, pkg/
// (with its subfolders), models/, data/judges/ (the toxicity judge's files) and data/concepts/ plus
// data/steering_pairs.jsonl (the vector lab's starter pairs) of this repository, read-only (nothing else: no .git, no
// target/, no other data/), with the right MIME types (application/wasm for the engine, application/octet-stream for
// .gguf and .safetensors), ETag/Last-Modified, single HTTP ranges (206), the page's Content-Security-Policy and
// cross-origin isolation (Cross-Origin-Opener-Policy: same-origin + Cross-Origin-Embedder-Policy: require-corp, so
// that `crossOriginIsolated` is true and SharedArrayBuffer, i.e. wasm threads, is available; a cross-origin
// ?model=URL is a CORS fetch, which require-corp allows).
// For the llama.cpp comparison (scripts/bench-wllama.mjs, not part of the demo) it also serves the ES module and wasm
// of the @wllama/wllama dev dependency (node_modules/@wllama/wllama/esm/ only; 404 when it is not installed). That
// page is isolated too, so that `bench-wllama.mjs --threads N` can give wllama its pthread pool.
//
// Environment:
//   PORT                      port to listen on (default 8080; falls back to a free port when it is taken)
//   DESTEIN_CONNECT_SRC       extra origins the page may fetch from (space separated, e.g. for a cross-origin
//                             ?model=URL: "https://example.org"); added to connect-src of the CSP header and of the
//                             <meta> CSP in index.html, which this server rewrites when it serves the page. The other
//                             origin must also answer with CORS headers.
//   DESTEIN_PKG=DIR           serve the engine builds (pkg/) from DIR, a directory laid out as scripts/build-wasm.sh
//                             writes pkg/: scripts/bench-builds.mjs uses it to compare two builds in one session each
//   DESTEIN_TEST_FAULTS=1     enables fault routes for the end-to-end tests (never enable it otherwise):
//     /__fault/truncate/<N>/<path>   sends the full Content-Length, then closes the connection after N body bytes
//     /__fault/status/<code>/<path>  answers with that HTTP status and no body
//     /__fault/corrupt/<path>        the file with one byte flipped in its middle (fails any sha256 check)
//     /__fault/flaky/<K>/<path>      fails (503) the first K requests for <path>, then serves it
//     /__fault/slow/<B>/<path>       sends at most B bytes per second
//     /__fault/cutonce/<N>/<path>    the first request for <path> is cut after N body bytes, as truncate; later ones
//                                    are served whole, with HTTP ranges (a download that can resume)
//     /__fault/log                   JSON: the fault requests seen so far ({kind, path, range, status})
//   DESTEIN_TEST_OVERLAY=DIR  (only with DESTEIN_TEST_FAULTS=1) files under DIR shadow those of the repository at the
//                             same relative path (still only what is served without it): the tests use it to
//                             serve a mock engine and small fixtures.
import http from "node:http";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const HOST = "127.0.0.1";
const FAULTS = process.env.DESTEIN_TEST_FAULTS === "1";
const OVERLAY = FAULTS && process.env.DESTEIN_TEST_OVERLAY ? path.resolve(process.env.DESTEIN_TEST_OVERLAY) : null;
const PKG = process.env.DESTEIN_PKG ? path.resolve(process.env.DESTEIN_PKG) : null;
const EXTRA_CONNECT = (process.env.DESTEIN_CONNECT_SRC || "").split(/\s+/).filter(Boolean);
for (const origin of EXTRA_CONNECT) {
  if (!/^https?:\/\/[a-z0-9.\-:[\]]+$/i.test(origin)) {
    console.error(`DESTEIN_CONNECT_SRC: '${origin}' is not an origin like https://example.org`);
    process.exit(2);
  }
}

// Only these are served. Everything else is 404.
const ALLOWED_FILES = new Set(["index.html", "destein-config.json", "coi-sw.js", "data/steering_pairs.jsonl"]);
const WLLAMA_DIR = "node_modules/@wllama/wllama/esm/";
const ALLOWED_DIRS = ["www/", "pkg/", "models/", "data/judges/", "data/concepts/", WLLAMA_DIR];
// The wllama benchmark page. wllama starts its worker from a blob: URL made from a string, which the demo's policy
// refuses (worker-src 'self', Trusted Types): this page alone gets the same policy with blob: workers allowed and
// without Trusted Types.
const WLLAMA_PAGE = "www/bench/wllama.html";

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".jsonl": "application/jsonl; charset=utf-8",
  ".wasm": "application/wasm",
  ".gguf": "application/octet-stream",
  ".safetensors": "application/octet-stream",
  ".bin": "application/octet-stream",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
};

// The policy of index.html's <meta> tag, plus what only a header can say (frame-ancestors).
// Keep the two in step: the test suite checks that they agree.
function cspHeader(wllamaPage = false) {
  const connect = ["'self'", ...EXTRA_CONNECT].join(" ");
  const workers = wllamaPage ? "'self' blob:" : "'self'";
  const trustedTypes = wllamaPage ? "" : "require-trusted-types-for 'script'; trusted-types destein-worker; ";
  return (
    `default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src ${workers}; ` +
    `connect-src ${connect}; img-src 'self'; style-src 'self'; base-uri 'none'; form-action 'none'; ` +
    `object-src 'none'; ${trustedTypes}frame-ancestors 'none'`
  );
}

function securityHeaders(wllamaPage = false) {
  return {
    "Content-Security-Policy": cspHeader(wllamaPage),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
  };
}

function resolvePath(urlPath) {
  let rel;
  try {
    rel = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (rel.includes("\0")) return null;
  rel = rel.replace(/^\/+/, "");
  if (rel === "") rel = "index.html";
  const norm = path.posix.normalize(rel);
  if (norm.startsWith("..") || norm.split("/").some((seg) => seg.startsWith("."))) return null;
  if (!ALLOWED_FILES.has(norm) && !ALLOWED_DIRS.some((d) => norm.startsWith(d))) return null;
  if (OVERLAY) {
    const over = path.join(OVERLAY, norm);
    if (over.startsWith(OVERLAY + path.sep) && fs.existsSync(over)) return over;
  }
  if (PKG && norm.startsWith("pkg/")) return path.join(PKG, norm.slice("pkg/".length));
  const abs = path.join(ROOT, norm);
  if (!abs.startsWith(ROOT + path.sep)) return null;
  return abs;
}

function parseRange(header, size) {
  // Single range only: bytes=a-b, bytes=a-, bytes=-n. Returns {start,end} or "invalid" or null (ignore).
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null;
  let start, end;
  if (m[1] === "" && m[2] === "") return "invalid";
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "invalid";
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return "invalid";
  return { start, end };
}

const faultCounts = new Map();
const faultLog = [];

function parseFault(pathname) {
  if (!FAULTS || !pathname.startsWith("/__fault/")) return null;
  const parts = pathname.slice("/__fault/".length).split("/");
  const kind = parts.shift();
  const withArg = { truncate: 1, status: 1, flaky: 1, slow: 1, cutonce: 1, corrupt: 0, log: 0 };
  if (!(kind in withArg)) return { bad: true };
  const arg = withArg[kind] ? Number(parts.shift()) : 0;
  if (!Number.isFinite(arg) || arg < 0) return { bad: true };
  return { kind, arg, rest: "/" + parts.join("/") };
}

function send(res, status, body, headers = {}) {
  const buf = Buffer.from(body);
  res.writeHead(status, {
    ...securityHeaders(),
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": buf.length,
    "Cache-Control": "no-store",
    ...headers,
  });
  res.end(buf);
}

async function handle(req, res) {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return send(res, 405, "method not allowed\n", { Allow: "GET, HEAD" });
  }
  let url;
  try {
    url = new URL(req.url, `http://${HOST}`);
  } catch {
    return send(res, 400, "bad request\n");
  }
  let pathname = url.pathname;
  const fault = parseFault(pathname);
  if (fault?.bad) return send(res, 404, "unknown fault route\n");
  if (fault?.kind === "log") return send(res, 200, JSON.stringify(faultLog), { "Content-Type": "application/json" });
  if (fault) pathname = fault.rest;
  // This request's entry in the fault log (its status filled in when the answer ends, cut short or not).
  const logged = fault ? { kind: fault.kind, path: pathname, range: req.headers.range ?? null, status: null } : null;
  if (logged) faultLog.push(logged);
  if (logged) res.on("close", () => (logged.status = res.statusCode));
  if (fault?.kind === "flaky" || fault?.kind === "cutonce") {
    const n = (faultCounts.get(`${fault.kind}:${pathname}`) || 0) + 1;
    faultCounts.set(`${fault.kind}:${pathname}`, n);
    fault.nth = n;
  }
  if (fault?.kind === "status") return send(res, fault.arg || 500, `fault: status ${fault.arg}\n`);
  if (fault?.kind === "flaky" && fault.nth <= fault.arg) {
    return send(res, 503, `fault: flaky request ${fault.nth} of ${fault.arg}\n`);
  }
  // Whether this response honours Range requests, and whether its body is tampered with.
  const ranged = !fault || fault.kind === "cutonce";
  const tamper = fault && fault.kind !== "flaky" && !(fault.kind === "cutonce" && fault.nth > 1);

  const abs = resolvePath(pathname);
  if (!abs) return send(res, 404, "not found\n");
  let st;
  try {
    st = await fsp.stat(abs);
  } catch {
    return send(res, 404, "not found\n");
  }
  if (st.isDirectory()) return send(res, 404, "not found\n");
  const ext = path.extname(abs).toLowerCase();
  const type = MIME[ext] || "application/octet-stream";
  const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}${fault ? "-" + fault.kind : ""}"`;
  const headers = {
    ...securityHeaders(path.relative(ROOT, abs) === WLLAMA_PAGE),
    "Content-Type": type,
    "Cache-Control": "no-cache",
    ETag: etag,
    "Last-Modified": st.mtime.toUTCString(),
    "Accept-Ranges": ranged ? "bytes" : "none",
  };

  // index.html: rewrite the <meta> CSP when extra connect-src origins are configured.
  if (path.basename(abs) === "index.html" && !fault) {
    let html = await fsp.readFile(abs, "utf8");
    if (EXTRA_CONNECT.length) {
      html = html.replace(
        /(<meta http-equiv="Content-Security-Policy" content="[^"]*?connect-src 'self')/,
        `$1 ${EXTRA_CONNECT.join(" ")}`,
      );
    }
    const buf = Buffer.from(html);
    res.writeHead(200, { ...headers, "Content-Length": buf.length, "Accept-Ranges": "none" });
    return res.end(req.method === "HEAD" ? undefined : buf);
  }

  if (!fault && req.headers["if-none-match"] === etag) {
    res.writeHead(304, headers);
    return res.end();
  }

  let start = 0;
  let end = st.size - 1;
  let status = 200;
  const rangeHeader = req.headers.range;
  if (rangeHeader && ranged) {
    const ifRange = req.headers["if-range"];
    const ifRangeOk = !ifRange || ifRange === etag || ifRange === headers["Last-Modified"];
    const r = ifRangeOk ? parseRange(rangeHeader, st.size) : null;
    if (r === "invalid") {
      return send(res, 416, "range not satisfiable\n", { "Content-Range": `bytes */${st.size}` });
    }
    if (r) {
      ({ start, end } = r);
      status = 206;
      headers["Content-Range"] = `bytes ${start}-${end}/${st.size}`;
    }
  }
  const length = st.size === 0 ? 0 : end - start + 1;
  res.writeHead(status, { ...headers, "Content-Length": length });
  if (req.method === "HEAD" || length === 0) return res.end();

  const stream = fs.createReadStream(abs, { start, end, highWaterMark: 256 * 1024 });
  if (!tamper) {
    stream.on("error", () => res.destroy());
    return stream.pipe(res);
  }

  // Fault routes that tamper with the body.
  let sent = 0;
  const mid = Math.floor(st.size / 2);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  stream.on("error", () => res.destroy());
  res.on("close", () => stream.destroy());
  for await (let chunk of stream) {
    if (res.destroyed) return;
    if ((fault.kind === "truncate" || fault.kind === "cutonce") && sent + chunk.length >= fault.arg) {
      const head = chunk.subarray(0, fault.arg - sent);
      if (head.length) await new Promise((r) => res.write(head, r));
      stream.destroy();
      // Give the bytes a moment to leave, then cut the connection without finishing the body.
      await sleep(50);
      res.socket?.destroy();
      return;
    }
    if (fault.kind === "corrupt" && sent <= mid && mid < sent + chunk.length) {
      chunk = Buffer.from(chunk);
      chunk[mid - sent] ^= 0xff;
    }
    if (fault.kind === "slow" && fault.arg > 0) {
      for (let off = 0; off < chunk.length; off += fault.arg) {
        const piece = chunk.subarray(off, off + fault.arg);
        if (!res.write(piece)) await new Promise((r) => res.once("drain", r));
        await sleep(1000);
        if (res.destroyed) return;
      }
    } else if (!res.write(chunk)) {
      await new Promise((r) => res.once("drain", r));
    }
    sent += chunk.length;
  }
  res.end();
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error("serve.mjs:", err);
    if (!res.headersSent) send(res, 500, "internal error\n");
    else res.destroy();
  });
});

function listen(port) {
  return new Promise((resolve, reject) => {
    const onError = (err) => {
      server.off("listening", onListening);
      reject(err);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve(server.address().port);
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(port, HOST);
  });
}

const wanted = process.env.PORT === undefined || process.env.PORT === "" ? 8080 : Number(process.env.PORT);
if (!Number.isInteger(wanted) || wanted < 0 || wanted > 65535) {
  console.error(`PORT must be a port number, not '${process.env.PORT}'`);
  process.exit(2);
}
let port;
try {
  port = await listen(wanted);
} catch (err) {
  if (err.code !== "EADDRINUSE" && err.code !== "EACCES") throw err;
  console.error(`port ${wanted} is not available (${err.code}); using a free port instead`);
  port = await listen(0);
}
console.log(`destein demo: http://${HOST}:${port}/`);
if (FAULTS) console.log("fault routes enabled under /__fault/ (DESTEIN_TEST_FAULTS=1)");
if (OVERLAY) console.log(`test overlay: ${OVERLAY}`);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
