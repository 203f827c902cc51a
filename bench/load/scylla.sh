#!/usr/bin/env bash
# Load figure of the ScyllaDB store (issue 13): data_plane.sh's closed-loop workload (200
# users, 8 senders, batches of 10 x 256 B, rate limits raised) on --store scylla against one
# local Cassandra 3.11 node from ../shared/cassandra, started here and stopped at the end.
# Reports msgs/s, latency, lost, and the CPU per message of the relay (the load tool's
# --server-pid) and of the database (the JVM's /proc ticks, read here).
# Loopback only, bounded in time. Needs a release build.
# The node serves a warm-up run first (OBSCURA_BENCH_WARMUP_SECS, default 120: a fresh JVM
# keeps getting faster for minutes, from about 670 to 300 µs of CPU per message here; its
# figures are printed but are not the result), then the measured runs, each with a fresh relay.
# Usage: bench/load/scylla.sh [seconds per run, default 10] [measured runs, default 3] [relay flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}; runs=${2:-3}; shift 2 || shift $#
CASSANDRA=$(cd .. && pwd)/shared/cassandra
port=${OBSCURA_BENCH_CQL_PORT:-19542}
dir=$(mktemp -d)
# --store scylla has no key file: a token secret of its own for this run.
jwt_secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
read -r dbpid _ < <("$CASSANDRA/start-node" --dir "$dir/node" --port "$port" --heap 1G)
stop() {
  "$CASSANDRA/stop-node" "$dir/node" >/dev/null 2>&1 || true
  kill -0 "$dbpid" 2>/dev/null && kill -9 "$dbpid" 2>/dev/null
  rm -rf "$dir"
}
trap stop EXIT
run() { # $1 = label; relay flags from the command line
  local label=$1; shift
  rm -f "$dir/ready"
  "${relay:-target/release/obscura-relay}" --server-host 127.0.0.1 --server-port 0 --server-mgmt-port 0 \
    --data-dir "$dir/data" --ready-file "$dir/ready" \
    --store scylla --scylla-nodes "127.0.0.1:$port" --scylla-keyspace bench \
    --scylla-replication-factor 1 --scylla-create-schema true --auth-jwt-secret "$jwt_secret" \
    --rate-limit-per-second 1000000 --rate-limit-burst 1000000 \
    --auth-rate-limit-per-second 1000000 --auth-rate-limit-burst 1000000 "$@" >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -f "$dir/ready" ] && break; sleep 0.1; done
  relay_port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['main_port'])" "$dir/ready")
  echo "== $label --store scylla $*: Cassandra 3.11 node pid $dbpid on port $port"
  threads() { # "name ticks" of every thread of the relay, summed by name
    for t in /proc/"$pid"/task/*; do
      echo "$(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
    done | awk '{s[$1] += $2} END {for (n in s) print n, s[n]}' | sort
  }
  ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system clock ticks of a process
  threads >"$dir/before"
  local db_before; db_before=$(ticks "$dbpid")
  target/release/obscura-load --target "127.0.0.1:$relay_port" --duration-secs "$secs" \
    --server-pid "$pid" --prefix "$label" | tee "$dir/report"
  local db_after; db_after=$(ticks "$dbpid")
  threads >"$dir/after"
  # The database's CPU per delivered message, as the tool reports the relay's.
  awk -v t=$((db_after - db_before)) -v hz="$(getconf CLK_TCK)" \
    '/^delivered:/ {n = $2} END {printf "database CPU: %.2f s, %.1f µs per delivered message\n", t / hz, t / hz * 1e6 / (n > 0 ? n : 1)}' \
    "$dir/report"
  echo "relay CPU by thread during the run (s):"
  join "$dir/before" "$dir/after" | awk -v hz="$(getconf CLK_TCK)" '$3 > $2 {printf "  %-16s %.2f\n", $1, ($3 - $2) / hz}'
  echo "CQL requests by statement during the whole relay run (single and batched):"
  mgmt=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['mgmt_port'])" "$dir/ready")
  curl -s "http://127.0.0.1:$mgmt/metrics" | grep '^obscura_cql_query_duration_seconds_count' \
    | sed 's/obscura_cql_query_duration_seconds_count{statement="\([A-Za-z]*\)",kind="\([a-z]*\)"} /  \1 (\2): /'
  kill "$pid"; wait "$pid" || true
}
secs_measured=$secs; secs=${OBSCURA_BENCH_WARMUP_SECS:-120}
run warmup "$@"
secs=$secs_measured
# An A/B: every second measured run adds the relay flags OBSCURA_BENCH_B and runs the relay
# binary OBSCURA_BENCH_RELAY_B (when set).
for i in $(seq "$runs"); do
  if [ -n "${OBSCURA_BENCH_B:-}${OBSCURA_BENCH_RELAY_B:-}" ] && [ $((i % 2)) -eq 0 ]; then
    # shellcheck disable=SC2086
    relay=${OBSCURA_BENCH_RELAY_B:-} run "run${i}b" "$@" ${OBSCURA_BENCH_B:-}
  else
    run "run$i" "$@"
  fi
done
