#!/usr/bin/env bash
# Compares gavel's ext_authz path with the null Check server on this
# machine, in one run: gavel with its decision cache, gavel without it, and
# the null server, at concurrency 16 and 64 (max rps) and at a fixed
# 2,000 rps (latency). Prints a Markdown table for docs/benchmarks.md.
#
#   cmd/gavel-bench/compare.sh [duration] [warmup]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10s}
warmup=${2:-2s}
mix=cmd/gavel-bench/testdata/mix.jsonl
keys=cmd/gavel-bench/testdata/keys.json
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/" ./cmd/gavel ./cmd/gavel-bench
bench="$work/gavel-bench"

# start NAME ADDR CMD...: runs a server in the background until ADDR accepts.
start() {
  local name=$1 addr=$2; shift 2
  "$@" >"$work/$name.log" 2>&1 &
  echo $! >"$work/$name.pid"
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then
    echo "$addr is already taken by another process" >&2; exit 1
  fi
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}
stop() { kill "$(cat "$work/$1.pid")"; wait "$(cat "$work/$1.pid")" 2>/dev/null || true; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$(cat "$work/$1.pid")/status"; }

run() { # target addr args...
  local addr=$1; shift
  "$bench" run --addr "$addr" --requests "$mix" --duration "$duration" --warmup "$warmup" --json "$@"
}

row() { # label json
  local label=$1 json=$2
  python3 -c 'import json,sys; r=json.loads(sys.argv[2]); print("| %s | %.0f | %d | %d | %d | %d | %d | %d | %d |" % (sys.argv[1], r["rps"], r["p50_us"], r["p90_us"], r["p99_us"], r["p999_us"], r["allowed"], r["denied"], r["errors"]))' "$label" "$json"
}

declare -A rps
echo "| server, load | rps | p50 µs | p90 µs | p99 µs | p99.9 µs | allowed | denied | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for server in null cached uncached; do
  case $server in
    null)     start null 127.0.0.1:9292 "$bench" null --addr 127.0.0.1:9292; addr=127.0.0.1:9292 ;;
    cached)   start cached 127.0.0.1:9393 "$work/gavel" authz --authz-addr 127.0.0.1:9393 --api-keys "$keys" --log-level warn --data-dir "$work/d1"; addr=127.0.0.1:9393 ;;
    uncached) start uncached 127.0.0.1:9494 "$work/gavel" authz --authz-addr 127.0.0.1:9494 --api-keys "$keys" --no-cache --log-level warn --data-dir "$work/d2"; addr=127.0.0.1:9494 ;;
  esac
  for load in c16 c64 r2000; do
    case $load in
      c16)   json=$(run "$addr" --concurrency 16) ;;
      c64)   json=$(run "$addr" --concurrency 64) ;;
      r2000) json=$(run "$addr" --concurrency 64 --rate 2000) ;;
    esac
    rps[$server.$load]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["rps"])' "$json")
    row "$server, ${load/c/concurrency }" "$json" | sed 's/r2000/2,000 rps fixed/'
  done
  echo "| $server peak RSS | $(peak_rss_mib "$server") MiB | | | | | | | |"
  stop "$server"
done
echo
python3 - "${rps[cached.c16]}" "${rps[null.c16]}" "${rps[cached.c64]}" "${rps[null.c64]}" "${rps[uncached.c16]}" "${rps[uncached.c64]}" <<'PY'
import sys
c16, n16, c64, n64, u16, u64 = map(float, sys.argv[1:])
print("| ratio | concurrency 16 | concurrency 64 |")
print("|---|---|---|")
print("| cached / null | %.2f | %.2f |" % (c16 / n16, c64 / n64))
print("| uncached / null | %.2f | %.2f |" % (u16 / n16, u64 / n64))
print("| cached / opa-envoy-plugin (6,300 rps, reference) | %.2f | %.2f |" % (c16 / 6300, c64 / 6300))
print("| uncached / opa-envoy-plugin (6,300 rps, reference) | %.2f | %.2f |" % (u16 / 6300, u64 / 6300))
PY
