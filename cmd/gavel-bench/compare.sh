#!/usr/bin/env bash
# Compares gavel's ext_authz path with the null Check server on this
# machine, in one run: gavel with its decision cache, gavel without it, and
# the null server, at concurrency 16 and 64 (max rps) and at a fixed
# 2,000 rps (latency). The three servers run side by side (idle ones cost
# nothing) and every measurement is repeated, interleaved across servers,
# so drift in the machine's speed hits all three alike; each row is the
# median run by rps. Prints a Markdown table for docs/benchmarks.md.
#
#   cmd/gavel-bench/compare.sh [duration] [warmup] [repeats]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10s}
warmup=${2:-2s}
repeats=${3:-3}
mix=cmd/gavel-bench/testdata/mix.jsonl
keys=cmd/gavel-bench/testdata/keys.json
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/" ./cmd/gavel ./cmd/gavel-bench
bench="$work/gavel-bench"

declare -A addr=([null]=127.0.0.1:9292 [cached]=127.0.0.1:9393 [uncached]=127.0.0.1:9494)

# start NAME CMD...: runs a server in the background until its address accepts.
start() {
  local name=$1 a=${addr[$1]}; shift
  if (exec 3<>"/dev/tcp/${a%:*}/${a#*:}") 2>/dev/null; then
    echo "$a is already taken by another process" >&2; exit 1
  fi
  "$@" >"$work/$name.log" 2>&1 &
  echo $! >"$work/$name.pid"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/${a%:*}/${a#*:}") 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$(cat "$work/$1.pid")/status"; }

start null "$bench" null --addr "${addr[null]}"
start cached "$work/gavel" authz --authz-addr "${addr[cached]}" --api-keys "$keys" --log-level warn --data-dir "$work/d1"
start uncached "$work/gavel" authz --authz-addr "${addr[uncached]}" --api-keys "$keys" --no-cache --log-level warn --data-dir "$work/d2"

loads=(c16 c64 r2000)
for rep in $(seq "$repeats"); do
  for load in "${loads[@]}"; do
    for server in null cached uncached; do
      case $load in
        c16)   extra=(--concurrency 16) ;;
        c64)   extra=(--concurrency 64) ;;
        r2000) extra=(--concurrency 64 --rate 2000) ;;
      esac
      "$bench" run --addr "${addr[$server]}" --requests "$mix" --duration "$duration" --warmup "$warmup" --json "${extra[@]}" \
        >"$work/$server.$load.$rep.json"
    done
  done
done

python3 - "$work" "$repeats" "$(peak_rss_mib null)" "$(peak_rss_mib cached)" "$(peak_rss_mib uncached)" <<'PY'
import json, sys, statistics
work, repeats = sys.argv[1], int(sys.argv[2])
rss = dict(zip(["null", "cached", "uncached"], sys.argv[3:6]))
names = {"null": "null server", "cached": "gavel, cache on", "uncached": "gavel, cache off"}
loads = {"c16": "concurrency 16", "c64": "concurrency 64", "r2000": "2,000 rps fixed"}
med = {}
for s in names:
    for l in loads:
        runs = [json.load(open(f"{work}/{s}.{l}.{r}.json")) for r in range(1, repeats + 1)]
        runs.sort(key=lambda r: r["rps"])
        med[s, l] = runs[len(runs) // 2]
        med[s, l]["all_rps"] = [round(r["rps"]) for r in runs]
print("| server | load | rps (median; all runs) | p50 µs | p90 µs | p99 µs | p99.9 µs | allowed | denied | errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
for l, ln in loads.items():
    for s, sn in names.items():
        r = med[s, l]
        print(f"| {sn} | {ln} | {r['rps']:.0f} ({', '.join(map(str, r['all_rps']))}) | {r['p50_us']} | {r['p90_us']} | {r['p99_us']} | {r['p999_us']} | {r['allowed']} | {r['denied']} | {r['errors']} |")
print()
print("| peak RSS | null server | gavel, cache on | gavel, cache off |")
print("|---|---|---|---|")
print(f"| MiB | {rss['null']} | {rss['cached']} | {rss['uncached']} |")
print()
print("| ratio (max rps) | concurrency 16 | concurrency 64 |")
print("|---|---|---|")
for s in ("cached", "uncached"):
    print(f"| {names[s]} / null server | {med[s,'c16']['rps']/med['null','c16']['rps']:.2f} | {med[s,'c64']['rps']/med['null','c64']['rps']:.2f} |")
for s in ("cached", "uncached"):
    print(f"| {names[s]} / opa-envoy-plugin (6,300 rps at concurrency 64, reference) | {med[s,'c16']['rps']/6300:.2f} | {med[s,'c64']['rps']/6300:.2f} |")
PY
