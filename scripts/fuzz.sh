#!/usr/bin/env bash
# Fuzz every parser that takes untrusted bytes (fuzz/fuzz_targets/: gguf, vectors, jsonl, judges) with cargo-fuzz
# (libFuzzer, the nightly toolchain), each for SECONDS (default 300), starting from seeds built from the project's
# real files (scripts/fuzz-seeds.py) plus the committed regression inputs (fuzz/regressions/). A single allocation
# over 512 MB counts as a finding (a file must be refused before it makes one), as does any panic, hang (> 10 s) or
# out-of-memory. Prints each target's executions, coverage and findings; logs in fuzz/logs/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
#
# Findings land in fuzz/artifacts/TARGET/; once fixed, copy each into fuzz/regressions/TARGET/, which the test
# command replays (tests/fuzz_regressions.rs); FUZZ_KEEP=1 also refreshes that set from the minimised corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf vectors jsonl judges)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
[ -d fuzz/corpus/gguf ] || python3 scripts/fuzz-seeds.py
mkdir -p fuzz/logs
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/regressions/$t"
  echo "fuzzing $t for ${seconds} s…"
  status=0
  cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/regressions/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
    > "fuzz/logs/$t.log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "fuzz/logs/$t.log" | tail -1 | grep -o '[0-9]*' || echo '?')
  ft=$(grep -o 'ft: [0-9]*' "fuzz/logs/$t.log" | tail -1 | grep -o '[0-9]*' || echo '?')
  crashes=$(ls "fuzz/artifacts/$t" 2>/dev/null | wc -l)
  echo "$t: $execs executions, coverage $cov edges ($ft features), corpus $(ls "fuzz/corpus/$t" | wc -l) inputs, findings $crashes (exit $status)"
done

# FUZZ_KEEP=1: minimise each corpus (cargo fuzz cmin) and keep its inputs up to 32 KB (the first 300 by name) as the
# regression set the tests replay, beside any finding already kept there.
if [ "${FUZZ_KEEP:-}" = 1 ]; then
  for t in "${targets[@]}"; do
    cargo +nightly fuzz cmin -O "$t" "fuzz/corpus/$t" > "fuzz/logs/$t.cmin.log" 2>&1
    find "fuzz/corpus/$t" -type f -size -33k | sort | head -300 | xargs -r cp -t "fuzz/regressions/$t/"
    # The seed model that loads completely (cmin renames the corpus files by their content).
    [ "$t" != gguf ] || { python3 scripts/fuzz-seeds.py >/dev/null && cp fuzz/corpus/gguf/small-model.gguf fuzz/regressions/gguf/; }
    echo "$t: $(ls "fuzz/regressions/$t" | wc -l) inputs kept in fuzz/regressions/$t"
  done
fi
