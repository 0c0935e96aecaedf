package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/postgres"
	"github.com/gavel-dev/gavel/store/storetest"
)

func TestStoreContract(t *testing.T) {
	var mu sync.Mutex
	urls := map[*testing.T]string{}
	storetest.Run(t, func(t *testing.T) store.Store {
		mu.Lock()
		u, ok := urls[t]
		mu.Unlock()
		if !ok {
			u = storetest.PostgresSchema(t)
			mu.Lock()
			urls[t] = u
			mu.Unlock()
		}
		s, err := postgres.Open(t.Context(), u, postgres.Options{Migrate: true, MaxConns: 10, PollInterval: time.Minute}) // only NOTIFY can deliver within the suite's 1s
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestStoreMigrate(t *testing.T) {
	u := storetest.PostgresSchema(t)
	applied, err := postgres.Migrate(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, []int64{1, 2, 3}) {
		t.Errorf("first Migrate applied %v, want [1 2 3]", applied)
	}
	applied, err = postgres.Migrate(t.Context(), u)
	if err != nil || len(applied) != 0 {
		t.Errorf("second Migrate applied %v, %v; want nothing", applied, err)
	}
	s, err := postgres.Open(t.Context(), u, postgres.Options{})
	if err != nil {
		t.Fatalf("Open without Migrate on a migrated database: %v", err)
	}
	defer s.Close()
	// Open made today's and tomorrow's audit partitions.
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var parts []string
	rows, _ := conn.Query(t.Context(), `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'audit'::regclass ORDER BY 1`)
	parts, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	want := []string{"audit_p" + now.Format("20060102"), "audit_p" + now.AddDate(0, 0, 1).Format("20060102")}
	if !slices.Equal(parts, want) {
		t.Errorf("partitions %v, want %v", parts, want)
	}
}

func TestStoreRefusesUnmigrated(t *testing.T) {
	u := storetest.PostgresSchema(t)
	_, err := postgres.Open(t.Context(), u, postgres.Options{})
	if !errors.Is(err, store.ErrMigrationNeeded) {
		t.Fatalf("Open(empty, Migrate false) = %v, want ErrMigrationNeeded", err)
	}
	if want := "run `gavel migrate`"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestStoreConnectErrorHidesPassword(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://gavel:s3cret-pw@127.0.0.1:1/nodb?sslmode=disable&connect_timeout=2", postgres.Options{})
	if err == nil {
		t.Fatal("Open on a closed port: no error")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error does not name the host: %v", err)
	}
}

// TestStoreWatchReconnects kills the watcher's LISTEN connection; the
// watcher reconnects and still delivers the next activation by NOTIFY.
func TestStoreWatchReconnects(t *testing.T) {
	u := storetest.PostgresSchema(t)
	pu, _ := url.Parse(u)
	app := "gavel_test_watch_" + pu.Query().Get("search_path")
	q := pu.Query()
	q.Set("application_name", app)
	pu.RawQuery = q.Encode()
	u = pu.String()
	opts := postgres.Options{Migrate: true, MaxConns: 4, PollInterval: time.Minute}
	a, err := postgres.Open(t.Context(), u, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(t.Context(), u, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.PutBundle(t.Context(), store.Bundle{Revision: "r1", UploadedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ch, err := a.WatchActivations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), storetest.PostgresAdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	err = conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN%'`, app).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d listeners (%v), want 1", killed, err)
	}
	// Activations made while the listener is down or coming back are
	// caught up by the read that follows the reconnect.
	act, err := b.Activate(t.Context(), "r1", "b")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ch:
		if got.Seq != act.Seq {
			t.Fatalf("delivered %+v, want seq %d", got, act.Seq)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("activation not delivered after the listener was killed")
	}
	act, err = b.Activate(t.Context(), "r1", "b")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ch:
		if got.Seq != act.Seq {
			t.Fatalf("delivered %+v, want seq %d", got, act.Seq)
		}
	case <-time.After(time.Second):
		t.Fatal("activation not delivered within 1s by the new listener")
	}
}
