package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/audit"
	"github.com/gavel-dev/gavel/store/breaker"
	"github.com/gavel-dev/gavel/store/sqlite"
)

// flaky is a real store with a switch that makes its writes fail, as a
// store that went away does; failAfter fails every write after the first n.
type flaky struct {
	store.Audit
	down      atomic.Bool
	writes    atomic.Int64
	failAfter atomic.Int64 // 0: off
}

func (f *flaky) WriteAudit(ctx context.Context, recs []policy.Record) (int, error) {
	n := f.writes.Add(1)
	if f.down.Load() || (f.failAfter.Load() > 0 && n > f.failAfter.Load()) {
		return 0, errors.New("connection refused")
	}
	return f.Audit.WriteAudit(ctx, recs)
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "gavel.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func records(from, n int) []policy.Record {
	out := make([]policy.Record, n)
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range out {
		out[i] = policy.Record{ID: fmt.Sprintf("rec-%06d", from+i), Time: base.Add(time.Duration(from+i) * time.Millisecond),
			Source: policy.SourceHook, Outcome: "allow", RuleIDs: []string{"r"}}
	}
	return out
}

type running struct {
	w      *audit.Writer
	m      *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, st store.Audit, dir string) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	w, err := audit.New(audit.Options{Store: st, SpillDir: dir, BatchSize: 50, FlushInterval: 5 * time.Millisecond,
		RetryInterval: 20 * time.Millisecond, Metrics: audit.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, m: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// count is how many of the ids rec-<from>... are stored; it fails on any
// id stored twice.
func count(t *testing.T, st store.Audit, total int) int {
	t.Helper()
	seen := map[string]bool{}
	q := store.DecisionQuery{Limit: 1000}
	for {
		page, err := st.Decisions(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			if seen[r.ID] {
				t.Fatalf("record %s stored twice", r.ID)
			}
			seen[r.ID] = true
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if len(seen) > total {
		t.Fatalf("%d records stored, only %d were made", len(seen), total)
	}
	return len(seen)
}

func waitCount(t *testing.T, st store.Audit, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := count(t, st, want)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records stored", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWriterStoresEveryRecord(t *testing.T) {
	st := openStore(t)
	r := start(t, st, t.TempDir())
	for _, rec := range records(0, 1234) {
		r.w.Record(rec)
	}
	waitCount(t, st, 1234)
	if got := metric(t, r.m, "gavel_audit_dropped_total"); got != 0 {
		t.Errorf("%v dropped", got)
	}
}

// Record renders the input before it returns, so the request the
// InputFunc holds is let go of at once; the stored record carries the
// rendered input, and an input that fails to render is left out (its
// digest stays).
func TestRecordRendersInput(t *testing.T) {
	st := openStore(t)
	r := start(t, st, t.TempDir())
	recs := records(0, 2)
	rendered := false
	recs[0].InputDigest = "d0"
	recs[0].InputFunc = func() ([]byte, error) { rendered = true; return []byte(`{"path":"/a"}`), nil }
	recs[1].InputDigest = "d1"
	recs[1].InputFunc = func() ([]byte, error) { return nil, errors.New("cannot render") }
	r.w.Record(recs[0])
	if !rendered {
		t.Fatal("Record returned before rendering the input")
	}
	r.w.Record(recs[1])
	waitCount(t, st, 2)
	for i, want := range []string{`{"path":"/a"}`, ""} {
		got, err := st.Decision(context.Background(), recs[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Input) != want || got.InputDigest != recs[i].InputDigest {
			t.Errorf("%s: input %q digest %q, want %q %q", recs[i].ID, got.Input, got.InputDigest, want, recs[i].InputDigest)
		}
	}
}

// While the store is down records spill to disk; when it is back they are
// replayed, each stored exactly once, even though the first replay fails
// halfway and writes some of them twice.
func TestWriterSpillsAndReplays(t *testing.T) {
	st := openStore(t)
	f := &flaky{Audit: st}
	dir := t.TempDir()
	r := start(t, f, dir)

	for _, rec := range records(0, 100) {
		r.w.Record(rec)
	}
	waitCount(t, st, 100)

	f.down.Store(true)
	for _, rec := range records(100, 900) {
		r.w.Record(rec)
	}
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, r.m, "gavel_audit_spilled_total") < 900 {
		if time.Now().After(deadline) {
			t.Fatalf("%v records spilled, want 900", metric(t, r.m, "gavel_audit_spilled_total"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := count(t, st, 1000); n != 100 {
		t.Fatalf("%d records stored while the store was down", n)
	}

	// Back, but the replay fails after two more batches: some records are
	// then written again by the next replay.
	f.failAfter.Store(f.writes.Load() + 2)
	f.down.Store(false)
	time.Sleep(100 * time.Millisecond)
	f.failAfter.Store(0)
	for _, rec := range records(1000, 200) {
		r.w.Record(rec)
	}
	waitCount(t, st, 1200)
	deadline = time.Now().Add(10 * time.Second)
	for metric(t, r.m, "gavel_audit_spill_segments") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("spill segments left after the store came back")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "spill-*")); len(left) != 0 {
		t.Fatalf("spill files left: %v", left)
	}
}

// A writer stopped while the store is down leaves its spill on disk; the
// next one replays it.
func TestWriterReplaysAcrossRestarts(t *testing.T) {
	st := openStore(t)
	f := &flaky{Audit: st}
	f.down.Store(true)
	dir := t.TempDir()
	r := start(t, f, dir)
	for _, rec := range records(0, 300) {
		r.w.Record(rec)
	}
	r.stop(t) // drains the queue into the spill
	if n := count(t, st, 300); n != 0 {
		t.Fatalf("%d stored while down", n)
	}
	// A torn last line, as a crash mid-append leaves, is skipped.
	segs, _ := filepath.Glob(filepath.Join(dir, "spill-*.jsonl"))
	if len(segs) == 0 {
		t.Fatal("no spill segment")
	}
	fh, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString(`{"id":"torn","ti`)
	fh.Close()

	start(t, st, dir)
	waitCount(t, st, 300)
}

func TestRecordNeverBlocks(t *testing.T) {
	st := openStore(t)
	reg := prometheus.NewRegistry()
	w, err := audit.New(audit.Options{Store: st, SpillDir: t.TempDir(), QueueSize: 10, Metrics: audit.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	// Not running: the queue fills, and the rest are dropped at once.
	done := make(chan struct{})
	go func() {
		for _, rec := range records(0, 25) {
			w.Record(rec)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked on a full queue")
	}
	if got := metric(t, reg, "gavel_audit_dropped_total"); got != 15 {
		t.Fatalf("dropped %v, want 15", got)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	if _, err := audit.New(audit.Options{SpillDir: t.TempDir()}); err == nil {
		t.Error("no store accepted")
	}
	if _, err := audit.New(audit.Options{Store: openStore(t)}); err == nil {
		t.Error("no spill dir accepted")
	}
}

// metric is the value of a counter or gauge gathered from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestRetainPrunesOldRecords(t *testing.T) {
	st := openStore(t)
	old := records(0, 5)
	old[0].Time = time.Now().UTC().Add(-49 * time.Hour)
	for i := range old {
		old[i].Time = old[0].Time.Add(time.Duration(i) * time.Second)
	}
	fresh := policy.Record{ID: "fresh", Time: time.Now().UTC(), Source: policy.SourceHook, Outcome: "allow"}
	if _, err := st.WriteAudit(t.Context(), append(old, fresh)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { audit.Retain(ctx, st, 48*time.Hour, time.Hour, nil); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := st.Decisions(t.Context(), store.DecisionQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) == 1 {
			if page.Records[0].ID != "fresh" {
				t.Fatalf("kept %s, want the fresh record", page.Records[0].ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records left, want 1", len(page.Records))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

// With a breaker, a store that is down is not asked again for every batch:
// once open, batches spill at once; after the open timeout a probe finds
// the store back and the spill is replayed.
func TestWriterBreaker(t *testing.T) {
	st := openStore(t)
	f := &flaky{Audit: st}
	f.down.Store(true)
	reg := prometheus.NewRegistry()
	br := breaker.New("audit-store", breaker.Options{OpenTimeout: 200 * time.Millisecond, Metrics: breaker.NewMetrics(reg)})
	w, err := audit.New(audit.Options{Store: f, SpillDir: t.TempDir(), BatchSize: 10, FlushInterval: 2 * time.Millisecond,
		RetryInterval: 20 * time.Millisecond, Breaker: br, Metrics: audit.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for i := range 50 {
		for _, rec := range records(i*10, 10) {
			w.Record(rec)
		}
		time.Sleep(2 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for br.State() != breaker.Open {
		if time.Now().After(deadline) {
			t.Fatal("the breaker never opened")
		}
		time.Sleep(time.Millisecond)
	}
	// While open, the store is asked at most once per open timeout (a probe).
	before := f.writes.Load()
	time.Sleep(100 * time.Millisecond)
	if asked := f.writes.Load() - before; asked > 2 {
		t.Fatalf("the store was asked %d times in 100 ms with the breaker open", asked)
	}
	f.down.Store(false)
	waitCount(t, st, 500)
}
