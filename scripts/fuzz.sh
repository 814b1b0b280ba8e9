#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target (Sources/EFSCFuzz) under libFuzzer for
# SECONDS, starting from its committed corpus (fuzz/corpus/<target>/; new
# inputs go to fuzz/work/<target>/, not committed). Per input: at most 10 s
# (-timeout) and 2 GiB (-rss_limit_mb), so a slow or hungry input is a
# finding like a crash. A finding is written to fuzz/findings/<target>-*;
# reproduce it with `.build/release/efsc-fuzz <target> FILE` (a plain build
# replays files), fix it, and add it to fuzz/corpus/<target>/ as regress-*.
# Exit status: 0 when no target found anything, 1 otherwise.
set -uo pipefail
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
BIN=${EFSC_FUZZ_BIN:-.build-fuzz/release/efsc-fuzz}
[ -x "$BIN" ] || { echo "fuzz: $BIN is missing (make fuzz builds it)"; exit 1; }
mkdir -p fuzz/work fuzz/findings
failed=()
for t in "${TARGETS[@]}"; do
  mkdir -p "fuzz/work/$t"
  echo "== fuzz $t for ${SECONDS_PER_TARGET} s"
  if SWIFT_BACKTRACE=enable=no EFSC_FUZZ_TARGET="$t" "$BIN" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="fuzz/findings/$t-" "fuzz/work/$t" "fuzz/corpus/$t" > "fuzz/work/$t.log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "fuzz/work/$t.log" | sed "s/^/   $t /"
  else
    failed+=("$t")
    echo "   $t: FINDING — $(grep -E 'ERROR: libFuzzer|SUMMARY|Test unit written' "fuzz/work/$t.log" | head -3 | tr '\n' ' ')"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzz: findings in ${failed[*]} (fuzz/findings/, logs in fuzz/work/)"
  exit 1
fi
echo "== fuzz: no findings in ${#TARGETS[@]} targets (${SECONDS_PER_TARGET} s each)"
