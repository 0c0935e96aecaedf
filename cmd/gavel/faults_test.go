package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gavel-dev/gavel/api/hooks"
	"github.com/gavel-dev/gavel/store/storetest"
)

// The tests here put a TCP proxy between gavel serve and PostgreSQL or
// Redis, cut it while decisions flow, and check DESIGN.md's failure
// semantics: decisions go on, and the audit trail ends up holding each of
// them exactly once.

// writeAPIKeys writes testKeys as a --api-keys file.
func writeAPIKeys(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// metrics reads g's /metrics as series (name with labels, as printed) to
// value.
func metrics(t *testing.T, g *gavelProc) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.info.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// decisionLoad drives decisions at a running gavel from several
// goroutines: ext_authz Checks over gRPC (allowed and denied) and Claude
// Code hooks over HTTP (allowed and denied). Every answer must be a normal
// one; it collects the decision ids the answers carry.
type decisionLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	checks, hookCalls atomic.Int64
	maxCheck, maxHook atomic.Int64 // slowest answer, ns

	mu       sync.Mutex
	ids      []string
	failures []string
}

const (
	checkWorkers = 4
	hookWorkers  = 2
	// pace spaces one worker's requests: about 1,500 decisions a second in
	// all, well inside the audit queue while the store does not answer.
	pace = 4 * time.Millisecond
)

