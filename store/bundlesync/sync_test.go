package bundlesync_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/bundlesync"
	"github.com/gavel-dev/gavel/store/sqlite"
)

// An activation event on the bus (Redis pub/sub across replicas) is applied
// without waiting for the store's own watch.
func TestActivationFromTheBus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gavel.db")
	open := func() store.Store {
		st, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true, PollInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	writer, reader := open(), open()
	bus := store.NewMemoryBus(16)
	svc := policy.NewService(policy.Options{})
	s := bundlesync.New(bundlesync.Options{Store: reader, Service: svc, Bus: bus})
	go s.Run(t.Context())

	b, err := policy.LoadFS("t", fstest.MapFS{"app/p.rego": {Data: []byte("package app\n\n# METADATA\n# entrypoint: true\nallow := true\n")}}, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := b.WriteTarGz(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.PutBundle(t.Context(), store.Bundle{Revision: b.Revision, Source: "t", Size: buf.Len(), Tarball: buf.Bytes(), UploadedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for bus.Subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	a, err := writer.Activate(t.Context(), b.Revision, "ana")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(a)
	start := time.Now()
	bus.Publish(t.Context(), store.Event{Type: store.EventActivation, Time: a.At, Data: data})
	for svc.Revision() != b.Revision {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the bus's activation was not applied (the store is polled hourly here)")
		}
		time.Sleep(time.Millisecond)
	}
}
