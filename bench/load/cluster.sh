#!/usr/bin/env bash
# Load across relay nodes (issue 14), loopback only, bounded in time: one
# Cassandra node from ../shared/cassandra, one redis-server and two release
# relays on one keyspace, then two closed-loop runs of data_plane.sh's
# workload (200 devices, 8 senders, batches of 10 x 256 B), each on a fresh
# keyspace:
#   1. one node: senders and sockets on relay A;
#   2. two nodes: senders on relay A, every socket on relay B, so every
#      message crosses Redis.
# Each prints msgs/s, latency percentiles, lost, and CPU per message of
# relay A, relay B, Redis and the Cassandra JVM.
# A warm-up run comes first (OBSCURA_BENCH_WARMUP_SECS, default 60), then the two layouts
# alternately, [runs] times each.
# A/B: OBSCURA_RELAYS="OLD NEW" (relay binaries; default target/release/obscura-relay) runs
# each layout with each binary in turn within every run, on the one Cassandra node, and ends
# with the medians per binary of the two-node layout: msgs/s and the relays' CPU (A + B) per
# delivered message.
# Usage: bench/load/cluster.sh [seconds per run, default 10] [runs, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
runs=${2:-3}
cassandra=../shared/cassandra
work=$(mktemp -d -t obscura-cluster-load-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$cassandra/stop-node" "$work/cql" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cql_port=19642
read -r cql_pid _ < <("$cassandra/start-node" --dir "$work/cql" --port "$cql_port")
redis_port=16479
redis-server --port "$redis_port" --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!; pids+=("$redis_pid")

# One token secret for both relays (--store scylla has no key file).
jwt_secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')

read -r -a relays <<<"${OBSCURA_RELAYS:-target/release/obscura-relay}"
binary=${relays[0]}

relay() { # $1 = name, $2 = keyspace; prints "pid port" (runs $binary)
  local dir="$work/$1-$2"; mkdir -p "$dir"
  "$binary" --server-host 127.0.0.1 --server-port 0 --server-mgmt-port 0 \
    --data-dir "$dir/data" --ready-file "$dir/ready" \
    --store scylla --scylla-nodes "127.0.0.1:$cql_port" --scylla-keyspace "$2" \
    --scylla-replication-factor 1 --scylla-create-schema true \
    --pubsub-url "redis://127.0.0.1:$redis_port" --auth-jwt-secret "$jwt_secret" \
    --rate-limit-per-second 1000000 --rate-limit-burst 1000000 \
    --auth-rate-limit-per-second 1000000 --auth-rate-limit-burst 1000000 >"$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do [ -f "$dir/ready" ] && break; sleep 0.1; done
  local port; port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['main_port'])" "$dir/ready")
  echo "$pid $port"
}

run() { # $1 = label, $2 = keyspace, $3 = "one" or "two"
  read -r a_pid a_port < <(relay a "$2"); pids+=("$a_pid")
  read -r b_pid b_port < <(relay b "$2"); pids+=("$b_pid")
  local receive=$a_port
  [ "$3" = two ] && receive=$b_port
  echo "== $1 [$binary]"
  target/release/obscura-load --target "127.0.0.1:$a_port" --send-targets "127.0.0.1:$a_port" \
    --receive-targets "127.0.0.1:$receive" --users 200 --senders 8 --batch 10 --payload-bytes 256 \
    --duration-secs "$secs" --cpu-pid "relay-a=$a_pid" --cpu-pid "relay-b=$b_pid" \
    --cpu-pid "redis=$redis_pid" --cpu-pid "cassandra=$cql_pid" | tee "$work/out-$2"
  if [[ "$2" == load_two_* ]]; then # a measured two-node run (not the warm-up)
    python3 - "$work/out-$2" "$binary" >>"$work/ab" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rate = re.search(r"throughput end to end: ([0-9.]+) msgs/s", text)
cpu = [float(c) for c in re.findall(r"relay-[ab] CPU: [0-9.]+ s, ([0-9.]+) µs", text)]
print(sys.argv[2], rate.group(1) if rate else "nan", sum(cpu) if len(cpu) == 2 else "nan")
EOF
  fi
  kill "$a_pid" "$b_pid"; wait "$a_pid" "$b_pid" 2>/dev/null || true
}

# A fresh JVM keeps getting faster for minutes: a warm-up run first (its figures are printed
# but are not the result), then the two layouts alternately, so that drift weighs on both.
secs_measured=$secs
secs=${OBSCURA_BENCH_WARMUP_SECS:-60}
run "warm-up (two nodes; not a result)" load_warm two
secs=$secs_measured
for i in $(seq "$runs"); do
  for r in "${!relays[@]}"; do
    binary=${relays[$r]}
    run "one node, run $i (senders and sockets on relay A)" "load_one_${i}_$r" one
    run "two nodes, run $i (senders on relay A, sockets on relay B)" "load_two_${i}_$r" two
  done
done
echo "== two nodes, medians per binary: msgs/s, relays' CPU (A + B) per delivered message"
python3 - "$work/ab" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    binary, rate, cpu = line.split()
    runs.setdefault(binary, []).append((float(rate), float(cpu)))
for binary, figures in runs.items():
    rates = [r for r, _ in figures]
    cpus = [c for _, c in figures]
    print(f"{binary}: {statistics.median(rates):.0f} msgs/s, {statistics.median(cpus):.1f} µs/msg "
          f"(runs: {', '.join(f'{r:.0f}/{c:.1f}' for r, c in figures)})")
EOF
