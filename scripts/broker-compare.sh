#!/usr/bin/env bash
# mqstore-broker against the Rust port's broker (rocketmq-namesrv + rocketmq-broker 1.0.0 on its
# own store), both driven by the same client program on RocketMQ's official Rust client
# (../shared/peers/rocketmq-broker/run.sh): sync sends of N x 1 KiB from 1 and 8 tasks (rate,
# p50, p99), a key query, a view by id, then a push consumer that must get every message
# exactly once. Async and sync flush, in one run, so the figures compare as ratios.
#   N (20000), FLUSHES ("async sync"), PORT (19876, mqstore-broker's), SHARED (../shared).
# The first run builds the client and installs the port's broker and name server (~25 min).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
HARNESS="$SHARED/peers/rocketmq-broker/run.sh"
export N=${N:-20000}
PORT=${PORT:-19876}
FLUSHES=${FLUSHES:-async sync}
work=$(mktemp -d)
broker_pid=
cleanup() { [[ -n "$broker_pid" ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

(cd "$ROOT/broker" && cargo build --release -q)
BROKER="$ROOT/broker/target/release/mqstore-broker"

run_mqstore() { # flush -> summary file
  local flush=$1 out=$2
  rm -rf "$work/store"
  cat >"$work/broker.toml" <<TOML
listen = "127.0.0.1:$PORT"
[store]
dir = "$work/store"
[store.flush]
mode = "$flush"
TOML
  "$BROKER" --config "$work/broker.toml" >"$work/broker.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  NAMESRV="127.0.0.1:$PORT" OUT="$out.raw" bash "$HARNESS" >"$out" 2>&1
  kill -TERM "$broker_pid"; wait "$broker_pid" || true; broker_pid=
}

run_port() {
  local flush=$1 out=$2
  local mode=ASYNC_FLUSH; [[ $flush == sync ]] && mode=SYNC_FLUSH
  FLUSH=$mode OUT="$out.raw" bash "$HARNESS" >"$out" 2>&1
}

for flush in $FLUSHES; do
  echo "# $flush flush: mqstore-broker ($(date -u +%T))" >&2
  run_mqstore "$flush" "$work/mqstore-$flush"
  echo "# $flush flush: rocketmq-broker 1.0.0 ($(date -u +%T))" >&2
  run_port "$flush" "$work/port-$flush"
done

python3 - "$work" "$N" $FLUSHES <<'PY'
import re, sys
work, n, flushes = sys.argv[1], sys.argv[2], sys.argv[3:]
def parse(path):
    text = open(path).read()
    row = {}
    for p in ("1", "8"):
        m = re.search(rf"PRODUCE P={p}: ok=(\d+) failed=(\d+) .*?rate=(\d+) msgs/s .*?p50=(\d+) p90=\d+ p99=(\d+)", text)
        row[p] = m.groups() if m else None
    m = re.search(r"CONSUME: .*?rate_first_to_last=(\d+) msgs/s exactly_once=(\w+)", text)
    row["consume"] = m.groups() if m else None
    m = re.search(r"QUERY BY KEY: (\d+) message", text)
    row["query"] = m.group(1) if m else "failed"
    row["view"] = "ok" if "VIEW BY offsetMsgId: ok" in text else "failed"
    return row
print(f"N = {n} sync sends of 1 KiB per run; rates in msgs/s, latencies in us")
print(f"{'broker':<24}{'flush':<7}{'P=1 rate':>9}{'p50':>7}{'p99':>7}{'P=8 rate':>10}{'p50':>7}{'p99':>7}{'consume':>9}  once  query view")
for flush in flushes:
    for name, label in (("mqstore", "mqstore-broker"), ("port", "rocketmq-broker 1.0.0")):
        r = parse(f"{work}/{name}-{flush}")
        def cells(p, width):
            if not r[p]:
                return f"{'-':>{width}}{'-':>7}{'-':>7}"
            ok, failed, rate, p50, p99 = r[p]
            # A run with failed sends is marked: its rate is not comparable.
            rate = rate if failed == "0" else rate + "!"
            return f"{rate:>{width}}{p50:>7}{p99:>7}"
        c = r["consume"] or ("-", "-")
        print(f"{label:<24}{flush:<7}{cells('1', 9)}{cells('8', 10)}{c[0]:>9}  {c[1]:<5} {r['query']:>5} {r['view']}")
PY
echo "request codes the client used against mqstore-broker:"
awk '/^request codes/ {on=1; next} on' "$work/mqstore-$(echo $FLUSHES | cut -d' ' -f1)"
