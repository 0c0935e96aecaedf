#!/usr/bin/env bash
# Measures what gavel's state costs, on this machine, in one run:
#   1. ext_authz Check p99 with the audit trail off and on (inputs none,
#      denied, all), at a fixed rate: four `gavel serve --postgres-url ...`
#      side by side (idle ones cost nothing), driven in turn for `rounds`
#      rounds, so drift in the machine's speed hits all four alike; the table
#      gives each one's median and range over the rounds, and its median p99
#      over the audit-off server's. A fifth row drives the audit-off server
#      while another process (gavel-bench auditload) writes the same trail,
#      at the same rate, to the same PostgreSQL: what the database's share of
#      the trail costs on this machine, apart from gavel's own. The last
#      column is the share of Checks gavel's own histogram
#      (gavel_authz_check_duration_seconds) timed over 0.5 ms;
#   2. audit records PostgreSQL takes per second while a closed loop drives
#      Check (64 workers), and what was dropped;
#   3. activation-to-serving latency across two replicas sharing one
#      PostgreSQL and one Redis (gavel-bench activate);
#   4. a calibration: the audit-off server's p99 alone, and next to a
#      neighbour that keeps one core busy 5 ms in every 100 ms (gavel-bench
#      spin), at normal priority and in the idle class, interleaved the same
#      way. It shows how much any co-located process's work moves p99 on this
#      machine, which is what a database on the same cores is.
# Needs PostgreSQL (psql, database test) and Redis on their default ports.
#
# ISOLATE_POSTGRES=1 runs PostgreSQL's processes in the SCHED_IDLE class for
# the run (chrt, as root), and puts them back at the end: they get only the
# CPU time gavel and the load generator leave idle, as a database on other
# machines would. Without it PostgreSQL competes with them for the cores.
#
#   cmd/gavel-bench/state.sh [duration] [rate] [rounds] [activation-rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10s}
rate=${2:-2000}
rounds=${3:-6}
activations=${4:-30}
mix=cmd/gavel-bench/testdata/mix.jsonl
keys=cmd/gavel-bench/testdata/keys.json
work=$(mktemp -d)
schema=gavel_bench_$$
pg="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"

isolated=()
restore_postgres() {
  for p in "${isolated[@]}"; do chrt --other --all-tasks --pid 0 "$p" 2>/dev/null || true; done
}
trap 'kill $(jobs -p) 2>/dev/null || true; restore_postgres; psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1; rm -rf "$work"' EXIT
if [ "${ISOLATE_POSTGRES:-}" = 1 ]; then
  for p in $(pgrep -x postgres); do
    chrt --idle --all-tasks --pid 0 "$p"
    isolated+=("$p")
  done
  echo "PostgreSQL isolated: ${#isolated[@]} processes in SCHED_IDLE (new backends inherit it)"
  echo
fi
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
written() { curl -fs "127.0.0.1:$1/metrics" | awk '$1 == "gavel_audit_written_total" {w=$2} $1 == "gavel_audit_dropped_total" {d=$2} END {print w+0, d+0}'; }

modes=(false none denied all)
declare -A http=([false]=18281 [none]=18282 [denied]=18283 [all]=18284)
declare -A authz=([false]=19291 [none]=19292 [denied]=19293 [all]=19294)
for m in "${modes[@]}"; do
  case $m in
    false) serve "$m" "${http[$m]}" "${authz[$m]}" --audit=false ;;
    *)     serve "$m" "${http[$m]}" "${authz[$m]}" --audit-input "$m" ;;
  esac
done

echo "## Check p99 with the audit trail off and on ($rate rps, $rounds rounds of $duration, interleaved)"
echo
# checks HTTP-PORT: Checks gavel's histogram counted, and those over 0.5 ms.
checks() {
  curl -fs "127.0.0.1:$1/metrics" | awk '/^gavel_authz_check_duration_seconds_bucket\{api="grpc"/ {
    if ($0 ~ /le="\+Inf"/) all += $2; if ($0 ~ /le="0.0005"/) fast += $2 } END {print all+0, all-fast}'
}
rows=("${modes[@]}" elsewhere)
for r in $(seq "$rounds"); do
  for row in "${rows[@]}"; do
    m=$row
    if [ "$row" = elsewhere ]; then
      m=false
      "$bench" auditload --postgres-url "$pg" --requests "$mix" --rate "$rate" >/dev/null &
      loader=$!
    fi
    before=$(checks "${http[$m]}")
    "$bench" run --addr "127.0.0.1:${authz[$m]}" --requests "$mix" --duration "$duration" --warmup 2s \
      --rate "$rate" --concurrency 64 --json >"$work/r.json"
    after=$(checks "${http[$m]}")
    if [ "$row" = elsewhere ]; then kill -INT "$loader"; wait "$loader"; fi
    python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(sys.argv[2], r["rps"], r["p50_us"], r["p99_us"], r["p999_us"], r["errors"], *sys.argv[3:])' \
      "$work/r.json" "$row" $before $after >>"$work/rounds.txt"
  done
