package store_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/store"
	_ "github.com/gavel-dev/gavel/store/postgres"
	_ "github.com/gavel-dev/gavel/store/sqlite"
)

func TestStoreOpenSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gavel.db")
	if _, err := store.Open(t.Context(), store.Options{SQLitePath: path}); !errors.Is(err, store.ErrMigrationNeeded) {
		t.Fatalf("Open(unmigrated, Migrate false) = %v, want ErrMigrationNeeded", err)
	}
	applied, err := store.Migrate(t.Context(), store.Options{SQLitePath: path})
	if err != nil || !slices.Equal(applied, []int64{1, 2}) {
		t.Fatalf("Migrate = %v, %v", applied, err)
	}
	s, err := store.Open(t.Context(), store.Options{SQLitePath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Kind() != "sqlite" {
		t.Errorf("Kind = %q, want sqlite", s.Kind())
	}
}

func TestStoreOpenPostgresChosenByURL(t *testing.T) {
	// A URL wins over a path; the error names the host, not the password.
	_, err := store.Open(t.Context(), store.Options{
		PostgresURL: "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2",
		SQLitePath:  filepath.Join(t.TempDir(), "gavel.db"),
	})
	if err == nil || !strings.Contains(err.Error(), "postgres 127.0.0.1:1/db") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open(unreachable postgres) = %v", err)
	}
}

func TestStoreOpenNeedsALocation(t *testing.T) {
	if _, err := store.Open(t.Context(), store.Options{}); err == nil {
		t.Fatal("Open with neither URL nor path: no error")
	}
}
