package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/gavel-dev/gavel/store/sqlite"
	"github.com/gavel-dev/gavel/store/storetest"
)

// A database at schema 1 with records in it takes migration 2 (the trace
// columns): the old records read back with no trace, the new ones with
// theirs, and a trace id finds its record.
func TestStoreUpgradeAuditTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gavel.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sqlite.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), `INSERT INTO audit (id, time, source, outcome) VALUES ('old', 1, 'envoy', 'allow')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	applied, err := sqlite.Migrate(t.Context(), path)
	if err != nil || len(applied) != 1 || applied[0] != 2 {
		t.Fatalf("Migrate = %v, %v; want [2]", applied, err)
	}
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.UpgradedAuditTrace(t, s)
}
