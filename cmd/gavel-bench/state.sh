#!/usr/bin/env bash
# Measures what gavel's state costs, on this machine, in one run:
#   1. ext_authz Check at a fixed rate and closed loop, with the audit trail
#      on and off (gavel serve --postgres-url ... --audit=false), and the
#      audit records PostgreSQL took per second meanwhile;
#   2. activation-to-serving latency across two replicas sharing one
#      PostgreSQL and one Redis (gavel-bench activate).
# Needs PostgreSQL (psql, database test) and Redis on their default ports.
#
#   cmd/gavel-bench/state.sh [duration] [rate] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-15s}
rate=${2:-5000}
rounds=${3:-30}
mix=cmd/gavel-bench/testdata/mix.jsonl
keys=cmd/gavel-bench/testdata/keys.json
work=$(mktemp -d)
schema=gavel_bench_$$
pg="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
trap 'kill $(jobs -p) 2>/dev/null || true; psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null; rm -rf "$work"' EXIT
psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE SCHEMA $schema" >/dev/null

go build -o "$work/" ./cmd/gavel ./cmd/gavel-bench
gavel="$work/gavel" bench="$work/gavel-bench"
"$gavel" migrate --postgres-url "$pg" >/dev/null

# serve NAME HTTP AUTHZ ARGS...: gavel serve in the background until ready.
serve() {
  local name=$1 http=$2 authz=$3; shift 3
  "$gavel" serve --http-addr "127.0.0.1:$http" --authz-addr "127.0.0.1:$authz" --xds-addr "" \
    --data-dir "$work/$name" --postgres-url "$pg" --api-keys "$keys" --log-level warn "$@" >"$work/$name.log" 2>&1 &
  echo $! >"$work/$name.pid"
  for _ in $(seq 200); do
    if curl -fs "127.0.0.1:$http/readyz" >/dev/null 2>&1; then return; fi
    sleep 0.05
  done
  echo "$name did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}
stop() { kill "$(cat "$work/$1.pid")"; wait "$(cat "$work/$1.pid")" 2>/dev/null || true; }
written() { curl -fs "127.0.0.1:$1/metrics" | awk '$1 == "gavel_audit_written_total" {w=$2} $1 == "gavel_audit_dropped_total" {d=$2} END {print w+0, d+0}'; }

echo "## Check with the audit trail on and off (PostgreSQL)"
echo
echo "| audit | load | rps | p50 | p99 | p99.9 | errors | audit records written/s | dropped |"
echo "|---|---|---|---|---|---|---|---|---|"
for audit in false none denied all; do
  case $audit in
    false) flags=(--audit=false) ;;
    *)     flags=(--audit-input "$audit") ;;
  esac
  serve one 18281 19291 "${flags[@]}"
  for load in "rate" "closed"; do
    extra=(--concurrency 64)
    [ "$load" = rate ] && extra+=(--rate "$rate")
    before=$(written 18281)
    "$bench" run --addr 127.0.0.1:19291 --requests "$mix" --duration "$duration" --warmup 3s --json "${extra[@]}" >"$work/r.json"
    sleep 2 # let the writer drain its queue
    after=$(written 18281)
    python3 - "$work/r.json" "$audit" "$load" "$before" "$after" 3 <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); audit, load = sys.argv[2:4]
wb, db = map(float, sys.argv[4].split()); wa, da = map(float, sys.argv[5].split()); warmup = float(sys.argv[6])
# Records of the warmup and of the measured period, over both.
per_s = (wa - wb) / (warmup + r["seconds"])
name = f"{int(r['target_rps'])} rps" if load == "rate" else "closed loop, 64"
label = "off" if audit == "false" else f"on, inputs: {audit}"
print(f"| {label} | {name} | {r['rps']:.0f} | {r['p50_us']/1000:.2f} ms | {r['p99_us']/1000:.2f} ms | {r['p999_us']/1000:.2f} ms | {r['errors']} | {per_s:.0f} | {da - db:.0f} |")
PY
  done
  stop one
done

echo
echo "## Activation across two replicas (PostgreSQL LISTEN/NOTIFY + Redis)"
echo
serve a 18381 19391 --redis-addr 127.0.0.1:6379
serve b 18481 19491 --redis-addr 127.0.0.1:6379
key=$("$gavel" keys create --postgres-url "$pg" --name bench --role policy-admin 2>/dev/null)
"$bench" activate --replica 127.0.0.1:18381 --replica 127.0.0.1:18481 --token "$key" \
  --bundle policy/builtin/bundle --rounds "$rounds"
