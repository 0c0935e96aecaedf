package events

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

func TestEventFilterParse(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  Filter
		err   string // substring naming the parameter
	}{
		{query: "", want: Filter{}},
		{query: "type=decision,breaker&type=activation", want: Filter{Types: []string{"decision", "breaker", "activation"}}},
		{query: "type=decision&type=decision", want: Filter{Types: []string{"decision"}}},
		{query: "outcome=deny,ask", want: Filter{Types: []string{"decision"}, Outcome: []string{"deny", "ask"}}},
		{query: "type=decision,activation&source=hook&rule=shell.rm-home&principal=ada&entry=claude_code/decision",
			want: Filter{Types: []string{"decision", "activation"}, Source: []string{"hook"}, Rule: []string{"shell.rm-home"},
				Principal: []string{"ada"}, Entry: []string{"claude_code/decision"}}},
		{query: "type=decisions", err: "type"},
		{query: "type=", err: "type"},
		{query: "type=decision,,breaker", err: "type"},
		{query: "source=nginx", err: "source"},
		{query: "outcome=maybe", err: "outcome"},
		{query: "rule=", err: "rule"},
		{query: "since=1h", err: "since"},
		{query: "type=activation&outcome=deny", err: "type"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseFilter(q)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Types) > 1 { // map iteration order of the query
				want := map[string]bool{}
				for _, ty := range tc.want.Types {
					want[ty] = true
				}
				for _, ty := range f.Types {
					delete(want, ty)
				}
				if len(want) > 0 || len(f.Types) != len(tc.want.Types) {
					t.Fatalf("types %v, want %v", f.Types, tc.want.Types)
				}
				f.Types = tc.want.Types
			}
			if !reflect.DeepEqual(f, tc.want) {
				t.Fatalf("got %+v, want %+v", f, tc.want)
			}
		})
	}
}

func decisionEvent(t testing.TB, r policy.Record) store.Event {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return store.Event{Type: store.EventDecision, Time: r.Time, Replica: "r1", Data: b}
}

func TestEventFilterMatch(t *testing.T) {
	hookDeny := decisionEvent(t, policy.Record{ID: "1", Source: "hook", Outcome: "deny", Principal: "ada", RuleIDs: []string{"shell.rm-home", "x"}, Entry: "claude_code/decision"})
	envoyAllow := decisionEvent(t, policy.Record{ID: "2", Source: "envoy", Outcome: "allow"})
	activation := store.Event{Type: store.EventActivation, Data: json.RawMessage(`{"revision":"abc"}`)}
	garbled := store.Event{Type: store.EventDecision, Data: json.RawMessage(`[`)}
	for _, tc := range []struct {
		query string
		match []bool // hookDeny, envoyAllow, activation, garbled
	}{
		{"", []bool{true, true, true, true}},
		{"type=activation", []bool{false, false, true, false}},
		{"type=decision", []bool{true, true, false, true}},
		{"source=hook", []bool{true, false, false, false}},
		{"source=hook,envoy", []bool{true, true, false, false}},
		{"outcome=allow", []bool{false, true, false, false}},
		{"rule=x", []bool{true, false, false, false}},
		{"rule=y,shell.rm-home", []bool{true, false, false, false}},
		{"principal=ada&outcome=deny", []bool{true, false, false, false}},
		{"principal=ada&outcome=allow", []bool{false, false, false, false}},
		{"entry=claude_code/decision", []bool{true, false, false, false}},
		{"type=decision,activation&source=envoy", []bool{false, true, true, false}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			f, err := ParseFilter(q)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range []store.Event{hookDeny, envoyAllow, activation, garbled} {
				if got := f.Match(e); got != tc.match[i] {
					t.Errorf("event %d (%s %s): match %v, want %v", i, e.Type, e.Data, got, tc.match[i])
				}
			}
		})
	}
}

func TestEventDecisionSink(t *testing.T) {
	bus := store.NewMemoryBus(4)
	sub := bus.Subscribe(t.Context())
	defer sub.Close()
	rec := policy.Record{ID: "d-1", Source: "hook", Outcome: "deny", RuleIDs: []string{"r"}, Input: []byte(`{"secret":"x"}`)}
	DecisionSink(bus, "host-42").Record(rec)
	e := <-sub.Events()
	if e.Type != store.EventDecision || e.Replica != "host-42" || e.Time.IsZero() {
		t.Fatalf("event %+v", e)
	}
	var got policy.Record
	if err := json.Unmarshal(e.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "d-1" || got.Outcome != "deny" || got.Input != nil || strings.Contains(string(e.Data), "secret") {
		t.Fatalf("data %s: want the record without its input", e.Data)
	}
}
