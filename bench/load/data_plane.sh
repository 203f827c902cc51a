#!/usr/bin/env bash
# Load figures of the data plane (issue 4), loopback only, bounded in time:
# closed-loop throughput with --durability fsync (defaults, then with
# --ws-delivery-interval-ms 10), then open loop at 500 msgs/s with buffered
# and with fsync. Needs a release build.
# Usage: bench/load/data_plane.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
run() { # $1 = durability, $2 = extra server flags, rest = obscura-load flags
  local durability=$1 extra=$2; shift 2
  local dir; dir=$(mktemp -d)
  target/release/obscura-relay --server-host 127.0.0.1 --server-port 0 --server-mgmt-port 0 \
    --data-dir "$dir/data" --ready-file "$dir/ready" --durability "$durability" \
    --rate-limit-per-second 1000000 --rate-limit-burst 1000000 \
    --auth-rate-limit-per-second 1000000 --auth-rate-limit-burst 1000000 $extra >"$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do [ -f "$dir/ready" ] && break; sleep 0.1; done
  local port; port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['main_port'])" "$dir/ready")
  echo "== durability $durability $extra: $*"
  target/release/obscura-load --target "127.0.0.1:$port" --duration-secs "$secs" --server-pid "$pid" "$@"
  kill "$pid"; wait "$pid" || true
  rm -rf "$dir"
}
run fsync ""
run fsync "--ws-delivery-interval-ms 10"
run buffered "" --rate 500
run fsync "" --rate 500
