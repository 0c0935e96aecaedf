package events

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// DecisionSink returns a [policy.Sink] that publishes every audit record
// on bus as a decision event from replica. The record's input document is
// left out: it may be large, and the audit trail is where it is kept.
// Record does not block as long as bus.Publish does not (a store.Bus
// never waits on a subscriber); what cannot be published is dropped.
func DecisionSink(bus store.Bus, replica string) policy.Sink {
	return decisionSink{bus: bus, replica: replica}
}

type decisionSink struct {
	bus     store.Bus
	replica string
}

func (s decisionSink) Record(r policy.Record) {
	r.Input = nil
	data, err := json.Marshal(r)
	if err != nil {
		return // a Record always marshals
	}
	at := r.Time
	if at.IsZero() {
		at = time.Now()
	}
	_ = s.bus.Publish(context.Background(), store.Event{Type: store.EventDecision, Time: at.UTC(), Replica: s.replica, Data: data})
}