done
python3 - "$work/rounds.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for m, rps, p50, p99, p999, errors, n0, slow0, n1, slow1 in rows:
    by.setdefault(m, []).append((float(rps), float(p50), float(p99), float(p999), int(errors),
                                 float(n1) - float(n0), float(slow1) - float(slow0)))
off = statistics.median(r[2] for r in by["false"])
labels = {"false": "off", "none": "on, inputs: none", "denied": "on, inputs: denied", "all": "on, inputs: all",
          "elsewhere": "off, the same trail written by another process"}
print("| audit | rps | p50 (median) | p99 (median) | p99 (range) | p99.9 (median) | errors | p99 / off | gavel's histogram: > 0.5 ms |")
print("|---|---|---|---|---|---|---|---|---|")
for m in ["false", "none", "denied", "all", "elsewhere"]:
    rs = by[m]
    p99s = [r[2] for r in rs]
    med = statistics.median(p99s)
    slow = 100 * sum(r[6] for r in rs) / max(1, sum(r[5] for r in rs))
    print(f"| {labels[m]} | {statistics.median(r[0] for r in rs):.0f} | {statistics.median(r[1] for r in rs)/1000:.2f} ms "
          f"| {med/1000:.2f} ms | {min(p99s)/1000:.2f}–{max(p99s)/1000:.2f} ms "
          f"| {statistics.median(r[3] for r in rs)/1000:.2f} ms | {sum(r[4] for r in rs)} | {med/off:.2f} | {slow:.2f}% |")
PY

echo
echo "## Calibration: audit off, alone and next to a neighbour busy 5 ms in every 100 ms"
echo
: >"$work/cal.txt"
for r in $(seq "$rounds"); do
  for n in alone spin idle-spin; do
    case $n in
      spin) "$bench" spin --burst 5ms --every 100ms >/dev/null & ;;
      idle-spin) chrt --idle 0 "$bench" spin --burst 5ms --every 100ms >/dev/null & ;;
    esac
    "$bench" run --addr "127.0.0.1:${authz[false]}" --requests "$mix" --duration "$duration" --warmup 2s \
      --rate "$rate" --concurrency 64 --json >"$work/r.json"
    if [ "$n" != alone ]; then kill %%; wait %% 2>/dev/null || true; fi
    python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(sys.argv[2], r["p99_us"])' "$work/r.json" "$n" >>"$work/cal.txt"
  done
done
python3 - "$work/cal.txt" <<'PY'
import statistics, sys
by = {}
for n, p99 in (l.split() for l in open(sys.argv[1])):
    by.setdefault(n, []).append(float(p99))
alone = statistics.median(by["alone"])
print("| neighbour | p99 (median) | p99 (range) | p99 / alone |")
print("|---|---|---|---|")
for n, label in [("alone", "none"), ("spin", "5 ms / 100 ms, normal priority"), ("idle-spin", "5 ms / 100 ms, SCHED_IDLE")]:
    v = by[n]; med = statistics.median(v)
    print(f"| {label} | {med/1000:.2f} ms | {min(v)/1000:.2f}–{max(v)/1000:.2f} ms | {med/alone:.2f} |")
PY

echo
echo "## Audit records written while a closed loop drives Check"
echo
echo "| audit | Check rps | p99 | records written/s | dropped |"
echo "|---|---|---|---|---|"
for m in "${modes[@]}"; do
  before=$(written "${http[$m]}")
  "$bench" run --addr "127.0.0.1:${authz[$m]}" --requests "$mix" --duration "$duration" --warmup 3s --concurrency 64 --json >"$work/r.json"
  sleep 2 # let the writer drain its queue
  after=$(written "${http[$m]}")
  python3 - "$work/r.json" "$m" "$before" "$after" 3 <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = sys.argv[2]
wb, db = map(float, sys.argv[3].split()); wa, da = map(float, sys.argv[4].split()); warmup = float(sys.argv[5])
# Records of the warmup and of the measured period, over both.
per_s = (wa - wb) / (warmup + r["seconds"])
label = "off" if m == "false" else f"on, inputs: {m}"
written = "-" if m == "false" else f"{per_s:.0f}"
dropped = "-" if m == "false" else f"{da - db:.0f}"
print(f"| {label} | {r['rps']:.0f} | {r['p99_us']/1000:.2f} ms | {written} | {dropped} |")
PY
done
for m in "${modes[@]}"; do kill "$(cat "$work/$m.pid")"; wait "$(cat "$work/$m.pid")" 2>/dev/null || true; done

echo
echo "## Activation across two replicas (PostgreSQL LISTEN/NOTIFY + Redis)"
echo
serve a 18381 19391 --redis-addr 127.0.0.1:6379
serve b 18481 19491 --redis-addr 127.0.0.1:6379
key=$("$gavel" keys create --postgres-url "$pg" --name bench --role policy-admin 2>/dev/null)
"$bench" activate --replica 127.0.0.1:18381 --replica 127.0.0.1:18481 --token "$key" \
  --bundle policy/builtin/bundle --rounds "$activations"
