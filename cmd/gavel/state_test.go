package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/breaker"
	"github.com/gavel-dev/gavel/store/sqlite"
)

// A registration through the port discovery API is an event on the stream.
func TestRegistrationEvents(t *testing.T) {
	g := startGavel(t)
	useAdminKey(t, g)
	ws, _, err := dialEvents(t, g, "?type=registration", g.info.ViewerToken)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runGavel(t, "", "ports", "register", "orders", "--data-dir", g.info.DataDir)
	if code != 0 {
		t.Fatalf("register: %s %s", out, errOut)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var e store.Event
	if err := json.Unmarshal(msg, &e); err != nil || e.Type != store.EventRegistration ||
		!strings.Contains(string(e.Data), `"action":"registered"`) || !strings.Contains(string(e.Data), `"service":"orders"`) {
		t.Fatalf("event %s (%v)", msg, err)
	}
}

// A breaker that changes state says so on the bus.
func TestBreakerEvents(t *testing.T) {
	bus := store.NewMemoryBus(16)
	sub := bus.Subscribe(t.Context())
	br := breaker.New("store", breaker.Options{Failures: 2})
	publishBreakerEvents(br, bus)
	for range 2 {
		_ = br.Execute(t.Context(), func(context.Context) error { return errors.New("down") })
	}
	select {
	case e := <-sub.Events():
		if e.Type != store.EventBreaker || string(e.Data) != `{"from":"closed","name":"store","to":"open"}` {
			t.Fatalf("event %+v %s", e, e.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no breaker event")
	}
}

// explain_decision finds decisions that are no longer (or never were) in
// this replica's memory in the audit trail.
func TestExplainFallsBackToTheAuditTrail(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "gavel.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recent := policy.NewRecent(2)
	recent.Record(policy.Record{ID: "mem", Outcome: "allow"})
	if _, err := st.WriteAudit(t.Context(), []policy.Record{{ID: "old", Time: time.Now().UTC(), Source: policy.SourceHook, Outcome: "deny"}}); err != nil {
		t.Fatal(err)
	}
	r := recentOrTrail{recent: recent, trail: st}
	if rec, ok := r.Get("mem"); !ok || rec.Outcome != "allow" {
		t.Fatalf("in memory: %+v %v", rec, ok)
	}
	if rec, ok := r.Get("old"); !ok || rec.Outcome != "deny" {
		t.Fatalf("in the trail: %+v %v", rec, ok)
	}
	if _, ok := r.Get("never"); ok {
		t.Fatal("found a decision that was never made")
	}
	if _, ok := (recentOrTrail{recent: recent}).Get("old"); ok {
		t.Fatal("without a store only memory is searched")
	}
}
