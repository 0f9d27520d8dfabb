#!/usr/bin/env bash
# The machine's ceilings, the peer crates and mqstore on the same workload, in one run, so the
# figures can be compared as ratios (these machines are shared and their disks change speed).
# See docs/performance.md. Takes about 10 minutes (plus the peers' first cold build).
#   REPS (3): repetitions of each mqstore run; PEERS, N_ASYNC, N_SYNC1, N_SYNC8: see shared/peers/run.sh;
#   ONLY_MQSTORE=1: skip the ceilings and the peers.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
REPS=${REPS:-3}
N_ASYNC=${N_ASYNC:-1000000}
N_SYNC1=${N_SYNC1:-2000}
N_SYNC8=${N_SYNC8:-20000}
N_SYNC64=${N_SYNC64:-200000}
export REPS N_ASYNC N_SYNC1 N_SYNC8

(cd "$ROOT" && cargo build --release -q)
BIN="$ROOT/target/release/mqstore"

if [[ "${ONLY_MQSTORE:-0}" != 1 ]]; then
  echo "# ceilings ($(date -u +%FT%TZ))"
  bash "$SHARED/limits/ceilings.sh"
  echo "# peers"
  bash "$SHARED/peers/run.sh" 2>&1 | grep -E '^(peer=|# medians|# rocketmq|default|crc-on)'
fi

echo "# mqstore (1 KiB bodies, 4 queues, 1 GiB segments as the peers use; median of $REPS)"
SUMMARY='
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
med = lambda k: statistics.median(r[k] for r in rows)
r0 = rows[0]
print("mqstore=%s flush=%s producers=%s put_batch=%s in_flight=%s msgs=%s append_msgs_per_s=%.0f append_MiBps=%.1f read_msgs_per_s=%.0f "
      "p50_us=%.1f p99_us=%.1f p999_us=%.1f runs=%d" % (sys.argv[1], r0["flush"], r0["producers"], r0["put_batch"], r0["in_flight"], r0["messages"],
      med("append_msgs_per_s"), med("append_mib_per_s"), med("read_msgs_per_s"), med("p50_us"), med("p99_us"),
      med("p999_us"), len(rows)))
'
run() { # label args...
  local label=$1; shift
  for _ in $(seq 1 "$REPS"); do
    "$BIN" bench --json --size 1024 --queues 4 --segment-size 1073741824 "$@"
  done | python3 -c "$SUMMARY" "$label"
}
run async-1     --flush async    --producers 1  --messages "$N_ASYNC"
run buffered-1  --flush buffered --producers 1  --messages "$N_ASYNC"
run sync-1      --flush sync     --producers 1  --messages "$N_SYNC1"
run sync-8      --flush sync     --producers 8  --messages "$N_SYNC8"
run sync-64     --flush sync     --producers 64 --messages "$N_SYNC64"
# 64 messages in flight from 8 threads: the group-commit ceiling without a thread per waiting put.
run sync-8x8    --flush sync     --producers 8  --messages "$N_SYNC64" --put-batch 8
# 64 puts in flight from one thread with put_async: the group-commit service thread leads.
run sync-1x64   --flush sync     --producers 1  --messages "$N_SYNC64" --in-flight 64
