#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/) for a bounded time: scripts/fuzz.sh [SECONDS] (default 60).
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer); only a stable toolchain is
# installed here, so the run sets RUSTC_BOOTSTRAP=1, which unlocks them on stable. Without
# AddressSanitizer (`-s none`, the default here) libFuzzer still finds panics, overflows
# (debug assertions are on) and stack exhaustion; pass SANITIZER=address for ASan.
# The deterministic, always-on counterpart is tests/hostile_input.rs (proptest, fixed seed).
set -euo pipefail
secs="${1:-60}"
cd "$(dirname "$0")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/decode fuzz/corpus/pipeline
cp -n tests/fixtures/contact-events-*.ndjson fuzz/corpus/decode/ 2>/dev/null || true
cp -n tests/fixtures/contact-events-*.ndjson fuzz/corpus/pipeline/ 2>/dev/null || true
for target in decode pipeline; do
    echo "== fuzzing $target for ${secs}s"
    cargo fuzz run --debug-assertions -s "${SANITIZER:-none}" "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048
done