func startDecisionLoad(t *testing.T, g *gavelProc) *decisionLoad {
	t.Helper()
	conn, err := grpc.NewClient(g.info.AuthzAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	authz := authv3.NewAuthorizationClient(conn)
	hc := &http.Client{Timeout: 15 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	l := &decisionLoad{cancel: cancel}
	t.Cleanup(l.stop)
	for w := range checkWorkers {
		l.wg.Go(func() { l.checkLoop(ctx, authz, w) })
	}
	for w := range hookWorkers {
		l.wg.Go(func() { l.hookLoop(ctx, hc, g, w) })
	}
	return l
}

// stop ends the load and waits for the requests in flight.
func (l *decisionLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *decisionLoad) ok(id string) {
	l.mu.Lock()
	l.ids = append(l.ids, id)
	l.mu.Unlock()
}

func (l *decisionLoad) fail(format string, args ...any) {
	l.mu.Lock()
	l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// decisions is how many decisions were answered so far.
func (l *decisionLoad) decisions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

func observeMax(m *atomic.Int64, d time.Duration) {
	for {
		cur := m.Load()
		if int64(d) <= cur || m.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// checkLoop sends Checks in turn: a viewer reading an order (allowed, a
// path never asked before so the decision caches miss), no key (401) and
// an editor deleting (403).
func (l *decisionLoad) checkLoop(ctx context.Context, client authv3.AuthorizationClient, w int) {
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var req *authv3.CheckRequest
		var wantHTTP int32 // 0: allowed
		switch i % 3 {
		case 0, 1:
			req = checkRequest("GET", fmt.Sprintf("/api/v1/orders/%d-%d", w, i), "k-viewer")
		case 2:
			if i%2 == 0 {
				req, wantHTTP = checkRequest("GET", "/api/v1/orders", ""), 401
			} else {
				req, wantHTTP = checkRequest("DELETE", fmt.Sprintf("/api/v1/orders/%d", i), "k-editor"), 403
			}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		start := time.Now()
		resp, err := client.Check(cctx, req)
		observeMax(&l.maxCheck, time.Since(start))
		cancel()
		l.checks.Add(1)
		path := req.Attributes.Request.Http.Path
		switch {
		case err != nil:
			l.fail("Check %s: gRPC error %v", path, err)
			continue
		case wantHTTP == 0 && (resp.Status.GetCode() != 0 || resp.GetOkResponse() == nil):
			l.fail("Check %s: not allowed: %v", path, resp)
			continue
		case wantHTTP != 0 && int32(resp.GetDeniedResponse().GetStatus().GetCode()) != wantHTTP:
			l.fail("Check %s: want a %d denial, got %v", path, wantHTTP, resp)
			continue
		}
		id, _ := resp.GetDynamicMetadata().AsMap()["decision_id"].(string)
		if id == "" {
			l.fail("Check %s: no decision_id in %v", path, resp.GetDynamicMetadata())
			continue
		}
		l.ok(id)
	}
}

// hookLoop posts PreToolUse hooks in turn: one the policy allows and one
// it denies; both are answered 200 with the decision id.
func (l *decisionLoad) hookLoop(ctx context.Context, hc *http.Client, g *gavelProc, w int) {
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		command := fmt.Sprintf("ls -la /tmp/%d-%d", w, i)
		if i%2 == 1 {
			command = "rm -rf ~"
		}
		cmd, _ := json.Marshal(command)
		body := `{"session_id":"fault","transcript_path":"/tmp/t.jsonl","cwd":"/tmp","permission_mode":"default","hook_event_name":"PreToolUse",` +
			`"tool_name":"Bash","tool_input":{"command":` + string(cmd) + `},"tool_use_id":"t` + strconv.Itoa(i) + `"}`
		req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, "http://"+g.info.HTTPAddr+"/v1/hooks/claude-code", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+g.info.HookToken)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := hc.Do(req)
		observeMax(&l.maxHook, time.Since(start))
		l.hookCalls.Add(1)
		if err != nil {
			l.fail("hook %q: %v", command, err)
			continue
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get(hooks.HeaderDecisionID)
		if resp.StatusCode != http.StatusOK || id == "" {
			l.fail("hook %q: %d %s (decision id %q)", command, resp.StatusCode, out, id)
			continue
		}
		wantDeny := i%2 == 1
		if denied := strings.Contains(string(out), `"permissionDecision":"deny"`); denied != wantDeny {
			l.fail("hook %q: denied %v, want %v: %s", command, denied, wantDeny, out)
			continue
		}
		l.ok(id)
	}
}

// report stops the load, fails t for every answer that was not a normal
// one, and returns the decision ids collected.
func (l *decisionLoad) report(t *testing.T) []string {
	t.Helper()
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("load: %d Checks, %d hooks, %d decisions answered; slowest Check %v, slowest hook %v",
		l.checks.Load(), l.hookCalls.Load(), len(l.ids), time.Duration(l.maxCheck.Load()), time.Duration(l.maxHook.Load()))
	if n := len(l.failures); n > 0 {
		t.Errorf("%d of %d decisions failed; the first ones:\n%s", n, l.checks.Load()+l.hookCalls.Load(),
			strings.Join(l.failures[:min(n, 10)], "\n"))
	}
	return slices.Clone(l.ids)
}

// faultDecisionTimeout bounds policy evaluation in the fault tests. The
// load generator, the proxy, PostgreSQL, Redis and gavel share the test
// host, and on a small one an evaluation now and then stalls past the
// 100 ms default and fails closed with reason timeout, whatever the store
// or Redis do (neither is on the evaluation's path). These tests are about
// those faults; an evaluation timeout still fails them (see
// checkNoEvalErrors).
const faultDecisionTimeout = "1s"

// checkNoEvalErrors fails t when gavel counted a failed policy evaluation.
func checkNoEvalErrors(t *testing.T, m map[string]float64) {
	t.Helper()
	for k, v := range m {
		if strings.HasPrefix(k, "gavel_policy_eval_errors_total") && v > 0 {
			t.Errorf("%s %v, want none", k, v)
		}
	}
}

// proxyPostgres puts a proxy in front of the server of the PostgreSQL URL
// u and returns it with u pointed at it.
func proxyPostgres(t *testing.T, u string) (*tcpProxy, string) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	target := pu.Host
	if pu.Port() == "" {
		target += ":5432"
	}
	px := newTCPProxy(t, target)
	pu.Host = px.Addr()
	return px, pu.String()
}

// auditIDs are the ids of the audit records from ext_authz and hooks in
// the schema of the PostgreSQL URL u, and how many times each occurs.
func auditIDs(t *testing.T, u string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id FROM audit WHERE source IN ('envoy', 'hook')`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int, len(ids))
	for _, id := range ids {
		out[id]++
	}
	return out
}

// auditCounts is count(*) and count(DISTINCT id) over the audit records of
// the given sources (every source when none).
func auditCounts(t *testing.T, u string, sources ...string) (rows, distinct int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	q := `SELECT count(*), count(DISTINCT id) FROM audit`
	var args []any
	if len(sources) > 0 {
		q += ` WHERE source = ANY($1)`
		args = append(args, sources)
	}
	if err := conn.QueryRow(ctx, q, args...).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	return rows, distinct
}

// TestFaultPostgresCutUnderLoad cuts gavel's path to PostgreSQL for two
// seconds while Checks and hooks flow, once with the server refusing
// connections and once black-holing them. No decision may fail, and once
// PostgreSQL is back the audit trail must hold every decision answered,
// each once: the records written before the cut, those spilled to
// <data-dir>/audit-spill during it and replayed, and those written after.
func TestFaultPostgresCutUnderLoad(t *testing.T) {
	for _, mode := range []cutMode{refuse, blackHole} {
		t.Run(mode.String(), func(t *testing.T) {
			admin := storetest.PostgresSchema(t)
			px, pgURL := proxyPostgres(t, admin)
			dataDir := filepath.Join(t.TempDir(), "data")
			// A short key cache TTL makes the hook token's key be looked up
			// in the store during the cut: it must be honoured from the
			// stale cache entry.
			g := startGavelIn(t, dataDir, "serve", "--postgres-url", pgURL, "--api-keys", writeAPIKeys(t),
				"--api-key-cache-ttl", "300ms", "--decision-timeout", faultDecisionTimeout)

			load := startDecisionLoad(t, g)
			waitFor(t, 10*time.Second, "decisions written to PostgreSQL", func() bool {
				return load.decisions() >= 300 && metrics(t, g)["gavel_audit_written_total"] > 0
			})

			before := load.decisions()
			px.Cut(mode)
			cutAt := time.Now()
			waitFor(t, 10*time.Second, "audit records spilled", func() bool {
				return metrics(t, g)["gavel_audit_spilled_total"] > 0
			})
			if code, st := readyz(t, g); code != http.StatusOK || st.Checks["store"] == "ok" {
				t.Errorf("/readyz with PostgreSQL cut: %d %v, want 200 with the store check saying what is wrong", code, st.Checks)
			}
			time.Sleep(time.Until(cutAt.Add(2 * time.Second))) // the outage lasts two seconds
			during := load.decisions() - before
			px.Restore()
			restoredAt := time.Now()

			// Decisions keep flowing while the spill is replayed.
			waitFor(t, 15*time.Second, "the spill to be replayed", func() bool {
				m := metrics(t, g)
				return m["gavel_audit_replayed_total"] > 0 && m["gavel_audit_spill_segments"] == 0
			})
			replayedAfter := time.Since(restoredAt)
			ids := load.report(t)

			want := make(map[string]bool, len(ids))
			for _, id := range ids {
				if want[id] {
					t.Fatalf("decision id %s answered twice", id)
				}
				want[id] = true
			}
			var got map[string]int
			waitFor(t, 15*time.Second, "every decision in the audit trail", func() bool {
				got = auditIDs(t, admin)
				return len(got) >= len(want)
			})
			caughtUp := time.Since(restoredAt)
			var missing, extra, dup int
			for id := range want {
				if got[id] == 0 {
					missing++
				}
			}
			for id, n := range got {
				if !want[id] {
					extra++
				}
				if n > 1 {
					dup++
				}
			}
			rows, distinct := auditCounts(t, admin, "envoy", "hook")
			allRows, allDistinct := auditCounts(t, admin)
			if missing+extra+dup > 0 || rows != len(want) || distinct != rows || allDistinct != allRows {
				t.Errorf("audit trail: %d records (%d distinct ids) from ext_authz and hooks for %d decisions: %d missing, %d not answered by gavel, %d duplicated; %d records (%d distinct) in all",
					rows, distinct, len(want), missing, extra, dup, allRows, allDistinct)
			}

			m := metrics(t, g)
			checkNoEvalErrors(t, m)
			if m["gavel_audit_spilled_total"] == 0 || m["gavel_audit_dropped_total"] != 0 {
				t.Errorf("spilled %v records, dropped %v: want some spilled and none dropped",
					m["gavel_audit_spilled_total"], m["gavel_audit_dropped_total"])
			}
			entries, err := os.ReadDir(filepath.Join(dataDir, "audit-spill"))
			if err != nil || len(entries) != 0 {
				t.Errorf("spill directory after the replay: %v %v, want it empty", entries, err)
			}
			if code, st := readyz(t, g); code != http.StatusOK || st.Checks["store"] != "ok" {
				t.Errorf("/readyz after PostgreSQL is back: %d %v", code, st.Checks)
			}
			open, total := px.Held()
			t.Logf("%s: %d decisions, %d while cut; audit: %d records, %v spilled, %v replayed, %v written, %v failed batch writes; "+
				"spill replayed %v and every record stored %v after the restore; black-holed connections: %d, %d still open",
				mode, len(want), during, rows, m["gavel_audit_spilled_total"], m["gavel_audit_replayed_total"],
				m["gavel_audit_written_total"], m["gavel_audit_write_errors_total"], replayedAfter.Round(time.Millisecond),
				caughtUp.Round(time.Millisecond), total, open)
		})
	}
}

// TestFaultRedisCutUnderLoad cuts gavel's path to Redis for two seconds
// while Checks and hooks flow, once refusing and once black-holing new
// connections. No decision may fail; gavel stays ready, /readyz says the
// Redis tier is degraded and the breaker opens while Redis is away, and
// both recover once it is back.
func TestFaultRedisCutUnderLoad(t *testing.T) {
	for _, mode := range []cutMode{refuse, blackHole} {
		t.Run(mode.String(), func(t *testing.T) {
			px := newTCPProxy(t, "127.0.0.1:6379")
			// The proxy runs in this (race-instrumented) process and adds
			// its own delay to every Redis call; an L2 lookup bound of 5 ms
			// (the default) would count that delay as Redis failing.
			g := startGavel(t, "--redis-addr", px.Addr(), "--redis-timeout", "25ms", "--api-keys", writeAPIKeys(t),
				"--decision-timeout", faultDecisionTimeout)
			const state = `gavel_circuit_breaker_state{name="redis"}`
			waitFor(t, 10*time.Second, "the Redis tier to be connected", func() bool {
				_, st := readyz(t, g)
				return st.Checks["redis"] == "ok"
			})

			load := startDecisionLoad(t, g)
			waitFor(t, 10*time.Second, "decisions to flow with the breaker closed", func() bool {
				return load.decisions() >= 300 && metrics(t, g)[state] == 0
			})
			tripsBefore := metrics(t, g)[`gavel_circuit_breaker_transitions_total{name="redis",to="open"}`]

			px.Cut(mode)
			cutAt := time.Now()
			var opened time.Duration
			var degraded string
			waitFor(t, 10*time.Second, "the breaker to open and /readyz to say Redis is degraded", func() bool {
				code, st := readyz(t, g)
				checks := st.Checks
				if code != http.StatusOK {
					t.Fatalf("/readyz %d with Redis cut (%v): Redis down must not make gavel unready", code, checks)
				}
				if opened == 0 && metrics(t, g)[state] == 2 {
					opened = time.Since(cutAt)
				}
				if strings.HasPrefix(checks["redis"], "degraded") {
					degraded = checks["redis"]
				}
				return opened > 0 && degraded != ""
			})
			time.Sleep(time.Until(cutAt.Add(2 * time.Second))) // the outage lasts two seconds
			if code, st := readyz(t, g); code != http.StatusOK || !strings.HasPrefix(st.Checks["redis"], "degraded") {
				t.Errorf("/readyz at the end of the cut: %d %v", code, st.Checks)
			}
			px.Restore()
			restoredAt := time.Now()

			// The breaker lets one call through 5 s after it opened; should
			// that call fail, it stays open 5 s more.
			waitFor(t, 20*time.Second, "the breaker to close and /readyz to say Redis is ok", func() bool {
				code, st := readyz(t, g)
				checks := st.Checks
				if code != http.StatusOK {
					t.Fatalf("/readyz %d after Redis is back (%v)", code, checks)
				}
				return checks["redis"] == "ok" && metrics(t, g)[state] == 0
			})
			recovered := time.Since(restoredAt)
			ids := load.report(t)
			m := metrics(t, g)
			checkNoEvalErrors(t, m)
			open, total := px.Held()
			t.Logf("%s: %d decisions; breaker open %v after the cut (/readyz: %q), closed and ready %v after the restore; "+
				"breaker opened %v times before the cut, %v times in all, closed %v times; black-holed connections: %d, %d still open",
				mode, len(ids), opened.Round(time.Millisecond), degraded, recovered.Round(time.Millisecond), tripsBefore,
				m[`gavel_circuit_breaker_transitions_total{name="redis",to="open"}`],
				m[`gavel_circuit_breaker_transitions_total{name="redis",to="closed"}`], total, open)
		})
	}
}
