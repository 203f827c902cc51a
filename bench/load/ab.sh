#!/usr/bin/env bash
# A/B of two relay binaries on the closed-loop workload of data_plane.sh
# (fsync, 200 users, 8 senders, batches of 10 x 256 B), loopback only,
# bounded in time: runs A and B alternately, RUNS times each, and prints
# each run and the medians of msgs/s and of server CPU per message. The same
# load tool drives both. Alternating keeps a noisy shared machine from
# favouring one side.
# Usage: bench/load/ab.sh OLD_RELAY NEW_RELAY [runs, default 5] [seconds per run, default 8]
set -euo pipefail
cd "$(dirname "$0")/../.."
old=$1 new=$2 runs=${3:-5} secs=${4:-8}
load=${OBSCURA_LOAD:-target/release/obscura-load}
one() { # $1 = relay binary; prints "msgs_per_sec server_us_per_msg"
  local dir; dir=$(mktemp -d)
  "$1" --server-host 127.0.0.1 --server-port 0 --server-mgmt-port 0 \
    --data-dir "$dir/data" --ready-file "$dir/ready" --durability fsync \
    --rate-limit-per-second 1000000 --rate-limit-burst 1000000 \
    --auth-rate-limit-per-second 1000000 --auth-rate-limit-burst 1000000 >"$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do [ -f "$dir/ready" ] && break; sleep 0.1; done
  local port; port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['main_port'])" "$dir/ready")
  "$load" --target "127.0.0.1:$port" --users 200 --senders 8 --batch 10 --payload-bytes 256 \
    --duration-secs "$secs" --server-pid "$pid" >"$dir/out" 2>&1 || true
  kill "$pid"; wait "$pid" || true
  python3 - "$dir/out" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rate = re.search(r"throughput end to end: ([0-9.]+) msgs/s", text)
cpu = re.search(r"server CPU: [0-9.]+ s, ([0-9.]+) µs", text)
print(rate.group(1) if rate else "nan", cpu.group(1) if cpu else "nan")
EOF
  rm -rf "$dir"
}
declare -a a_rate b_rate a_cpu b_cpu
for i in $(seq "$runs"); do
  read -r r c < <(one "$old"); a_rate+=("$r"); a_cpu+=("$c"); echo "run $i A: $r msgs/s, $c µs/msg"
  read -r r c < <(one "$new"); b_rate+=("$r"); b_cpu+=("$c"); echo "run $i B: $r msgs/s, $c µs/msg"
done
python3 - "${a_rate[*]}" "${b_rate[*]}" "${a_cpu[*]}" "${b_cpu[*]}" <<'EOF'
import statistics, sys
a, b, ac, bc = ([float(x) for x in arg.split()] for arg in sys.argv[1:5])
ma, mb = statistics.median(a), statistics.median(b)
print(f"median A {ma:,.0f} msgs/s {statistics.median(ac):.1f} µs/msg | "
      f"median B {mb:,.0f} msgs/s {statistics.median(bc):.1f} µs/msg | B/A {mb / ma:.3f}")
EOF
