package sqlite_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gavel-dev/gavel/store"
	"github.com/gavel-dev/gavel/store/sqlite"
	"github.com/gavel-dev/gavel/store/storetest"
)

func TestStoreContract(t *testing.T) {
	var mu sync.Mutex
	paths := map[*testing.T]string{}
	storetest.Run(t, func(t *testing.T) store.Store {
		mu.Lock()
		path, ok := paths[t]
		if !ok {
			path = filepath.Join(t.TempDir(), "gavel.db")
			paths[t] = path
		}
		mu.Unlock()
		s, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true, PollInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestStoreMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "gavel.db")
	applied, err := sqlite.Migrate(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, []int64{1, 2}) {
		t.Errorf("first Migrate applied %v, want [1 2]", applied)
	}
	applied, err = sqlite.Migrate(t.Context(), path)
	if err != nil || len(applied) != 0 {
		t.Errorf("second Migrate applied %v, %v; want nothing", applied, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode %v, want 0600", fi.Mode().Perm())
	}
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open without Migrate on a migrated database: %v", err)
	}
	s.Close()
}

func TestStoreRefusesUnmigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gavel.db")
	_, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if !errors.Is(err, store.ErrMigrationNeeded) {
		t.Fatalf("Open(empty, Migrate false) = %v, want ErrMigrationNeeded", err)
	}
	if want := "run `gavel migrate`"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}
