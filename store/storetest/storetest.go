// Package storetest is the contract every store.Store implementation
// passes: one suite, run against SQLite and PostgreSQL by their own tests.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// Opener opens a migrated store for test t and closes it in t.Cleanup. The
// first call for a t opens a fresh, empty database; a second call with the
// same t opens another store on that same database (a second replica).
type Opener = func(t *testing.T) store.Store

// Run runs the contract, each part in a parallel subtest with its own
// database.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Ping", testPing},
		{"AuditRoundTrip", testAuditRoundTrip},
		{"AuditIdempotent", testAuditIdempotent},
		{"DecisionNotFound", testDecisionNotFound},
		{"DecisionsFilters", testDecisionsFilters},
		{"DecisionsPagination", testDecisionsPagination},
		{"DecisionsTimeRange", testDecisionsTimeRange},
		{"DecisionsBadCursor", testDecisionsBadCursor},
		{"PruneAudit", testPruneAudit},
		{"AuditConcurrent", testAuditConcurrent},
		{"Bundles", testBundles},
		{"Activations", testActivations},
		{"WatchActivationsOtherReplica", testWatchOtherReplica},
		{"Keys", testKeys},
		{"Leases", testLeases},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// base is a fixed day, in the past, that every record's time is near.
var base = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func rec(i int, at time.Time) policy.Record {
	return policy.Record{
		ID:      fmt.Sprintf("dec-%04d", i),
		Time:    at,
		Source:  policy.SourceEnvoy,
		Outcome: "allow",
		Latency: time.Duration(i) * time.Microsecond,
	}
}

func write(t *testing.T, s store.Store, recs ...policy.Record) {
	t.Helper()
	n, err := s.WriteAudit(t.Context(), recs)
	if err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	if n != len(recs) {
		t.Fatalf("WriteAudit stored %d new records, want %d", n, len(recs))
	}
}

func testPing(t *testing.T, open Opener) {
	s := open(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if k := s.Kind(); k != "sqlite" && k != "postgres" {
		t.Errorf("Kind = %q, want sqlite or postgres", k)
	}
}

func testAuditRoundTrip(t *testing.T, open Opener) {
	s := open(t)
	full := policy.Record{
		ID: "full", Time: base.Add(123456789 * time.Nanosecond), Source: policy.SourceHook, Principal: "alice",
		Action: "PreToolUse Bash", Resource: "rm -rf /", Outcome: "deny", ErrorCode: "",
		Reasons: []string{"destructive command", "second reason"}, RuleIDs: []string{"bash.rm", "bash.root"},
		Entry: "gavel/agent/decision", Revision: "sha256:abc", DryRun: true, Cached: true, Latency: 1234567 * time.Nanosecond,
		CorrelationID: "sess-1/tool-2", InputDigest: "deadbeef", Input: []byte(`{"z":1,"a":[true,null]}`),
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7",
	}
	bare := policy.Record{ID: "bare", Time: base.In(time.FixedZone("X", 3600)), Source: policy.SourceEnvoy, Outcome: "error", ErrorCode: "timeout"}
	write(t, s, full, bare)

	for _, want := range []policy.Record{full, bare} {
		got, err := s.Decision(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("Decision(%s): %v", want.ID, err)
		}
		want.Time = want.Time.UTC().Truncate(time.Microsecond)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decision(%s)\n got %#v\nwant %#v", want.ID, got, want)
		}
	}
}

