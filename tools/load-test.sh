#!/usr/bin/env bash
# Capacity of one box: N concurrent real-time AudioSocket calls through the real
# `calltone serve` (the release build, the Whisper model in models/, the embedded broker),
# for each N in the list; prints shed fraction, utterance-end→transcript and prosody-alert
# latencies (p50/p95), calltone's CPU, the box's CPU busy and load average per N.
#
#   tools/load-test.sh [COUNTS]          COUNTS default 1,2,4,6,8
#
# Environment (optional): CALLTONE_LOAD_SECONDS (call length, default 44),
# CALLTONE_LOAD_STAGGER (s between call starts, default 1.5), CALLTONE_LOAD_ASR (extra [asr]
# lines, e.g. 'workers = 2'), CALLTONE_LOAD_MQTT (broker URL instead of the embedded one).
# Run it on a quiet box: other work on the same cores shows up as shedding and latency.
# The table also goes to target/load-test.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export CALLTONE_LOAD_CALLS="${1:-${CALLTONE_LOAD_CALLS:-1,2,4,6,8}}"
[ -f models/ggml-tiny.en.bin ] || bash models/fetch-offline.sh tiny.en
cargo test --release --test load --no-run --quiet
cargo test --release --test load capacity -- --ignored --nocapture --test-threads 1 \
  2>&1 | tee target/load-test.txt
