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

relay() { # $1 = name, $2 = keyspace; prints "pid port"
  local dir="$work/$1-$2"; mkdir -p "$dir"
  target/release/obscura-relay --server-host 127.0.0.1 --server-port 0 --server-mgmt-port 0 \
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
  echo "== $1"
  target/release/obscura-load --target "127.0.0.1:$a_port" --send-targets "127.0.0.1:$a_port" \
    --receive-targets "127.0.0.1:$receive" --users 200 --senders 8 --batch 10 --payload-bytes 256 \
    --duration-secs "$secs" --cpu-pid "relay-a=$a_pid" --cpu-pid "relay-b=$b_pid" \
    --cpu-pid "redis=$redis_pid" --cpu-pid "cassandra=$cql_pid"
  kill "$a_pid" "$b_pid"; wait "$a_pid" "$b_pid" 2>/dev/null || true
}

# A fresh JVM keeps getting faster for minutes: a warm-up run first (its figures are printed
# but are not the result), then the two layouts alternately, so that drift weighs on both.
secs_measured=$secs
secs=${OBSCURA_BENCH_WARMUP_SECS:-60}
run "warm-up (two nodes; not a result)" load_warm two
secs=$secs_measured
for i in $(seq "$runs"); do
  run "one node, run $i (senders and sockets on relay A)" "load_one_$i" one
  run "two nodes, run $i (senders on relay A, sockets on relay B)" "load_two_$i" two
done