func testAuditIdempotent(t *testing.T, open Opener) {
	s := open(t)
	batch := []policy.Record{rec(1, base), rec(2, base.Add(time.Second)), rec(3, base.Add(2*time.Second))}
	write(t, s, batch...)
	n, err := s.WriteAudit(t.Context(), batch)
	if err != nil || n != 0 {
		t.Fatalf("WriteAudit(same batch again) = %d, %v; want 0, nil", n, err)
	}
	// A batch that mixes a replayed record with a new one stores the new.
	n, err = s.WriteAudit(t.Context(), []policy.Record{batch[0], rec(4, base.Add(3*time.Second))})
	if err != nil || n != 1 {
		t.Fatalf("WriteAudit(old + new) = %d, %v; want 1, nil", n, err)
	}
	// The same record twice in one batch is stored once.
	n, err = s.WriteAudit(t.Context(), []policy.Record{rec(5, base), rec(5, base)})
	if err != nil || n != 1 {
		t.Fatalf("WriteAudit(a record twice) = %d, %v; want 1, nil", n, err)
	}
	if n, err := s.WriteAudit(t.Context(), nil); err != nil || n != 0 {
		t.Fatalf("WriteAudit(nil) = %d, %v; want 0, nil", n, err)
	}
	page, err := s.Decisions(t.Context(), store.DecisionQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(page.Records); !slices.Equal(got, []string{"dec-0004", "dec-0003", "dec-0002", "dec-0005", "dec-0001"}) {
		t.Errorf("stored %v", got)
	}
}

func testDecisionNotFound(t *testing.T, open Opener) {
	s := open(t)
	if _, err := s.Decision(t.Context(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Decision(unknown) error = %v, want ErrNotFound", err)
	}
}

func ids(recs []policy.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func testDecisionsFilters(t *testing.T, open Opener) {
	s := open(t)
	mk := func(id string, sec int, mod func(*policy.Record)) policy.Record {
		r := policy.Record{ID: id, Time: base.Add(time.Duration(sec) * time.Second), Source: policy.SourceEnvoy, Outcome: "allow", Revision: "r1"}
		mod(&r)
		return r
	}
	write(t, s,
		mk("a", 1, func(r *policy.Record) { r.Principal = "alice"; r.RuleIDs = []string{"net.egress", "bash.rm"} }),
		mk("b", 2, func(r *policy.Record) {
			r.Source = policy.SourceHook
			r.Outcome = "deny"
			r.RuleIDs = []string{"bash.rm"}
		}),
		mk("c", 3, func(r *policy.Record) { r.Principal = "bob"; r.Revision = "r2"; r.RuleIDs = []string{"bash.rmx"} }),
		mk("d", 4, func(r *policy.Record) { r.Source = policy.SourceHook; r.Outcome = "ask"; r.Principal = "alice" }),
		mk("e", 5, func(r *policy.Record) {
			r.Outcome = "deny"
			r.RuleIDs = []string{"x%_", "bash"}
			r.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		}),
	)
	for _, tc := range []struct {
		name string
		q    store.DecisionQuery
		want []string
	}{
		{"all", store.DecisionQuery{}, []string{"e", "d", "c", "b", "a"}},
		{"source", store.DecisionQuery{Source: policy.SourceHook}, []string{"d", "b"}},
		{"outcome", store.DecisionQuery{Outcome: "deny"}, []string{"e", "b"}},
		{"principal", store.DecisionQuery{Principal: "alice"}, []string{"d", "a"}},
		{"revision", store.DecisionQuery{Revision: "r2"}, []string{"c"}},
		{"rule", store.DecisionQuery{Rule: "bash.rm"}, []string{"b", "a"}},
		{"rule is whole", store.DecisionQuery{Rule: "bash"}, []string{"e"}},
		{"rule not a pattern", store.DecisionQuery{Rule: "x%_"}, []string{"e"}},
		{"rule none", store.DecisionQuery{Rule: "nope"}, nil},
		{"trace", store.DecisionQuery{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}, []string{"e"}},
		{"trace none", store.DecisionQuery{TraceID: "0af7651916cd43dd8448eb211c80319c"}, nil},
		{"combined", store.DecisionQuery{Source: policy.SourceEnvoy, Outcome: "allow", Principal: "alice", Rule: "net.egress", Revision: "r1"}, []string{"a"}},
		{"combined none", store.DecisionQuery{Source: policy.SourceHook, Principal: "bob"}, nil},
		{"limit", store.DecisionQuery{Limit: 2}, []string{"e", "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.Decisions(t.Context(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page.Records); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if tc.q.Limit == 0 && page.Next != "" {
				t.Errorf("Next = %q on the only page", page.Next)
			}
		})
	}
}

func testDecisionsPagination(t *testing.T, open Opener) {
	s := open(t)
	// 250 records over 100 distinct microseconds: many share a time, so
	// the order (and the cursor) must break ties by id.
	var recs []policy.Record
	for i := range 250 {
		recs = append(recs, rec(i, base.Add(time.Duration(i%100)*time.Microsecond)))
	}
	write(t, s, recs...)
	want := slices.Clone(recs)
	slices.SortFunc(want, func(a, b policy.Record) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return -cmpString(a.ID, b.ID)
	})
	for _, limit := range []int{1000, 100, 33, 7} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			var got []string
			q := store.DecisionQuery{Limit: limit}
			pages := 0
			for {
				page, err := s.Decisions(t.Context(), q)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if len(page.Records) > limit {
					t.Fatalf("page of %d records, limit %d", len(page.Records), limit)
				}
				got = append(got, ids(page.Records)...)
				if page.Next == "" {
					break
				}
				q.Cursor = page.Next
				if pages > 300 {
					t.Fatal("pagination does not end")
				}
			}
			if !slices.Equal(got, ids(want)) {
				t.Fatalf("pages gave %d records (duplicates or gaps):\n got %v\nwant %v", len(got), got, ids(want))
			}
		})
	}
	t.Run("default and max limit", func(t *testing.T) {
		page, err := s.Decisions(t.Context(), store.DecisionQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != 100 || page.Next == "" {
			t.Errorf("default page: %d records, next %q; want 100 and a cursor", len(page.Records), page.Next)
		}
		page, err = s.Decisions(t.Context(), store.DecisionQuery{Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != 250 || page.Next != "" {
			t.Errorf("Limit 5000: %d records, next %q; want 250 and none", len(page.Records), page.Next)
		}
	})
	t.Run("cursor with filters", func(t *testing.T) {
		q := store.DecisionQuery{Since: base.Add(10 * time.Microsecond), Until: base.Add(20 * time.Microsecond), Limit: 4}
		var got []string
		for {
			page, err := s.Decisions(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids(page.Records)...)
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		// times 10..19 µs: i%100 in [10,20), three ids each (i, i+100, i+200) but i+200 < 250 only for i < 50.
		if len(got) != 30 {
			t.Errorf("got %d records, want 30: %v", len(got), got)
		}
	})
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testDecisionsTimeRange(t *testing.T, open Opener) {
	s := open(t)
	var recs []policy.Record
	for i := range 10 {
		recs = append(recs, rec(i, base.Add(time.Duration(i)*time.Hour)))
	}
	write(t, s, recs...)
	for _, tc := range []struct {
		name         string
		since, until time.Time
		want         []string
	}{
		{"since inclusive", base.Add(8 * time.Hour), time.Time{}, []string{"dec-0009", "dec-0008"}},
		{"until exclusive", time.Time{}, base.Add(2 * time.Hour), []string{"dec-0001", "dec-0000"}},
		{"both", base.Add(3 * time.Hour), base.Add(5 * time.Hour), []string{"dec-0004", "dec-0003"}},
		{"between records", base.Add(3*time.Hour + time.Minute), base.Add(4*time.Hour - time.Minute), nil},
		{"other zone", base.Add(9 * time.Hour).In(time.FixedZone("Y", -5*3600)), time.Time{}, []string{"dec-0009"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.Decisions(t.Context(), store.DecisionQuery{Since: tc.since, Until: tc.until})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(page.Records); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func testDecisionsBadCursor(t *testing.T, open Opener) {
	s := open(t)
	if _, err := s.Decisions(t.Context(), store.DecisionQuery{Cursor: "!!not a cursor"}); err == nil {
		t.Fatal("Decisions with a garbage cursor: no error")
	}
}

func testPruneAudit(t *testing.T, open Opener) {
	s := open(t)
	// Records over five days, four a day at 00:00, 06:00, 12:00, 18:00.
	day0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var recs []policy.Record
	for i := range 20 {
		recs = append(recs, rec(i, day0.Add(time.Duration(i)*6*time.Hour)))
	}
	write(t, s, recs...)
	// Cut in the middle of day 2 (12:00): days 0 and 1 go whole (8), day 2's
	// 00:00 and 06:00 go (2), its 12:00 stays.
	cut := day0.Add(2*24*time.Hour + 12*time.Hour)
	n, err := s.PruneAudit(t.Context(), cut)
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Errorf("PruneAudit removed %d, want 10", n)
	}
	page, err := s.Decisions(t.Context(), store.DecisionQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 10 {
		t.Fatalf("%d records left, want 10", len(page.Records))
	}
	for _, r := range page.Records {
		if r.Time.Before(cut) {
			t.Errorf("record %s at %s survived the prune before %s", r.ID, r.Time, cut)
		}
	}
	if _, err := s.Decision(t.Context(), "dec-0000"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pruned record: %v, want ErrNotFound", err)
	}
	// Pruning again removes nothing; a pruned day can be written again.
	if n, err := s.PruneAudit(t.Context(), cut); err != nil || n != 0 {
		t.Errorf("PruneAudit again = %d, %v; want 0", n, err)
	}
	write(t, s, rec(100, day0.Add(time.Hour)))
	if _, err := s.Decision(t.Context(), "dec-0100"); err != nil {
		t.Errorf("record written to a pruned day: %v", err)
	}
}

func testAuditConcurrent(t *testing.T, open Opener) {
	s := open(t)
	const writers, batches, per = 8, 5, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	total := 0
	var mu sync.Mutex
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				var recs []policy.Record
				for i := range per {
					n := (w*batches+b)*per + i
					recs = append(recs, rec(n, base.Add(time.Duration(n)*time.Millisecond)))
				}
				// Every batch is written twice, as a retrying writer would.
				for range 2 {
					n, err := s.WriteAudit(context.WithoutCancel(t.Context()), recs)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if total != writers*batches*per {
		t.Errorf("WriteAudit reported %d new, want %d", total, writers*batches*per)
	}
	page, err := s.Decisions(t.Context(), store.DecisionQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != writers*batches*per {
		t.Errorf("%d records stored, want %d", len(page.Records), writers*batches*per)
	}
}

func bundle(rev string, at time.Time) store.Bundle {
	return store.Bundle{Revision: rev, Source: rev + ".tar.gz", Size: 3, UploadedBy: "sre", UploadedAt: at,
		Signed: true, Tests: 7, Tarball: []byte{0x1f, 0x8b, byte(len(rev))}}
}

func testBundles(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	if _, err := s.Bundle(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Bundle(unknown) = %v, want ErrNotFound", err)
	}
	if bs, err := s.ListBundles(ctx); err != nil || len(bs) != 0 {
		t.Errorf("ListBundles on empty = %v, %v", bs, err)
	}
	b1, b2 := bundle("sha256:one", base), bundle("sha256:two", base.Add(time.Minute))
	b2.Signed, b2.Source = false, "builtin:default"
	for _, b := range []store.Bundle{b1, b2} {
		created, err := s.PutBundle(ctx, b)
		if err != nil || !created {
			t.Fatalf("PutBundle(%s) = %v, %v; want created", b.Revision, created, err)
		}
	}
	changed := b1
	changed.Source, changed.Tarball = "other", []byte("other")
	if created, err := s.PutBundle(ctx, changed); err != nil || created {
		t.Fatalf("PutBundle(same revision) = %v, %v; want not created", created, err)
	}
	got, err := s.Bundle(ctx, b1.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b1) {
		t.Errorf("Bundle\n got %+v\nwant %+v", got, b1)
	}
	list, err := s.ListBundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b1.Tarball, b2.Tarball = nil, nil
	if !reflect.DeepEqual(list, []store.Bundle{b2, b1}) {
		t.Errorf("ListBundles (newest first, no tarballs)\n got %+v\nwant %+v", list, []store.Bundle{b2, b1})
	}
}

func testActivations(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	if _, err := s.Active(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Active before any = %v, want ErrNotFound", err)
	}
	if as, err := s.Activations(ctx, 10); err != nil || len(as) != 0 {
		t.Errorf("Activations before any = %v, %v", as, err)
	}
	if _, err := s.Activate(ctx, "sha256:unknown", "sre"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Activate(unknown) = %v, want ErrNotFound", err)
	}
	for _, rev := range []string{"r1", "r2"} {
		if _, err := s.PutBundle(ctx, bundle(rev, base)); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now().Add(-time.Second)
	var made []store.Activation
	for _, rev := range []string{"r1", "r2", "r1"} {
		a, err := s.Activate(ctx, rev, "sre")
		if err != nil {
			t.Fatal(err)
		}
		if a.Revision != rev || a.By != "sre" || a.At.Before(before) || a.At.After(time.Now().Add(time.Second)) {
			t.Errorf("Activate(%s) = %+v", rev, a)
		}
		if len(made) > 0 && a.Seq <= made[len(made)-1].Seq {
			t.Errorf("seq %d after %d: not increasing", a.Seq, made[len(made)-1].Seq)
		}
		made = append(made, a)
	}
	act, err := s.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !act.At.Equal(made[2].At) || act.Seq != made[2].Seq || act.Revision != "r1" {
		t.Errorf("Active = %+v, want %+v", act, made[2])
	}
	as, err := s.Activations(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 || as[0].Seq != made[2].Seq || as[1].Seq != made[1].Seq {
		t.Errorf("Activations(2) = %+v, want the last two, newest first", as)
	}
}

func testWatchOtherReplica(t *testing.T, open Opener) {
	a, b := open(t), open(t)
	ctx := t.Context()
	for _, rev := range []string{"w1", "w2", "w3"} {
		if _, err := a.PutBundle(ctx, bundle(rev, base)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Activate(ctx, "w1", "before"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	ch, err := a.WatchActivations(wctx)
	if err != nil {
		t.Fatal(err)
	}
	// Activations made through the other replica, after the watch began.
	var want []int64
	for _, rev := range []string{"w2", "w3"} {
		act, err := b.Activate(ctx, rev, "replica-b")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, act.Seq)
	}
	for i, rev := range []string{"w2", "w3"} {
		select {
		case got := <-ch:
			if got.Revision != rev || got.Seq != want[i] || got.By != "replica-b" {
				t.Fatalf("watch delivered %+v, want %s seq %d", got, rev, want[i])
			}
		case <-time.After(time.Second):
			t.Fatalf("activation %s made on another replica not delivered within 1s", rev)
		}
	}
	// Nothing more: each activation is delivered once.
	select {
	case got := <-ch:
		t.Fatalf("extra activation delivered: %+v", got)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed after its context ended")
	}
}

func testKeys(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	hash := func(k string) []byte { h := sha256.Sum256([]byte(k)); return h[:] }
	k1 := store.Key{ID: "k1", Name: "ci", Prefix: "gvl_abcd", Hash: hash("one"), Roles: []string{"policy-admin", "audit-reader"},
		CreatedBy: "admin", CreatedAt: base}
	k2 := store.Key{ID: "k2", Name: "laptop", Prefix: "gvl_efgh", Hash: hash("two"), Roles: []string{"agent"}, CreatedAt: base.Add(time.Second)}
	for _, k := range []store.Key{k1, k2} {
		if err := s.CreateKey(ctx, k); err != nil {
			t.Fatalf("CreateKey(%s): %v", k.Name, err)
		}
	}
	for name, k := range map[string]store.Key{
		"same name": {ID: "k3", Name: "ci", Hash: hash("three"), Roles: []string{}, CreatedAt: base},
		"same hash": {ID: "k4", Name: "other", Hash: hash("one"), Roles: []string{}, CreatedAt: base},
		"same id":   {ID: "k1", Name: "other2", Hash: hash("four"), Roles: []string{}, CreatedAt: base},
	} {
		if err := s.CreateKey(ctx, k); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateKey(%s) = %v, want ErrConflict", name, err)
		}
	}
	got, err := s.KeyByHash(ctx, hash("one"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, k1) {
		t.Errorf("KeyByHash\n got %+v\nwant %+v", got, k1)
	}
	if _, err := s.KeyByHash(ctx, hash("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KeyByHash(unknown) = %v, want ErrNotFound", err)
	}

	used := base.Add(time.Hour)
	if err := s.TouchKey(ctx, "k1", used); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchKey(ctx, "k1", used.Add(-time.Minute)); err != nil { // a late, older touch
		t.Fatal(err)
	}
	if err := s.TouchKey(ctx, "nope", used); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchKey(unknown) = %v, want ErrNotFound", err)
	}
	revoked := base.Add(2 * time.Hour)
	if err := s.RevokeKey(ctx, "k1", revoked); err != nil {
		t.Fatalf("RevokeKey by id: %v", err)
	}
	if err := s.RevokeKey(ctx, "laptop", revoked.Add(time.Minute)); err != nil {
		t.Fatalf("RevokeKey by name: %v", err)
	}
	if err := s.RevokeKey(ctx, "nope", revoked); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeKey(unknown) = %v, want ErrNotFound", err)
	}
	list, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k1.LastUsed, k1.RevokedAt = used, revoked
	k2.RevokedAt = revoked.Add(time.Minute)
	if !reflect.DeepEqual(list, []store.Key{k1, k2}) {
		t.Errorf("ListKeys (oldest first, revoked included)\n got %+v\nwant %+v", list, []store.Key{k1, k2})
	}
	if got, err := s.KeyByHash(ctx, hash("one")); err != nil || !got.RevokedAt.Equal(revoked) {
		t.Errorf("KeyByHash(revoked) = %+v, %v", got, err)
	}
}

func testLeases(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	l1 := store.Lease{Service: "api", ID: "i1", Address: "127.0.0.1", Port: 20001, Labels: map[string]string{"zone": "a"},
		TTL: 30 * time.Second, ExpiresAt: base.Add(30 * time.Second)}
	l2 := store.Lease{Service: "api", ID: "i2", Address: "127.0.0.1", Port: 20002, TTL: time.Second, ExpiresAt: base.Add(-time.Hour)}
	l3 := store.Lease{Service: "web", ID: "i1", Address: "10.0.0.1", Port: 8080, TTL: time.Minute, ExpiresAt: base}
	for _, l := range []store.Lease{l3, l1, l2} {
		if err := s.PutLease(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	l1.Port, l1.Labels, l1.ExpiresAt = 20011, map[string]string{"zone": "b", "v": "2"}, base.Add(time.Minute)
	if err := s.PutLease(ctx, l1); err != nil { // replace
		t.Fatal(err)
	}
	if err := s.DeleteLease(ctx, "web", "i1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLease(ctx, "web", "i1"); err != nil {
		t.Errorf("DeleteLease(absent) = %v, want nil", err)
	}
	got, err := s.ListLeases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []store.Lease{l1, l2}) {
		t.Errorf("ListLeases\n got %+v\nwant %+v", got, []store.Lease{l1, l2})
	}
}

// UpgradedAuditTrace checks a store migrated from schema 1, where a record
// "old" was written before the trace columns existed: the old record reads
// back with no trace, a new one with its trace and span, and its trace id
// finds it.
func UpgradedAuditTrace(t *testing.T, s store.Store) {
	t.Helper()
	old, err := s.Decision(t.Context(), "old")
	if err != nil || old.TraceID != "" || old.SpanID != "" {
		t.Fatalf("old record %+v, %v; want it with no trace", old, err)
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	rec := policy.Record{ID: "new", Time: time.Now().UTC(), Source: policy.SourceEnvoy, Outcome: "deny", TraceID: traceID, SpanID: "00f067aa0ba902b7"}
	write(t, s, rec)
	page, err := s.Decisions(t.Context(), store.DecisionQuery{TraceID: traceID})
	if err != nil || len(page.Records) != 1 || page.Records[0].ID != "new" || page.Records[0].SpanID != rec.SpanID {
		t.Fatalf("Decisions(trace %s) = %+v, %v; want the new record", traceID, page.Records, err)
	}
}
