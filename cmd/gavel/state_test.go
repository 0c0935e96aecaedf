package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/breaker"
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
