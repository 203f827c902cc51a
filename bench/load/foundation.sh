#!/usr/bin/env bash
# Load figures of the foundation (issue 3), loopback only, bounded in time:
#   POST /v1/users/s and POST /v1/sessions/s (argon2-bound), GET /v1/devices/s
#   with keep-alive, and the idle RSS of the server.
# Usage: bench/load/foundation.sh [seconds per run, default 10]
# Needs wrk (apt-get install wrk) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
bin=target/release/obscura-relay
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
# Rate limits are raised far above what the load can reach.
$bin --server-host 127.0.0.1 --server-port 0 --server-mgmt-port 0 --data-dir "$dir/data" \
  --ready-file "$dir/ready" --rate-limit-per-second 1000000 --rate-limit-burst 1000000 \
  --auth-rate-limit-per-second 1000000 --auth-rate-limit-burst 1000000 >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f "$dir/ready" ] && break; sleep 0.1; done
port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['main_port'])" "$dir/ready")
url=http://127.0.0.1:$port
sleep 0.5
echo "idle RSS: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"

echo "== POST /v1/users (workers: $(nproc)), ${secs}s, 16 connections"
wrk -t2 -c16 -d"${secs}s" -s bench/load/register.lua "$url" | grep -E "Requests/sec|Latency|Non-2xx"
echo "RSS: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"

curl -s -X POST "$url/v1/users" -H 'content-type: application/json' \
  -d '{"username":"loaduser","password":"password12345"}' > "$dir/user.json"
token=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['token'])" "$dir/user.json")
echo "== POST /v1/sessions (workers: $(nproc)), ${secs}s, 16 connections"
LOAD_USER=loaduser wrk -t2 -c16 -d"${secs}s" -s bench/load/login.lua "$url/v1/sessions" | grep -E "Requests/sec|Latency|Non-2xx"
echo "RSS: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"

echo "== GET /v1/devices keep-alive, ${secs}s, 64 connections"
LOAD_TOKEN=$token wrk -t2 -c64 -d"${secs}s" -s bench/load/list_devices.lua "$url/v1/devices" | grep -E "Requests/sec|Latency|Non-2xx"
echo "RSS after load: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"
