#!/usr/bin/env bash
# Reverse interop (interop/): a store written by mqstore, opened and read back by RocketMQ's own
# store, the Rust port's rocketmq-store 1.0.0 (consume queues, commit-log lookups, index by key).
# The port takes about 10 minutes to build the first time (CARGO_TARGET_DIR to share a build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT/interop"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/interop/target}
cargo build --release -q
RUST_LOG=${RUST_LOG:-error} timeout 600 "$CARGO_TARGET_DIR/release/mqstore-interop" "$@"
