#!/usr/bin/env bash
# Server memory per idle gateway: RSS slope between 5,000 and 18,000 open
# gateway sockets (loopback only, bounded in time). A process may hold at
# most 20,000 files here, so the sockets come from three obscura-load
# processes on 127.0.0.2-4. Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
target/release/obscura-relay --server-host 127.0.0.1 --server-port 0 --server-mgmt-port 0 \
  --data-dir "$dir/data" --ready-file "$dir/ready" --durability buffered \
  --rate-limit-per-second 1000000 --rate-limit-burst 1000000 --auth-rate-limit-per-second 1000000 \
  --auth-rate-limit-burst 1000000 --http-connections-per-shard-max 10000 --ws-ping-interval-secs 3600 >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; pkill -f "obscura-load .*--idle-gateways" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -f "$dir/ready" ] && break; sleep 0.1; done
port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['main_port'])" "$dir/ready")
rss() { awk '/VmRSS/{print $2}' /proc/$pid/status; }
wait_for() { for _ in $(seq 180); do grep -q "holding\|obscura-load:" "$1" && return; sleep 1; done; }
echo "idle server RSS: $(rss) KiB"
load() { target/release/obscura-load --target "127.0.0.1:$port" --idle-gateways "$1" --source-ip "$2" --duration-secs 150 --prefix "$3" >"$dir/$3.log" 2>&1 & }
load 5000 127.0.0.2 a; wait_for "$dir/a.log"; sleep 2
r1=$(rss); echo "5000 gateways: $r1 KiB"
load 6500 127.0.0.3 b; load 6500 127.0.0.4 c; wait_for "$dir/b.log"; wait_for "$dir/c.log"; sleep 2
r2=$(rss); echo "18000 gateways: $r2 KiB ($(ls /proc/$pid/fd | wc -l) open files)"
python3 -c "print('slope: %.2f KiB per idle gateway' % (($r2 - $r1) / 13000))"
