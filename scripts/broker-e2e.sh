#!/usr/bin/env bash
# mqstore-broker's end-to-end tests with RocketMQ's official Rust client (broker/e2e): sync,
# async and batch sends consumed exactly once in queue order, lookups by key and id, tag
# subscriptions, two consumers splitting a group's queues, a broker restart resumed from the
# committed offsets, a sync master whose every acknowledged send is on its slave.
# The client takes about 10 minutes to build the first time (CARGO_TARGET_DIR to share a build);
# the tests then run in about 30 s. Not part of .ci/run for that build time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT/broker/e2e"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/broker/e2e/target}
started=$SECONDS
cargo build --release --tests -q
echo "# built in $((SECONDS - started)) s" >&2
log=$(mktemp)
# The client logs at info on its own; its lines go to the log, the verdicts to the terminal.
if timeout 900 cargo test --release -- --test-threads 1 >"$log" 2>&1; then status=0; else status=$?; fi
grep -aE '^test .* \.\.\. |^test result|panicked at|^---- ' "$log" | sed -E 's/\x1b\[[0-9;]*m//g' | cut -c1-200
[[ $status == 0 ]] || { echo "# failed: full output in $log" >&2; exit "$status"; }
rm -f "$log"
