package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestRecent(t *testing.T) {
	r := NewRecent(3)
	for i := range 5 {
		r.Record(Record{ID: fmt.Sprint(i), Outcome: "allow"})
	}
	for i := range 5 {
		_, ok := r.Get(fmt.Sprint(i))
		if want := i >= 2; ok != want {
			t.Errorf("record %d held: %v, want %v", i, ok, want)
		}
	}
	// A record without an id is kept in order but cannot be looked up.
	r.Record(Record{})
	if _, ok := r.Get("2"); ok {
		t.Error("record 2 should have been evicted")
	}
	if rec, ok := r.Get("4"); !ok || rec.Outcome != "allow" {
		t.Errorf("record 4: %+v %v", rec, ok)
	}
}

func TestRecordJSONKeepsTheInputAsJSON(t *testing.T) {
	r := Record{ID: "d1", Outcome: "allow", Input: []byte(`{"user":"ada"}`)}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"input":{"user":"ada"}`) {
		t.Fatalf("%s: want the input as JSON", b)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil || string(back.Input) != `{"user":"ada"}` || back.ID != "d1" {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	b, _ = json.Marshal(Record{ID: "d2"})
	if strings.Contains(string(b), `"input"`) {
		t.Fatalf("%s: no input, no field", b)
	}
}
