package policy

import (
	"fmt"
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
